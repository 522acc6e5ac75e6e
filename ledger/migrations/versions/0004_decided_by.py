"""What decided each logged prediction: the combiner's name:version and the arm's spec.

Revision ID: 0004
Revises: 0003

Rows logged before it are NULL (release 0.1.0 had one rule: the majority vote).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("combiner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("arm_spec", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("arm_spec")
        batch.drop_column("combiner")
