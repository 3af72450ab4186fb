"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:29:32.275199
"""

import sqlalchemy as sa
from alembic import op

import storage.models
import storage.money

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ers_reference_allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('allocated_at', storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('resellers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('reseller_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reseller_id', 'user_id')
    )
    op.create_table('terminals',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('external_terminal_id', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('seqr_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('registered_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('unregistered_at', storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seqr_id')
    )
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_terminals_reseller_id'), ['reseller_id'], unique=False)

    op.create_table('invoices',
    sa.Column('reference', sa.String(length=13), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('payment_mode', sa.String(length=32), nullable=False),
    sa.Column('acknowledgment_mode', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_amount', storage.money.Money(), nullable=False),
    sa.Column('cashier_id', sa.String(length=100), nullable=True),
    sa.Column('client_invoice_id', sa.String(length=200), nullable=True),
    sa.Column('notification_url', sa.Text(), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('scanned_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('auto_pay_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('paid_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('payer_id', sa.String(length=64), nullable=True),
    sa.Column('payment_reference', sa.String(length=25), nullable=True),
    sa.Column('settled_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('reversed_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('receipt_mime_type', sa.String(length=100), nullable=True),
    sa.Column('receipt_type', sa.String(length=100), nullable=True),
    sa.Column('receipt_data', sa.LargeBinary(), nullable=True),
    sa.Column('receipt_submitted_at', storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], ),
    sa.PrimaryKeyConstraint('reference'),
    sa.UniqueConstraint('payment_reference')
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_auto_pay_at'), ['auto_pay_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoices_terminal_id'), ['terminal_id'], unique=False)

    op.create_table('period_scopes',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=True),
    sa.Column('open_period_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_reference', sa.String(length=13), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['invoice_reference'], ['invoices.reference'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_invoice_reference'), ['invoice_reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_status'), ['status'], unique=False)

    op.create_table('transaction_periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope_key', sa.String(length=80), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=True),
    sa.Column('public_id', sa.String(length=25), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('opened_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('closed_at', storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.ForeignKeyConstraint(['scope_key'], ['period_scopes.key'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('transaction_periods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transaction_periods_scope_key'), ['scope_key'], unique=False)

    op.create_table('notification_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('attempted_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_attempts_notification_id'), ['notification_id'], unique=False)

    op.create_table('report_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_key', sa.String(length=160), nullable=False),
    sa.Column('report_id', sa.String(length=32), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', storage.models.UTCDateTime(), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', storage.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['period_id'], ['transaction_periods.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_key')
    )
    with op.batch_alter_table('report_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_jobs_status'), ['status'], unique=False)

    op.create_table('transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ers_reference', sa.String(length=25), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('reseller_id', sa.String(length=64), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=False),
    sa.Column('cashier_id', sa.String(length=100), nullable=True),
    sa.Column('amount', storage.money.Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('committed_at', storage.models.UTCDateTime(), nullable=False),
    sa.Column('shop_period_id', sa.Integer(), nullable=False),
    sa.Column('terminal_period_id', sa.Integer(), nullable=False),
    sa.Column('invoice_reference', sa.String(length=32), nullable=True),
    sa.Column('refunded_reference', sa.String(length=25), nullable=True),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id'], ),
    sa.ForeignKeyConstraint(['shop_period_id'], ['transaction_periods.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], ),
    sa.ForeignKeyConstraint(['terminal_period_id'], ['transaction_periods.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ers_reference')
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transactions_refunded_reference'), ['refunded_reference'], unique=False)
        batch_op.create_index('ix_transactions_shop_period', ['shop_period_id', 'id'], unique=False)
        batch_op.create_index('ix_transactions_terminal_period', ['terminal_period_id', 'id'], unique=False)

    op.create_table('report_documents',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('mime_type', sa.String(length=50), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('generated_at', storage.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['report_jobs.id'], ),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_table('report_document_chunks',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['report_documents.job_id'], ),
    sa.PrimaryKeyConstraint('job_id', 'seq')
    )


def downgrade() -> None:
    op.drop_table('report_document_chunks')
    op.drop_table('report_documents')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_terminal_period')
        batch_op.drop_index('ix_transactions_shop_period')
        batch_op.drop_index(batch_op.f('ix_transactions_refunded_reference'))

    op.drop_table('transactions')
    with op.batch_alter_table('report_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_jobs_status'))

    op.drop_table('report_jobs')
    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_attempts_notification_id'))

    op.drop_table('notification_attempts')
    with op.batch_alter_table('transaction_periods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transaction_periods_scope_key'))

    op.drop_table('transaction_periods')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_status'))
        batch_op.drop_index(batch_op.f('ix_notifications_invoice_reference'))

    op.drop_table('notifications')
    op.drop_table('period_scopes')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_terminal_id'))
        batch_op.drop_index(batch_op.f('ix_invoices_auto_pay_at'))

    op.drop_table('invoices')
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_terminals_reseller_id'))

    op.drop_table('terminals')
    op.drop_table('reseller_users')
    op.drop_table('resellers')
    op.drop_table('ers_reference_allocations')
