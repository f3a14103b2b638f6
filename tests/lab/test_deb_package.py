"""The Debian package `make deb` builds, installed on this machine with apt-get.

The package is built once per session (scripts/build-deb.sh, pip's wheel cache keeps it
quick), installed with `apt-get install ./lapse_*.deb`, checked as an operator would find
it (the command, the config, owners and modes, the unit), then purged and checked gone.
Everything lives under /opt/lapse and the system Python is never touched, so other lab
runs on the machine are unaffected. A finalizer purges the package and removes what the
test created even when an assertion fails. There is one such package per machine: each
test holds a machine-wide lock from install to purge, so pytest-xdist workers (and other
test runs) take turns, and the workers of one run share one build.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.services.common import LOCK_DIR, file_lock, user_tool

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# The system's own PATH: no venv or pyenv shim may stand in for what the package installs.
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
APT_ENV = {**ENV, "DEBIAN_FRONTEND": "noninteractive"}
# Another apt-get on the shared machine (the lab's own installs) holds the lock a while.
APT = ("apt-get", "-o", "DPkg::Lock::Timeout=120")
CONFIG = "/etc/lapse/config.toml"
STATE_DIR = Path("/var/lib/lapse")
# What the package installs, each gone after a purge.
INSTALLED = (
    Path("/opt/lapse"),
    Path("/usr/bin/lapse"),
    Path("/etc/lapse"),
    Path("/usr/lib/systemd/system/lapse.service"),
    Path("/usr/lib/sysusers.d/lapse.conf"),
    Path("/usr/lib/tmpfiles.d/lapse.conf"),
    Path("/usr/share/doc/lapse"),
    Path("/usr/share/man/man1/lapse.1.gz"),
)
# The only places the package may put files: nothing in the system Python's directories.
ALLOWED_ROOTS = ("/opt/lapse", "/etc/lapse", "/usr/share/doc/lapse", "/usr/share/man/man1/lapse")
ALLOWED_FILES = {
    "/opt",
    "/etc",
    "/usr",
    "/usr/bin",
    "/usr/bin/lapse",
    "/usr/lib",
    "/usr/lib/systemd",
    "/usr/lib/systemd/system",
    "/usr/lib/systemd/system/lapse.service",
    "/usr/lib/sysusers.d",
    "/usr/lib/sysusers.d/lapse.conf",
    "/usr/lib/tmpfiles.d",
    "/usr/lib/tmpfiles.d/lapse.conf",
    "/usr/share",
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/man/man1",
}


def _run(
    *argv: str, env: dict[str, str] = ENV, cwd: Path = Path("/")
) -> subprocess.CompletedProcess[str]:
    """Run argv with the system PATH in cwd; return the finished process (never raises)."""
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)


def _status() -> str:
    """dpkg's status of the lapse package, "" when dpkg knows nothing of it."""
    result = _run("dpkg-query", "-W", "-f=${Status}", "lapse")
    return result.stdout.strip() if result.returncode == 0 else ""


def _purge() -> subprocess.CompletedProcess[str]:
    """apt-get purge the package; return the finished process."""
    return _run(*APT, "purge", "-y", "lapse", env=APT_ENV)


def _as_lapse(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as the lapse system user, as the unit does."""
    return _run("runuser", "-u", "lapse", "--", *argv)


@pytest.fixture(scope="session")
def deb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built by scripts/build-deb.sh (what `make deb` runs), once per test run.

    Under pytest-xdist the workers' temp directories share a parent of this run's own:
    the first worker to need the package builds it there, the others wait and reuse it.
    """
    assert os.geteuid() == 0, "installing a package needs root; run the lab tests as root"
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out_dir = shared / "deb"
    with file_lock(shared / "deb.lock"):
        debs = list(out_dir.glob(f"lapse_{VERSION}_*.deb"))
        if not debs:
            out_dir.mkdir(exist_ok=True)
            result = subprocess.run(
                ["bash", str(ROOT / "scripts" / "build-deb.sh")],
                capture_output=True,
                text=True,
                env={**ENV, "OUT_DIR": str(out_dir)},
                check=False,
            )
            assert result.returncode == 0, result.stderr[-4000:]
            debs = list(out_dir.glob(f"lapse_{VERSION}_*.deb"))
    assert len(debs) == 1, f"expected one lapse_{VERSION}_*.deb in {out_dir}: {debs}"
    return debs[0]


@dataclass
class Install:
    """The package as installed by the fixture: the .deb and apt-get's output."""

    deb: Path
    output: str


@pytest.fixture
def installed(deb_file: Path) -> Iterator[Install]:
    """The package installed with apt-get; purged afterwards, whatever the test did.

    Holds the machine-wide deb-package lock throughout: no other test process installs
    it meanwhile. Fails when lapse is already installed: that install is not this
    test's to remove. Removes the lapse user and the state directory afterwards when
    they were not there before, so the machine is left as it was found.
    """
    with file_lock(LOCK_DIR / "lapse-lab-deb-package.lock"):
        yield from _install(deb_file)


def _install(deb_file: Path) -> Iterator[Install]:
    """Install the package, yield it, then purge it and what it left (see `installed`)."""
    assert _status() == "", f"lapse is already installed ({_status()}); purge it first"
    user_existed = _run("getent", "passwd", "lapse").returncode == 0
    state_existed = STATE_DIR.exists()
    try:
        # As the README says: apt-get takes a local file given as a path, ./ included.
        result = _run(*APT, "install", "-y", f"./{deb_file.name}", env=APT_ENV, cwd=deb_file.parent)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert _status() == "install ok installed"
        yield Install(deb=deb_file, output=result.stdout + result.stderr)
    finally:
        if _status():
            _purge()
        if not state_existed and STATE_DIR.exists():
            shutil.rmtree(STATE_DIR)
        if not user_existed and _run("getent", "passwd", "lapse").returncode == 0:
            user_tool("userdel", "lapse", check=False)
            if _run("getent", "group", "lapse").returncode == 0:
                user_tool("groupdel", "lapse", check=False)


def _owner_mode(path: Path) -> tuple[str, str, int]:
    """(user, group, permission bits) of path, not following a symlink."""
    info = path.lstat()
    group = _run("getent", "group", str(info.st_gid)).stdout.split(":")[0]
    return pwd.getpwuid(info.st_uid).pw_name, group, stat.S_IMODE(info.st_mode)


def _package_files() -> set[str]:
    """Every path dpkg records for the lapse package."""
    result = _run("dpkg-query", "-L", "lapse")
    assert result.returncode == 0, result.stderr
    return {line for line in result.stdout.splitlines() if line and line != "/."}


def test_the_package_installs_the_daemon_configured_but_stopped_and_purges_clean(
    installed: Install,
) -> None:
    # The command on PATH is the venv's, and names the version in pyproject.toml.
    assert os.readlink("/usr/bin/lapse") == "/opt/lapse/bin/lapse"
    assert shutil.which("lapse", path=ENV["PATH"]) == "/usr/bin/lapse"
    version = _run("lapse", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"lapse, version {VERSION}"

    # The shipped config is the documented example, a conffile the daemon's user can read.
    assert Path(CONFIG).read_text() == (ROOT / "config.example.toml").read_text()
    conffiles = _run("dpkg-query", "-W", "-f=${Conffiles}", "lapse").stdout.split()
    assert CONFIG in conffiles
    checked = _as_lapse("lapse", "check-config", "-c", CONFIG)
    assert checked.returncode == 0, checked.stderr
    assert f"{CONFIG}: OK" in checked.stdout
    # Without -c or $LAPSE_CONFIG, the installed config is the one used (docs/cli.md).
    by_default = _as_lapse("lapse", "check-config")
    assert by_default.returncode == 0, by_default.stderr
    assert f"{CONFIG}: OK" in by_default.stdout

    # A man page for the command and for each subcommand.
    pages = _package_files()
    assert {"/usr/share/man/man1/lapse.1.gz", "/usr/share/man/man1/lapse-brake-status.1.gz"} <= (
        pages
    )
    assert "/opt/lapse/share/lapse/monitoring/alerts.yml" in pages

    # The shipped playbooks are found where the installed daemon looks for them.
    playbooks = _as_lapse("lapse", "playbook", "check", "-c", CONFIG)
    assert playbooks.returncode == 0, playbooks.stderr
    for shipped in sorted((ROOT / "playbooks").glob("*.toml")):
        assert f"/opt/lapse/share/lapse/playbooks/{shipped.name}: OK" in playbooks.stdout
    for page in sorted((ROOT / "maintenance_pages").glob("*.html")):
        installed_page = Path("/opt/lapse/share/lapse/maintenance_pages") / page.name
        assert installed_page.read_text() == page.read_text()

    # The catalogs compiled at build time, one .mo per shipped .po, and read by the
    # installed daemon.
    for source in sorted((ROOT / "daemon" / "locale").glob("*/LC_MESSAGES/lapse.po")):
        relative = source.relative_to(ROOT).with_suffix(".mo")
        compiled = list(Path("/opt/lapse/lib").glob(f"python3*/site-packages/{relative}"))
        assert len(compiled) == 1 and compiled[0].stat().st_size > 0, relative
    translated = _run(
        "/opt/lapse/bin/python",
        "-c",
        "from daemon.notices.catalogs import Catalogs; "
        "print(Catalogs().translations('de').gettext('Kind regards,'))",
        env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"},  # /opt/lapse stays dpkg's alone
    )
    assert translated.stdout.strip() == "Mit freundlichen Grüßen", translated.stderr

    # The system user, made by sysusers: no login, its home the state directory.
    user = pwd.getpwnam("lapse")
    assert user.pw_uid < 1000 and user.pw_dir == str(STATE_DIR)
    assert user.pw_shell in {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false"}

    # Owners and modes: the config (it names secret files) for root and the lapse group
    # only; the state directory the daemon's own; the code root's and read-only to others.
    assert _owner_mode(Path("/etc/lapse")) == ("root", "lapse", 0o750)
    assert _owner_mode(Path(CONFIG)) == ("root", "lapse", 0o640)
    assert _owner_mode(STATE_DIR) == ("lapse", "lapse", 0o750)
    for unit_file in INSTALLED[3:6]:
        assert _owner_mode(unit_file) == ("root", "root", 0o644)
    for directory, dirs, files in os.walk("/opt/lapse"):
        for name in dirs + files:
            path = Path(directory) / name
            info = path.lstat()
            assert info.st_uid == 0 and info.st_gid == 0, f"{path} is not root's"
            if not stat.S_ISLNK(info.st_mode):
                assert not info.st_mode & 0o022, f"{path} is writable by others"

    # Every file is dpkg's and in Lapse's own places: the system Python is untouched,
    # and running the daemon above wrote nothing a purge would leave behind.
    dpkg_files = _package_files()
    strays = {p for p in dpkg_files if not p.startswith(ALLOWED_ROOTS) and p not in ALLOWED_FILES}
    assert not strays, f"files outside Lapse's directories: {sorted(strays)[:10]}"
    on_disk = {
        str(Path(directory) / name)
        for directory, dirs, names in os.walk("/opt/lapse")
        for name in dirs + names
    }
    assert on_disk <= dpkg_files, f"not dpkg's: {sorted(on_disk - dpkg_files)[:10]}"

    # Installed, not started: the operator edits the config first, and is told so.
    assert not Path("/etc/systemd/system/multi-user.target.wants/lapse.service").exists()
    assert "not enabled or started" in installed.output
    assert "systemctl enable --now lapse" in installed.output
    verify = _run("systemd-analyze", "verify", "/usr/lib/systemd/system/lapse.service")
    assert verify.returncode == 0, verify.stderr

    purged = _purge()
    assert purged.returncode == 0, purged.stderr
    assert _status() == ""
    left = [str(path) for path in (*INSTALLED, STATE_DIR) if os.path.lexists(path)]
    assert not left, f"left after purge: {left}"
    overrides = _run("dpkg-statoverride", "--list").stdout
    assert "/etc/lapse" not in overrides
    # Debian keeps system users on purge: files owned by the uid may remain elsewhere.


def test_purge_keeps_the_state_directory_once_it_holds_the_state_database(
    installed: Install,
) -> None:
    # The daemon's user can create its state database where the shipped config puts it.
    migrated = _as_lapse("lapse", "migrate", "-c", CONFIG)
    assert migrated.returncode == 0, migrated.stderr
    database = STATE_DIR / "state.db"
    assert _owner_mode(database)[:2] == ("lapse", "lapse")

    purged = _purge()
    assert purged.returncode == 0, purged.stderr
    assert _status() == ""
    # The state (and any local backup) is not the package's to delete; the rest is gone.
    assert database.is_file()
    assert "kept /var/lib/lapse" in purged.stdout + purged.stderr
    left = [str(path) for path in INSTALLED if os.path.lexists(path)]
    assert not left, f"left after purge: {left}"
