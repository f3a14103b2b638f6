"""The hash-chained audit log: every decision and action, tamper-evident."""
