"""a person approves a phase the plan names: approvals

Revision ID: 0007_approvals
Revises: 0006_billing_digest
Create Date: 2026-12-03 07:00:00
"""

from alembic import op
import sqlalchemy as sa
import daemon.store.types


revision = '0007_approvals'
down_revision = '0006_billing_digest'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'approvals',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('action_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('phase', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('requested_at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('decided_at', daemon.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=100), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('alerted_at', daemon.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['action_id'], ['scheduled_actions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('action_id'),
    )
    op.create_index('ix_approvals_account_id', 'approvals', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_approvals_account_id', table_name='approvals')
    op.drop_table('approvals')
