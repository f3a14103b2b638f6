"""The `backup` step with `panel_archive`: the archive is rendered for the step's host and
taken into a fresh backup, and a backup this phase already made is reused only when it
holds that host's panel archive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from daemon.backup.manifest import PANEL_ARCHIVE, BackupObject, Manifest
from daemon.backup.panel_archive import PanelArchive
from daemon.backup.views import BackupView
from daemon.domain.snapshot import Service
from daemon.domain.states import BackupStatus
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.steps import StepContext, StepFailedError
from daemon.playbooks.steps.backup import BackupStep
from daemon.playbooks.steps.specs import BackupSpec

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = BackupSpec.model_validate(
    {
        "name": "Back up, the panel's package in it",
        "type": "backup",
        "panel_archive": {
            "command": 'pkgacct {{ service.system_user }} "$LAPSE_ARCHIVE_DIR"',
            "file": "cpmove-{{ service.system_user }}.tar.gz",
            "format": "tar.gz",
            "work_dir": "{{ vars.state_dir }}/panel-archives",
        },
    }
)


def _view(*objects: BackupObject) -> BackupView:
    manifest = Manifest("b1", "acct-1", "suspend", NOW.isoformat(), objects=list(objects))
    return BackupView(
        "b1",
        "acct-1",
        "local",
        "/x",
        BackupStatus.VERIFIED,
        "suspend",
        NOW,
        NOW,
        NOW,
        1,
        None,
        manifest,
    )


@dataclass
class FakeBackups:
    """The backup service as the step sees it: one existing backup, and what was asked."""

    existing: BackupView | None
    made: list[list[PanelArchive]] = field(default_factory=list)
    store: Any = None

    def latest_verified(self, account_id: str, since: datetime | None = None) -> BackupView | None:
        return self.existing

    def create(self, account_id: str, **options: Any) -> BackupView:
        self.made.append(list(options["panel_archives"]))
        return _view()


def _context(backups: FakeBackups, user: str = "alice") -> StepContext:
    service = Service(host="web1", system_user=user, docroot="/home/alice/public_html")
    return StepContext(
        account_id="acct-1",
        phase="suspend",
        service=service,
        host_name="web1",
        transport=cast(Any, None),
        variables={"service": {"system_user": user}, "vars": {"state_dir": "/var/lib/lapse"}},
        backups=cast(Any, backups),
        pages=MaintenancePages(),
        clock=lambda: NOW,
        since=NOW,
    )


def _files() -> BackupObject:
    return BackupObject("files-1.tar.zst", "files", "/home/alice/public_html", "zstd", 1, "0")


def _panel(host: str) -> BackupObject:
    return BackupObject("panel-1.tar.gz", PANEL_ARCHIVE, "x", "gzip", 1, "0", host=host)


def test_the_archive_is_rendered_for_the_host_and_taken_into_the_backup() -> None:
    backups = FakeBackups(existing=None)
    outcome = BackupStep().run(SPEC, _context(backups, user="alice.b"))
    assert outcome.changed
    assert backups.made == [
        [
            PanelArchive(
                host="web1",
                command='pkgacct alice.b "$LAPSE_ARCHIVE_DIR"',
                file="cpmove-alice.b.tar.gz",
                format="tar.gz",
                work_dir="/var/lib/lapse/panel-archives",
                label=SPEC.name,
            )
        ]
    ]


def test_a_backup_without_this_hosts_panel_archive_is_not_reused() -> None:
    for existing in (_view(_files()), _view(_files(), _panel("web2"))):
        backups = FakeBackups(existing=existing)
        outcome = BackupStep().run(SPEC, _context(backups))
        assert outcome.changed and len(backups.made) == 1


def test_a_backup_holding_this_hosts_panel_archive_is_reused() -> None:
    backups = FakeBackups(existing=_view(_files(), _panel("web1")))
    outcome = BackupStep().run(SPEC, _context(backups))
    assert not outcome.changed and outcome.output == {"backup": "b1", "reused": True}
    assert backups.made == []


@pytest.mark.parametrize("user", ["../../etc/x", "a/b", "x\ny", "alice smith"])
def test_a_file_name_that_is_not_plain_fails_the_step_before_anything_runs(user: str) -> None:
    backups = FakeBackups(existing=None)
    with pytest.raises(StepFailedError, match="not a plain file name"):
        BackupStep().run(SPEC, _context(backups, user=user))
    assert backups.made == []
