"""The arm the split assigned a device to, kept apart from the arm that served it.

Revision ID: 0007
Revises: 0006

A device assigned to an arm whose member was down is answered by the ensemble (degraded)
and logged with ``arm`` the ensemble; ``assigned_arm`` keeps the assignment, so the
report's sample-ratio test counts the split as it was planned. Rows logged before it are
NULL: their assignment was their arm as far as anyone can tell.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("assigned_arm", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("assigned_arm")
