"""Each prediction's features outside the training range, as the answer flagged them.

Revision ID: 0008
Revises: 0007

``out_of_range`` is JSON {feature: distance beyond the training range, in training
ranges} for a die with any feature outside its model's training range, NULL otherwise
(and on rows logged before 0008, which were never checked). The drift reads count the
share of out-of-range dies from it (``ledger.drift``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("out_of_range", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("out_of_range")
