"""report document chunks compressed with lz4 on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 08:00:00
"""

from alembic import op

from storage.models import compress_chunks_with_lz4

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    compress_chunks_with_lz4(op.get_bind())  # rows stored before keep their compression


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE report_document_chunks ALTER COLUMN data SET COMPRESSION DEFAULT")
