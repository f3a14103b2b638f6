"""The playbook commands take phases by the names operators type (`verify`, not `VERIFY`)."""

from __future__ import annotations

from click.testing import CliRunner

from daemon.cli.playbooks import playbook


def test_show_offers_every_phase_by_name() -> None:
    result = CliRunner().invoke(playbook, ["show", "--help"])
    assert result.exit_code == 0
    assert "{suspend|unsuspend|delete|restore|verify}" in result.output


def test_run_offers_only_the_phases_ops_start() -> None:
    result = CliRunner().invoke(playbook, ["run", "--help"])
    assert result.exit_code == 0
    assert "{restore|verify}" in result.output


def test_run_refuses_a_lifecycle_phase_before_touching_anything() -> None:
    result = CliRunner().invoke(playbook, ["run", "acct-1", "suspend"])
    assert result.exit_code == 2
    assert "'suspend' is not one of 'restore', 'verify'" in result.output
