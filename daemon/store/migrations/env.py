"""Alembic environment: migrations run on a connection Lapse hands over."""

from alembic import context

from daemon.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `lapse migrate`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite can only alter tables by copying them; batch mode does that.
    render_as_batch=connection.dialect.name == "sqlite",
    # APScheduler owns its job table; migrations leave it alone.
    include_name=lambda name, type_, _parent: not (type_ == "table" and name == "apscheduler_jobs"),
)
with context.begin_transaction():
    context.run_migrations()
