"""Contract suites: one per plugin role, each run against every implementation of the role.

- test_billing_source_contract.py: file (JSON, CSV), sql (SQLite, PostgreSQL), http,
  whmcs, stripe (daemon/billing/);
- test_backup_store_contract.py: local, S3 with and without Object Lock
  (daemon/backup/stores/);
- test_delivery_contract.py: smtp, outbox (daemon/notices/delivery/);
- test_transport_contract.py: local, ssh (daemon/transport/).

Each module's docstring says how to add an implementation: one entry in its
IMPLEMENTATIONS list. The suites need the lab's services (tests/conftest.py marks them
`lab`); run them with `pytest tests/contracts`.
"""
