"""Billing sources: where Lapse learns who owes what."""
