"""Where each die sits on its wafer, and indexes for the dashboards' per-wafer and per-lot reads.

Revision ID: 0005
Revises: 0004

``die_x``/``die_y`` come with the wafer format (``/predict_wafer``) or a device's
optional ``die_x``/``die_y``; rows logged before it are NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("die_x", sa.Integer, nullable=True))
        batch.add_column(sa.Column("die_y", sa.Integer, nullable=True))
    op.create_index("ix_predictions_wafer_ts", "predictions", ["wafer_id", "ts"])
    op.create_index("ix_predictions_lot_ts", "predictions", ["lot_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_predictions_lot_ts", table_name="predictions")
    op.drop_index("ix_predictions_wafer_ts", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("die_y")
        batch.drop_column("die_x")
