"""terminal kind: cash register or webshop

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:00:00

A cash register (registered with registerTerminal) keeps one live invoice; a webshop
terminal (created by the operator, `seqr-gateway add-terminal --webshop`) keeps many.
Every terminal before this revision was registered with registerTerminal.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                      server_default='CASH_REGISTER'))


def downgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_column('kind')
