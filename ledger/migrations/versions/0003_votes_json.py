"""Member votes as one JSON column instead of one column per model family.

Revision ID: 0003
Revises: 0002

A new family needs no migration after this one. The 0.1.0 columns p_random_forest,
p_xgboost and p_keras are carried over into ``votes`` (members without a value are
left out) and dropped.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_MEMBERS = ("random_forest", "xgboost", "keras")


#: Rows moved per statement: keyset pages, so a large log never sits in memory whole.
PAGE = 5000


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("votes", sa.Text, nullable=True))
    # In Python, not SQL: SQLite's json_object prints floats with 15 digits and would
    # change stored probabilities (0.47000000000000003 became 0.47).
    conn = op.get_bind()
    p_columns = ", ".join(f"p_{m}" for m in OLD_MEMBERS)
    select = sa.text(
        f"SELECT request_id, {p_columns} FROM predictions WHERE request_id > :after "
        "ORDER BY request_id LIMIT :page"
    )
    update = sa.text("UPDATE predictions SET votes = :votes WHERE request_id = :rid")
    after = ""
    while rows := conn.execute(select, {"after": after, "page": PAGE}).all():
        conn.execute(
            update,
            [
                {
                    "rid": rid,
                    "votes": json.dumps(
                        {m: p for m, p in zip(OLD_MEMBERS, ps, strict=True) if p is not None}
                    ),
                }
                for rid, *ps in rows
            ],
        )
        after = rows[-1][0]
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("votes", existing_type=sa.Text, nullable=False)
        for m in OLD_MEMBERS:
            batch.drop_column(f"p_{m}")


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for m in OLD_MEMBERS:
            batch.add_column(sa.Column(f"p_{m}", sa.Float))
    for m in OLD_MEMBERS:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"UPDATE predictions SET p_{m} = (votes::json ->> '{m}')::float")
        else:
            op.execute(f"UPDATE predictions SET p_{m} = json_extract(votes, '$.{m}')")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("votes")
