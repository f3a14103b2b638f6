"""The tree rule on a real host: a docroot is a real directory at exactly its configured
path, no component below the allowed root is a link, and the service's user owns it.

Each attack is what a client who owns its home can do to its own docroot's path.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.service import BackupService
from daemon.backup.tree import TreeError, check_account_tree
from daemon.config.schema import HostConfig
from daemon.domain.clock import VirtualClock
from daemon.transport import Transport
from daemon.transport.local import LocalTransport
from tests.lab.backup_helpers import backup_app, local_host, site_account, ssh_host
from tests.lab.backup_scene import NOW
from tests.lab.services.sshd import SSHServer
from tests.lab.test_transport import ssh_transport

# Two users every Debian host has, standing in for two clients' Unix users.
CLIENT, OTHER = "daemon", "bin"


@pytest.fixture(params=["ssh", "local"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Transport, HostConfig]]:
    """The lab sshd (or this machine) with allowed root tmp_path/home."""
    (tmp_path / "home").mkdir()
    if request.param == "ssh":
        sshd: SSHServer = request.getfixturevalue("sshd")
        transport: Transport = ssh_transport(sshd)
        config = HostConfig.model_validate(ssh_host(sshd, [tmp_path / "home"]))
    else:
        transport = LocalTransport("this-machine")
        config = HostConfig.model_validate(local_host([tmp_path / "home"]))
    yield transport, config
    transport.close()


def client_site(home: Path, name: str, user: str = CLIENT) -> Path:
    """/home/<name>/public_html with a page, both owned by `user`."""
    docroot = home / name / "public_html"
    docroot.mkdir(parents=True)
    (docroot / "index.html").write_text(f"<h1>{name}</h1>\n")
    for path in (docroot.parent, docroot, docroot / "index.html"):
        shutil.chown(path, user, user)
    return docroot


def client_account(account_id: str, docroot: Path) -> dict[str, Any]:
    """A billing account whose service on web1 is `docroot`, run by CLIENT."""
    account = site_account(account_id, "web1", docroot, [])
    account["services"][0]["system_user"] = CLIENT
    return account


def test_a_real_docroot_owned_by_its_user_passes(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    docroot = client_site(Path(config.allowed_roots[0]), "alice")
    assert check_account_tree(transport, config, str(docroot), CLIENT) is True
    assert check_account_tree(transport, config, str(docroot), None) is True


def test_a_missing_docroot_fails_unless_allowed(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    docroot = Path(config.allowed_roots[0]) / "gone" / "public_html"
    with pytest.raises(TreeError, match=r"gone does not exist"):
        check_account_tree(transport, config, str(docroot), CLIENT)
    assert check_account_tree(transport, config, str(docroot), CLIENT, allow_missing=True) is False


def test_a_docroot_symlinked_to_another_accounts_docroot_is_refused(
    host: tuple[Transport, HostConfig],
) -> None:
    transport, config = host
    home = Path(config.allowed_roots[0])
    victim = client_site(home, "victim", OTHER)
    attacker = client_site(home, "attacker")
    shutil.rmtree(attacker)
    os.symlink(victim, attacker)
    with pytest.raises(TreeError, match=rf"{attacker} is a symbolic link"):
        check_account_tree(transport, config, str(attacker), CLIENT)
    # Even a delete phase that tolerates a missing docroot refuses a link.
    with pytest.raises(TreeError, match="is a symbolic link"):
        check_account_tree(transport, config, str(attacker), CLIENT, allow_missing=True)


def test_a_symlinked_parent_component_is_refused(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    home = Path(config.allowed_roots[0])
    client_site(home, "victim", OTHER)
    os.symlink(home / "victim", home / "attacker")
    docroot = home / "attacker" / "public_html"
    with pytest.raises(TreeError, match=rf"{home / 'attacker'} is a symbolic link"):
        check_account_tree(transport, config, str(docroot), CLIENT)


def test_a_docroot_owned_by_another_user_is_refused(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    docroot = client_site(Path(config.allowed_roots[0]), "alice", OTHER)
    with pytest.raises(TreeError, match=rf"{docroot} is owned by uid 2, not by daemon \(uid 1\)"):
        check_account_tree(transport, config, str(docroot), CLIENT)


def test_a_docroot_of_a_user_no_longer_on_the_host_may_not_belong_to_another(
    host: tuple[Transport, HostConfig],
) -> None:
    transport, config = host
    docroot = client_site(Path(config.allowed_roots[0]), "alice", OTHER)
    with pytest.raises(TreeError, match=r"owned by bin \(uid 2\), and lapse-gone-7 is no user"):
        check_account_tree(transport, config, str(docroot), "lapse-gone-7")
    os.chown(docroot, 54321, 54321)  # what a removed user leaves behind
    assert check_account_tree(transport, config, str(docroot), "lapse-gone-7") is True


def test_a_docroot_that_is_a_regular_file_is_refused(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    home = Path(config.allowed_roots[0])
    (home / "alice").mkdir()
    (home / "alice" / "public_html").write_text("not a directory\n")
    with pytest.raises(TreeError, match=r"public_html is not a directory"):
        check_account_tree(transport, config, str(home / "alice" / "public_html"), None)


@pytest.mark.parametrize(
    "suffix",
    ["alice/../victim/public_html", "alice/./public_html", "alice//public_html", "alice/"],
)
def test_a_path_that_is_not_plain_is_refused_before_reaching_the_host(
    host: tuple[Transport, HostConfig], suffix: str
) -> None:
    transport, config = host
    home = Path(config.allowed_roots[0])
    client_site(home, "victim", OTHER)
    with pytest.raises(TreeError, match="is not a plain absolute path"):
        check_account_tree(transport, config, f"{home}/{suffix}", None)


def test_a_docroot_outside_the_allowed_roots_or_equal_to_one_is_refused(
    host: tuple[Transport, HostConfig], tmp_path: Path
) -> None:
    transport, config = host
    for path in (tmp_path / "elsewhere", Path(config.allowed_roots[0])):
        with pytest.raises(TreeError, match="lies outside the host's allowed_roots"):
            check_account_tree(transport, config, str(path), None)


def test_hostile_values_stay_values(host: tuple[Transport, HostConfig]) -> None:
    transport, config = host
    home = Path(config.allowed_roots[0])
    docroot = home / "a b;touch pwned" / "$(touch pwned2)"
    docroot.mkdir(parents=True)
    shutil.chown(docroot, OTHER, OTHER)
    with pytest.raises(TreeError, match=r"owned by bin \(uid 2\), and x';touch pwned3;' is no"):
        check_account_tree(transport, config, str(docroot), "x';touch pwned3;'")
    assert check_account_tree(transport, config, str(docroot), None) is True
    assert not list(Path("/").glob("pwned*")) and not list(home.rglob("pwned*"))


def test_a_backup_of_a_symlinked_docroot_stores_nothing_and_alerts(
    tmp_path: Path, sqlite_url: str, sshd: SSHServer
) -> None:
    """The reported attack: the attacker's public_html points at another client's site;
    its backup must not hold the other client's files."""
    home = tmp_path / "home"
    victim = client_site(home, "victim", OTHER)
    (victim / "secret.txt").write_text("the other client's data\n")
    attacker = client_site(home, "attacker")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": ssh_host(sshd, [home])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[client_account("acct-evil", attacker)],
    )
    app.backups.create("acct-evil")  # its own tree: fine
    shutil.rmtree(attacker)
    os.symlink(victim, attacker)
    with capture_logs() as logs, pytest.raises(BackupError, match="public_html is a symbolic link"):
        app.backups.create("acct-evil")
    statuses = sorted(backup.status for backup in app.backups.list("acct-evil"))
    assert statuses == ["failed", "verified"]
    failed = next(b for b in app.backups.list("acct-evil") if b.status == "failed")
    assert not list((tmp_path / "backups").rglob(f"*{failed.id}*"))
    alerts = [entry for entry in logs if entry["event"] == "ops alert"]
    assert [entry["alert"] for entry in alerts] == ["backup-failed"]
    assert "breaks the tree rule" in alerts[0]["detail"]
    app.transports.close()


def test_a_restore_into_a_symlinked_path_writes_nothing(
    tmp_path: Path, sqlite_url: str, sshd: SSHServer
) -> None:
    home = tmp_path / "home"
    victim = client_site(home, "victim", OTHER)
    before = sorted(path.name for path in victim.iterdir())
    site = client_site(home, "alice")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": ssh_host(sshd, [home])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[client_account("acct-1", site)],
    )
    backup = app.backups.create("acct-1")
    os.symlink(victim, home / "staging")
    with pytest.raises(BackupError, match=r"home/staging\b[^;]* a symlink"):
        restore_backup(app.backups, RestoreRequest(backup.id, path=str(home / "staging")))
    with pytest.raises(BackupError, match=r"home/staging\b[^;]* a symlink"):
        restore_backup(app.backups, RestoreRequest(backup.id, path=str(home / "staging" / "x")))
    assert sorted(path.name for path in victim.iterdir()) == before
    app.transports.close()


def test_a_link_swapped_in_between_measuring_and_tar_is_not_followed(
    tmp_path: Path, sqlite_url: str, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tar runs in the same command as a fresh tree check, in the directory it checked."""
    home = tmp_path / "home"
    victim = client_site(home, "victim", OTHER)
    attacker = client_site(home, "attacker")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": ssh_host(sshd, [home])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[client_account("acct-evil", attacker)],
    )
    measured = BackupService._measured

    def measured_then_swap(self: BackupService, *args: Any) -> tuple[str, int]:
        result = measured(self, *args)
        shutil.rmtree(attacker)
        os.symlink(victim, attacker)
        return result

    monkeypatch.setattr(BackupService, "_measured", measured_then_swap)
    with pytest.raises(BackupError, match="public_html is a symbolic link"):
        app.backups.create("acct-evil")
    assert not [p for p in (tmp_path / "backups").rglob("*") if p.is_file()]
    app.transports.close()
