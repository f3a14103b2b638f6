"""Helpers shared by the lab services: ports, binaries, users, processes and readiness."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: How long a service may take to become ready before the lab gives up on it.
READY_TIMEOUT = 30.0

#: The user the database servers run as: PostgreSQL refuses to run as root.
LAB_USER = "lapselab"

DEPS_HINT = "run `make lab-deps` (scripts/install-lab-deps.sh) to install the lab packages"

#: Where machine-wide lab locks live (file_lock): every process on the machine sees them.
LOCK_DIR = Path("/run/lock")

#: How often, and how far apart, a user tool is retried when another holds the passwd lock.
USER_TOOL_ATTEMPTS = 10
USER_TOOL_PAUSE = 0.5


class LabError(RuntimeError):
    """A lab service could not be set up or did not become ready."""


class LabDependencyError(LabError):
    """A binary the lab needs is not installed."""


def require_binary(name: str) -> str:
    """Find a binary the lab needs.

    Takes an absolute path or a name looked up on PATH (plus the sbin directories, which a
    non-login root shell may lack). Returns the absolute path. Raises LabDependencyError,
    naming `make lab-deps`, when it is not installed.
    """
    if os.path.isabs(name):
        if os.access(name, os.X_OK):
            return name
    else:
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        found = shutil.which(name, path=search)
        if found:
            return found
    raise LabDependencyError(f"lab: {name} is not installed; {DEPS_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago (bind to port 0, then close).

    A small race remains (another process may take it before the service binds it); it is
    acceptable on a test machine and far simpler than passing sockets to every server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) while the block runs.

    Waits for any other holder first: another pytest-xdist worker of the same run, or
    another test run on the machine when `path` is machine-wide (LOCK_DIR). The lock
    goes with the process, so a killed holder never leaves it taken.
    """
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def user_tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shadow tool (useradd, usermod, userdel, groupdel) and return its result.

    The tools refuse to wait long for the lock on /etc/passwd ("cannot lock ...; try
    again later"), which another test process may hold: that refusal is retried, up to
    USER_TOOL_ATTEMPTS times. With `check`, raises LabError when the tool still fails.
    """
    for _attempt in range(USER_TOOL_ATTEMPTS):
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if result.returncode == 0 or "try again later" not in result.stderr:
            break
        time.sleep(USER_TOOL_PAUSE)
    if check and result.returncode != 0:
        raise LabError(
            f"lab: {' '.join(argv)} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    return result


def ensure_user(
    name: str, *, system: bool = True, login_shell: str | None = None
) -> pwd.struct_passwd:
    """Create the local Unix user `name` with a home directory unless it already exists.

    Idempotent, so a second run (or a stale user from an earlier run) is fine. Returns its
    passwd entry. Raises LabError when useradd fails and the user still does not exist.
    """
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    argv = [require_binary("useradd"), "--create-home"]
    if system:
        argv.append("--system")
    if login_shell:
        argv += ["--shell", login_shell]
    argv.append(name)
    result = user_tool(*argv, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        # Only fail when the user is still missing: a concurrent run may have created it.
        raise LabError(f"lab: could not create user {name}: {result.stderr.strip()}") from None


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give `path` and everything under it to `user` (its primary group too)."""
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for entry in dirs + files:
            os.lchown(os.path.join(root, entry), user.pw_uid, user.pw_gid)


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last `lines` lines of the log at `path`, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def run_checked(
    argv: Sequence[str], what: str, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a setup command and return its result.

    Takes the argv, a short description for the error and extra subprocess.run arguments.
    Raises LabError with the command's output when it exits non-zero.
    """
    result = subprocess.run(  # type: ignore[call-overload]
        list(argv), capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode != 0:
        raise LabError(
            f"lab: {what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}{result.stderr}"
        )
    return result  # type: ignore[no-any-return]


@dataclass
class ManagedProcess:
    """A service process the lab started, its log file and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    #: Signal asking for a clean, quick shutdown (PostgreSQL wants SIGINT: SIGTERM would
    #: wait for clients to disconnect).
    stop_signal: int = signal.SIGTERM

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        stop_signal: int = signal.SIGTERM,
        **kwargs: object,
    ) -> ManagedProcess:
        """Start `argv` with stdout and stderr appended to `log_path`.

        Extra keyword arguments go to subprocess.Popen (user=, cwd=, env=...). Returns the
        handle. Raises LabError when the binary cannot be executed.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            try:
                popen = subprocess.Popen(  # type: ignore[call-overload]
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own process group: a Ctrl-C in the terminal must not kill the service
                    # before the fixture's orderly stop runs.
                    start_new_session=True,
                    **kwargs,
                )
            except OSError as exc:
                raise LabError(f"lab: could not start {name}: {exc}") from exc
        return cls(name=name, popen=popen, log_path=log_path, stop_signal=stop_signal)

    def alive(self) -> bool:
        """Return True while the process has not exited."""
        return self.popen.poll() is None

    def failure(self, reason: str) -> LabError:
        """Build a LabError for this service: `reason` followed by the tail of its log."""
        return LabError(
            f"lab: {self.name} {reason}; log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def wait_until(
        self, check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT
    ) -> None:
        """Poll `check` until it returns True.

        Raises LabError (with the log tail) when the process exits first or `timeout`
        seconds pass. `check` may raise OSError, which counts as "not yet".
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise self.failure(f"exited with status {self.popen.returncode} before {what}")
            try:
                if check():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self.failure(f"was not {what} within {timeout:.0f} s")
            time.sleep(0.05)

    def wait_for_port(self, host: str, port: int, timeout: float = READY_TIMEOUT) -> None:
        """Wait until `host:port` accepts TCP connections; raises LabError otherwise."""
        self.wait_until(
            lambda: port_open(host, port), f"accepting connections on {host}:{port}", timeout
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process: the stop signal, then SIGKILL if it is still up after `timeout`."""
        if not self.alive():
            return
        try:
            self.popen.send_signal(self.stop_signal)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=timeout)


def port_open(host: str, port: int) -> bool:
    """Return True when a TCP connection to `host:port` succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
