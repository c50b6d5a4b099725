"""Account identity and safe removal: a never-reused ref, removal that keeps the ledger, and
what the first poll found already in the target.

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-02

- ``sync_accounts.ref``: markers used the table id, which a new account could get again.
  Existing accounts get their id as ref, so markers already in Billomat inboxes stay theirs.
- ``sync_accounts.removed_at``: `accounts remove` keeps the row and its ledger; the name is
  unique only among accounts that are not removed (a partial unique index).
- ``sync_accounts.target_scan``: NULL until an account's first poll has looked in the target
  for earlier uploads; existing accounts look once after the upgrade (a restored backup).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("sync_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("target_scan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(), nullable=True))
    op.execute(sa.text("UPDATE sync_accounts SET ref = CAST(id AS VARCHAR(32))"))
    with op.batch_alter_table("sync_accounts", schema=None) as batch_op:
        batch_op.alter_column("ref", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_sync_accounts_ref"), ["ref"])
        batch_op.drop_constraint(batch_op.f("uq_sync_accounts_name"), type_="unique")
        batch_op.create_index(
            "ix_sync_accounts_live_name",
            ["name"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )


def downgrade() -> None:
    # Removed accounts cannot live beside a unique name again: they go, with their ledger.
    op.execute(sa.text("DELETE FROM sync_accounts WHERE removed_at IS NOT NULL"))
    with op.batch_alter_table("sync_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_accounts_live_name")
        batch_op.create_unique_constraint(batch_op.f("uq_sync_accounts_name"), ["name"])
        batch_op.drop_constraint(batch_op.f("uq_sync_accounts_ref"), type_="unique")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("target_scan")
        batch_op.drop_column("ref")
