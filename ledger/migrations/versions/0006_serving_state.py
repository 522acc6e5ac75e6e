"""The serving state (champion, candidate, share) and its history, shared by every replica.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("champion", sa.String(64), nullable=False),
        sa.Column("candidate", sa.String(64)),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("previous", sa.String(64)),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("candidate_since", sa.Float),
    ]


def upgrade() -> None:
    op.create_table(
        "serving_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("revision", sa.Integer, nullable=False),
        *_columns(),
        sa.Column("configured", sa.Text),
    )
    op.create_table(
        "serving_history",
        sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
        *_columns(),
    )


def downgrade() -> None:
    op.drop_table("serving_history")
    op.drop_table("serving_state")
