"""Playbooks: the operator's host procedures per phase, their step types (steps/), and
the runner that executes a queued phase step by step under Lapse's safety rules."""
