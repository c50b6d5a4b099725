"""Quota windows: admitted calls in flight, learned window size and length, the polls' reserve;
the GMI key's quota name on each sync account.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_quotas", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("in_flight", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("window_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("window_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("keep", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("sync_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gmi_scope", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_accounts", schema=None) as batch_op:
        batch_op.drop_column("gmi_scope")
    with op.batch_alter_table("api_quotas", schema=None) as batch_op:
        batch_op.drop_column("keep")
        batch_op.drop_column("window_seconds")
        batch_op.drop_column("window_limit")
        batch_op.drop_column("in_flight")
