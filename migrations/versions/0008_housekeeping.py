"""housekeeping: expiry and deletion of uploads, deletion of running jobs

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('models', 'datasets'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delete_requested_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('delete_requested_at')
    for table in ('models', 'datasets'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('deleted_at')
            batch_op.drop_column('expires_at')
