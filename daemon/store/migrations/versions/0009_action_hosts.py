"""a phase counts against every host it works on: scheduled_actions.hosts

Revision ID: 0009_action_hosts
Revises: 0008_work_pool
Create Date: 2026-12-03 17:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009_action_hosts'
down_revision = '0008_work_pool'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The one host an action counted against becomes the first of its hosts; an action
    # queued before this revision keeps counting against that one alone.
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.add_column(sa.Column('hosts', sa.String(length=1024), nullable=True))
    op.execute(sa.text('UPDATE scheduled_actions SET hosts = host'))
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.drop_column('host')


def downgrade() -> None:
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.add_column(sa.Column('host', sa.String(length=63), nullable=True))
    # Back to one host: the first named.
    op.execute(
        sa.text(
            "UPDATE scheduled_actions SET host = CASE WHEN instr(hosts, ' ') > 0 "
            "THEN substr(hosts, 1, instr(hosts, ' ') - 1) ELSE hosts END"
        )
        if op.get_bind().dialect.name == 'sqlite'
        else sa.text("UPDATE scheduled_actions SET host = split_part(hosts, ' ', 1)")
    )
    with op.batch_alter_table('scheduled_actions') as batch:
        batch.drop_column('hosts')
