"""a sync skips reading an account whose raw billing data is unchanged: billing_digest on accounts

Revision ID: 0006_billing_digest
Revises: 0005_step_undoes
Create Date: 2026-12-03 07:15:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_billing_digest'
down_revision = '0005_step_undoes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts synced before this revision have none: the next sync reads them once.
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('billing_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('billing_digest')
