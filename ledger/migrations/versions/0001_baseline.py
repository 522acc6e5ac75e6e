"""The ledger as release 0.1.0 (commit c709685) created it: predictions and outcomes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(256)),
        sa.Column("wafer_id", sa.String(256)),
        sa.Column("lot_id", sa.String(256)),
        sa.Column("features", sa.Text, nullable=False),
        # One column per model family, as 0.1.0 stored votes.
        sa.Column("p_random_forest", sa.Float),
        sa.Column("p_xgboost", sa.Float),
        sa.Column("p_keras", sa.Float),
        sa.Column("prediction", sa.String(4), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("degraded", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("model_versions", sa.Text, nullable=False),
    )
    op.create_index("ix_predictions_device_ts", "predictions", ["device_id", "ts"])
    op.create_table(
        "outcomes",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("actual", sa.String(4), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_index("ix_predictions_device_ts", "predictions")
    op.drop_table("predictions")
