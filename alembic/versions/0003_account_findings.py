"""Findings per account: what doctor and the running service learnt where the APIs are silent.

Revision ID: 0003
Revises: 0002 (chained after main's head when main was merged into this branch; written as a
child of 0001, it touches no table of 0002 or 0004)
Create Date: 2026-12-01

One row per (account, question): whether Billomat keeps inbox metadata, which sort field it
accepts, whether GMI lists new documents at once, a write probe still to clean up, …
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_findings",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sync_accounts.id"],
            name=op.f("fk_account_findings_account_id_sync_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_account_findings")),
    )


def downgrade() -> None:
    op.drop_table("account_findings")
