"""payment events stay pending until acted on: handled_at on webhook_events

Revision ID: 0004_payment_events
Revises: 0003
Create Date: 2026-12-02 18:40:00
"""

from alembic import op
import sqlalchemy as sa
import daemon.store.types


revision = '0004_payment_events'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_events') as batch:
        batch.add_column(
            sa.Column('handled_at', daemon.store.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch.create_index('ix_webhook_events_pending', ['handled_at', 'account_id'], unique=False)
    # Events received before this revision were acted on when they arrived.
    op.execute("UPDATE webhook_events SET handled_at = received_at")


def downgrade() -> None:
    with op.batch_alter_table('webhook_events') as batch:
        batch.drop_index('ix_webhook_events_pending')
        batch.drop_column('handled_at')
