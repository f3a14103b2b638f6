"""The shared vocabulary every room speaks: the account snapshot and its stored form,
the clock, and the root of every error (`LapseError`). It imports nothing else of
Lapse and does no I/O."""
