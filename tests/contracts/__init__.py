"""Contract suites: one per plugin role, each run against every implementation of the role."""
