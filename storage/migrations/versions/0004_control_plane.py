"""control plane: request journal, fault rules, virtual clock, notification requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('control_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clock_frozen_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('clock_offset_seconds', sa.Float(), nullable=False),
    sa.Column('updated_at', storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('journal_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=True),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('principal_type', sa.String(length=32), nullable=True),
    sa.Column('principal_id', sa.String(length=200), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('terminal_id', sa.String(length=64), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('result_code', sa.Integer(), nullable=True),
    sa.Column('fault', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('injected', sa.String(length=200), nullable=True),
    sa.Column('deviations', sa.Text(), nullable=True),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('fault_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('operation', sa.String(length=64), nullable=True),
    sa.Column('principal_id', sa.String(length=200), nullable=True),
    sa.Column('terminal_id', sa.String(length=64), nullable=True),
    sa.Column('nth', sa.Integer(), nullable=True),
    sa.Column('every', sa.Integer(), nullable=True),
    sa.Column('times', sa.Integer(), nullable=True),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('effect', sa.String(length=32), nullable=False),
    sa.Column('result_code', sa.Integer(), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('delay_ms', sa.Integer(), nullable=True),
    sa.Column('hold_seconds', sa.Float(), nullable=True),
    sa.Column('matched', sa.Integer(), nullable=False),
    sa.Column('fired', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('method', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.drop_column('body')
        batch_op.drop_column('method')
    op.drop_table('fault_rules')
    op.drop_table('journal_entries')
    op.drop_table('control_state')
