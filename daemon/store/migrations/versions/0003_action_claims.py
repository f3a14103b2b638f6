"""who runs a playbook action: claimed_by on scheduled_actions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 07:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.drop_column('claimed_by')
