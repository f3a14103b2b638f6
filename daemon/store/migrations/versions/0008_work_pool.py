"""phases side by side: priority, host and lease on scheduled_actions; live daemons

Revision ID: 0008_work_pool
Revises: 0007_approvals
Create Date: 2026-12-03 07:00:00
"""

from alembic import op
import sqlalchemy as sa

import daemon.store.types


revision = '0008_work_pool'
down_revision = '0007_approvals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Actions queued before this revision get their phase's priority (0 runs first,
    # as daemon.domain.phases.PHASE_PRIORITY says) and no host (no host's limit counts
    # them); a running one has no lease, and is told stale by its claim as before.
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='4'))
        batch.add_column(sa.Column('host', sa.String(length=63), nullable=True))
        batch.add_column(sa.Column('lease_until', daemon.store.types.UtcDateTime(timezone=True), nullable=True))
    for name, priority in (('unsuspend', 0), ('suspend', 1), ('delete', 2), ('verify', 3)):
        op.execute(
            sa.text('UPDATE scheduled_actions SET priority = :p WHERE name = :n').bindparams(
                p=priority, n=name
            )
        )
    op.create_index('ix_actions_pick', 'scheduled_actions', ['kind', 'status', 'priority', 'id'])
    op.create_table(
        'daemons',
        sa.Column('id', sa.String(length=120), primary_key=True),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('seen_at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('leader', sa.Boolean(), nullable=False),
        sa.Column('running', sa.Integer(), nullable=False),
        sa.Column('last_sync', daemon.store.types.UtcDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('daemons')
    op.drop_index('ix_actions_pick', table_name='scheduled_actions')
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('host')
        batch.drop_column('priority')
