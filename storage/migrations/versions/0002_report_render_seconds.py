"""report render seconds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:38:51.516737
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('report_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('render_seconds', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('report_jobs', schema=None) as batch_op:
        batch_op.drop_column('render_seconds')

