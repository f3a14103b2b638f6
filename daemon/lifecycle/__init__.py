"""Applying policy decisions: events, actions, notices and wake-ups in the state DB."""
