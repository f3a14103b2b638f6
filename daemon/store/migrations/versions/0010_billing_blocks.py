"""a sync passes over the blocks of billing rows it knows: billing_blocks, billing_block on accounts

Revision ID: 0010_billing_blocks
Revises: 0009_action_hosts
Create Date: 2026-12-03 17:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_billing_blocks'
down_revision = '0009_action_hosts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No block is known before this revision: the next sync lists every account once
    # and names its block.
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('billing_block', sa.String(length=64), nullable=True))
    unread = sa.text('billing_digest IS NULL AND billing_block IS NOT NULL')
    op.create_index(
        'ix_accounts_unread_block',
        'accounts',
        ['billing_block'],
        sqlite_where=unread,
        postgresql_where=unread,
    )
    op.create_table(
        'billing_blocks',
        sa.Column('key', sa.String(length=64), primary_key=True),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('accounts', sa.Integer(), nullable=False),
        sa.Column('trees', sa.LargeBinary(), nullable=False),
        sa.Column('above', sa.LargeBinary(), nullable=False),
        sa.Column('errors', sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('billing_blocks')
    op.drop_index('ix_accounts_unread_block', table_name='accounts')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('billing_block')
