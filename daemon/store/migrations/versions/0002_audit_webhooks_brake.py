"""audit log (hash chain), webhook replay keys, daemon flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:00:00
"""

from alembic import op
import sqlalchemy as sa
import daemon.store.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_audit_log_account_id'), 'audit_log', ['account_id'], unique=False)
    head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table('webhook_events',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('received_at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('daemon_flags',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', daemon.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    _forbid_audit_edits()


def downgrade() -> None:
    _allow_audit_edits()
    op.drop_table('daemon_flags')
    op.drop_table('webhook_events')
    op.drop_table('audit_head')
    op.drop_index(op.f('ix_audit_log_account_id'), table_name='audit_log')
    op.drop_table('audit_log')


# Like the event log, the audit log refuses edits and deletions in the database itself;
# the hash chain then shows any that happened with the triggers removed.
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
_POSTGRES_TRIGGER = [
    "CREATE FUNCTION lapse_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION lapse_audit_append_only()",
]


def _forbid_audit_edits() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else _POSTGRES_TRIGGER:
        op.execute(statement)


def _allow_audit_edits() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS lapse_audit_append_only()")
