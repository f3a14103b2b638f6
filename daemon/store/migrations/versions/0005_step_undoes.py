"""an undo step names the suspend step it undoes: undoes on step_records

Revision ID: 0005_step_undoes
Revises: 0004_payment_events
Create Date: 2026-12-03 05:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_step_undoes'
down_revision = '0004_payment_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Records written before this revision name nothing; an unsuspend run an older
    # release left unfinished is refused on resume (daemon.playbooks.planning) rather
    # than guessed at.
    with op.batch_alter_table('step_records') as batch:
        batch.add_column(sa.Column('undoes', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('step_records') as batch:
        batch.drop_column('undoes')
