"""Backups: site files, databases and history streamed from hosts into a store, verified,
kept for their retention and restorable."""
