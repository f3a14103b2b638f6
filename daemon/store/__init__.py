"""The state database: models, migrations, the audit chain, the one-daemon lock, and
the rows the other rooms read and write (lifecycle records, payment events)."""
