"""The transport contract: what steps, backups and restores rely on from every transport
(daemon/transport/base.py), checked against each of them.

- a script runs under bash and gives back its exit status, its output byte for byte and
  the tail of its stderr; a failure raises CommandError naming the command, the host,
  the status and stderr; a pipeline fails when any of its stages fails;
- the script reaches bash exactly as written: values shell-quoted into it (as every
  caller quotes them) come out as they went in, and run nothing;
- stdin and stdout stream (a file put through stdin lands byte for byte, on `start` and
  on `start_bulk`), and heavy stderr never stalls stdout;
- a command silent past the command timeout raises TransportError; leaving `start`
  early stops the command and everything it started, silent or not: the rest of its
  pipeline, and what `timeout` put in a process group of its own;
- writing to a command that stopped reading, or to a host that cannot be reached,
  raises TransportError.

To add a transport: write a factory taking a Kit and returning a TransportLab (the
transport built by `create_transport` from a [hosts] entry reaching the lab, and a
directory on that host for the test's files), then add one line to IMPLEMENTATIONS
below. Every check here then runs against it; a part of the contract it cannot meet yet
goes into GAPS, with the reason, and its test is then a strict xfail for it.

Each check is a plain function of a lab, so `test_a_broken_transport_fails_the_check`
can run it against a deliberately broken transport and show that it fails.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import Any

import pytest

from daemon.config.schema import HostConfig
from daemon.domain.errors import LapseError
from daemon.transport import CommandError, Transport, TransportError, create_transport
from daemon.transport.local import LocalProcess, LocalTransport
from tests.contracts.kit import Kit, check_fails
from tests.lab.backup_helpers import local_host, ssh_host
from tests.lab.services.sshd import SSHServer

# Parts of the contract an implementation does not meet yet, and why. Its test is then
# expected to fail (strictly: once the gap is closed, the entry must go).
GAPS: dict[str, str] = {}


@dataclass
class TransportLab:
    """A transport to check, built from a [hosts] entry: `make(**options)` builds another
    from the same entry with `options` changed (command_timeout="1s", port=1, ...);
    `scratch` is a directory on its host for the test's files; `gaps` names the GAPS
    it has."""

    make: Callable[..., Transport]
    scratch: Path
    transport: Transport
    gaps: frozenset[str] = frozenset()

    def expect_gap(self, gap: str, request: pytest.FixtureRequest) -> None:
        """Mark the running test as expected to fail when this transport has `gap`."""
        if gap in self.gaps:
            request.applymarker(pytest.mark.xfail(reason=GAPS[gap], strict=True))


def _lab(
    kit: Kit, name: str, host: Callable[..., dict[str, Any]], gaps: frozenset[str] = frozenset()
) -> TransportLab:
    def make(**options: Any) -> Transport:
        made = create_transport(name, HostConfig.model_validate(host(**options)))
        kit.later(made.close)
        return made

    scratch = kit.tmp_path / "on the host"
    scratch.mkdir()
    return TransportLab(make, scratch, make(), gaps)


def local(kit: Kit) -> TransportLab:
    """Commands on this machine."""
    return _lab(kit, "this-machine", lambda **options: local_host([kit.tmp_path], **options))


def ssh(kit: Kit) -> TransportLab:
    """Commands over SSH on the lab's sshd, as root, the host key checked."""
    sshd: SSHServer = kit.service("sshd")
    host = lambda **options: ssh_host(sshd, [kit.tmp_path], **options)  # noqa: E731
    return _lab(kit, "lab", host)


# One entry per transport: a factory taking a Kit and returning its TransportLab.
IMPLEMENTATIONS = [
    pytest.param(local, id="local"),
    pytest.param(ssh, id="ssh"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def lab(request: pytest.FixtureRequest, kit: Kit) -> TransportLab:
    factory: Callable[[Kit], TransportLab] = request.param
    return factory(kit)


# Values a billing system or an attacker may put into a command: quotes, expansions,
# separators, globs, a leading dash, a line break, backslashes and non-ASCII.
HOSTILE = [
    "it's",
    'say "hi"',
    "$(touch pwned-dollar)",
    "`touch pwned-backtick`",
    "; touch pwned-semicolon",
    "&& touch pwned-and || touch pwned-or",
    "| touch pwned-pipe",
    "> pwned-redirect",
    "*",
    "-rf",
    "line one\nline two",
    "back\\slash\\",
    "$HOME ${PATH} $1",
    "Grüße ☃",
    "",
]


def _sleeper(seconds: int = 86400) -> tuple[str, str]:
    """A `sleep` of about `seconds` no other process runs, and a pgrep pattern finding it
    (the bracket keeps the pattern from matching the command line of the pgrep that looks)."""
    duration = f"{seconds}.{secrets.randbelow(10**6):06d}"
    return f"sleep {duration}", f"sleep {duration[:-1]}[{duration[-1]}]"


def _running(transport: Transport, pattern: str) -> bool:
    """Whether a process matching `pattern` runs on the transport's host."""
    found = transport.run(f"pgrep -f {quote(pattern)} || true", "look for the command")
    return bool(found.stdout.strip())


# --- the checks ------------------------------------------------------------------------


def check_runs_a_script_with_status_and_output(lab: TransportLab) -> None:
    done = lab.transport.run("printf 'hello %s\\0' \"$(echo world)\"; echo note >&2", "greet")
    assert (done.status, done.stdout, done.stderr) == (0, b"hello world\x00", "note\n")

    failed = lab.transport.run("printf partial; echo why >&2; exit 3", "try", check=False)
    assert (failed.status, failed.stdout, failed.stderr) == (3, b"partial", "why\n")


def check_a_failing_command_raises_command_error(lab: TransportLab) -> None:
    with pytest.raises(CommandError) as caught:
        lab.transport.run("echo 'disk quota exceeded' >&2; exit 7", "quota check")

    assert isinstance(caught.value, LapseError)
    assert (caught.value.status, caught.value.label) == (7, "quota check")
    assert caught.value.host == lab.transport.name
    assert "quota check" in str(caught.value)
    assert "disk quota exceeded" in str(caught.value)


def check_a_pipeline_fails_when_any_stage_fails(lab: TransportLab) -> None:
    # Without pipefail this would report gzip's status 0 and hide the failed dump.
    with pytest.raises(CommandError) as caught:
        lab.transport.run("(echo partial; exit 3) | gzip -c > /dev/null", "dump")
    assert caught.value.status == 3


def check_quoted_values_arrive_as_they_are(lab: TransportLab) -> None:
    arguments = " ".join(quote(value) for value in HOSTILE)
    script = f"cd {quote(str(lab.scratch))} && printf '%s\\0' {arguments}"

    done = lab.transport.run(script, "echo hostile values", check=False)

    assert done.status == 0, done.stderr
    assert done.stdout.decode().split("\0")[:-1] == HOSTILE
    assert sorted(os.listdir(lab.scratch)) == []  # nothing ran, nothing was written


def check_heavy_stderr_does_not_block_stdout(lab: TransportLab) -> None:
    """20 MB on each stream at once: a reader that ignores stderr would stall."""
    script = "head -c 20000000 /dev/zero >&2 & head -c 20000000 /dev/zero; wait"
    with lab.transport.start(script, "noisy") as process:
        received = len(process.read_all())
        result = process.check()
    assert received == 20_000_000
    assert len(result.stderr) <= 64 * 1024  # only the tail is kept


def check_stdin_streams_into_the_command(lab: TransportLab) -> None:
    data = os.urandom(8 * 1024 * 1024)
    for start in (lab.transport.start, lab.transport.start_bulk):
        with start("sha256sum | cut -d' ' -f1", "hash") as process:
            for offset in range(0, len(data), 1 << 20):
                process.write(data[offset : offset + (1 << 20)])
            process.close_stdin()
            output = process.read_all().decode().strip()
            process.check()
        assert output == hashlib.sha256(data).hexdigest(), start


def check_a_file_put_through_stdin_lands_byte_for_byte(lab: TransportLab) -> None:
    data = os.urandom(300_000) + b"\x00\r\nno newline at the end"
    path = lab.scratch / "it's a page.html"

    lab.transport.run(f"cat > {quote(str(path))}", "put the page", stdin=data)

    assert path.read_bytes() == data
    assert lab.transport.run(f"cat -- {quote(str(path))}", "get the page").stdout == data


def check_a_silent_command_times_out(lab: TransportLab) -> None:
    transport = lab.make(command_timeout="1s")
    # Short, so that a transport without a timeout fails this check rather than hang.
    sleeper, pattern = _sleeper(6)
    try:
        for script in (sleeper, f"exec >&-; {sleeper}"):  # stdout open, then closed
            began = time.monotonic()
            with pytest.raises(TransportError) as silent:
                transport.run(script, "hang")
            assert time.monotonic() - began < 4, script
            assert "1 s" in str(silent.value)
    finally:
        lab.transport.run(f"pkill -KILL -f {quote(pattern)} || true", "clean up")


def _leave_early(lab: TransportLab, script: str, pattern: str, first: bytes) -> None:
    """Start `script`, read its first output, fail in the block; then the processes
    matching `pattern` must be gone within 5 s (the ssh watchdog looks every second)."""
    try:
        with pytest.raises(RuntimeError), lab.transport.start(script, "long") as process:
            assert process.read(len(first)) == first
            assert _running(lab.transport, pattern)
            raise RuntimeError("the consumer of the output failed")
        deadline = time.monotonic() + 5
        while _running(lab.transport, pattern) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(lab.transport, pattern), "the command outlived its start block"
    finally:
        lab.transport.run(f"pkill -KILL -f {quote(pattern)} || true", "clean up")


def check_leaving_start_early_stops_a_streaming_command(lab: TransportLab) -> None:
    # What `start` is for: a backup's `tar | zstd` whose upload failed.
    token = f"lapse-contract-{secrets.token_hex(6)}"
    _leave_early(lab, f"yes {token} | cat", f"yes {token[:-1]}[{token[-1]}]", token.encode())


def check_leaving_start_early_stops_a_silent_command(lab: TransportLab) -> None:
    # One sleeper under `timeout` (as every playbook `run` step is), which puts it in a
    # process group of its own; one in a pipeline.
    sleeper, pattern = _sleeper()
    script = f"echo started; timeout 600 {sleeper} & {sleeper} | cat; wait"
    _leave_early(lab, script, pattern, b"started\n")


def check_writing_to_a_command_that_stopped_reading(lab: TransportLab) -> None:
    chunk = b"\0" * (1 << 20)
    with pytest.raises(TransportError), lab.transport.start("exit 0", "reads nothing") as process:
        for _ in range(256):  # far beyond what pipes and SSH windows hold
            process.write(chunk)


def check_an_unreachable_host_raises_transport_error(lab: TransportLab, monkeypatch: Any) -> None:
    # No sshd on port 1 for ssh; no bash on the PATH for this machine.
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TransportError) as unreachable:
        lab.make(port=1).run("true", "probe")
    assert isinstance(unreachable.value, LapseError)
    assert lab.transport.name in str(unreachable.value)


# --- the contract, run against every transport -----------------------------------------


def test_runs_a_script_with_status_and_output(lab: TransportLab) -> None:
    check_runs_a_script_with_status_and_output(lab)


def test_a_failing_command_raises_command_error_naming_status_and_stderr(
    lab: TransportLab,
) -> None:
    check_a_failing_command_raises_command_error(lab)


def test_a_pipeline_fails_when_any_stage_fails(lab: TransportLab) -> None:
    check_a_pipeline_fails_when_any_stage_fails(lab)


def test_quoted_hostile_values_arrive_as_they_are_and_run_nothing(lab: TransportLab) -> None:
    check_quoted_values_arrive_as_they_are(lab)


def test_heavy_stderr_does_not_block_stdout(lab: TransportLab) -> None:
    check_heavy_stderr_does_not_block_stdout(lab)


def test_stdin_streams_into_the_command(lab: TransportLab) -> None:
    check_stdin_streams_into_the_command(lab)


def test_a_file_put_through_stdin_lands_byte_for_byte(lab: TransportLab) -> None:
    check_a_file_put_through_stdin_lands_byte_for_byte(lab)


def test_a_silent_command_times_out(lab: TransportLab) -> None:
    check_a_silent_command_times_out(lab)


def test_leaving_start_early_stops_a_streaming_command_and_its_pipeline(
    lab: TransportLab,
) -> None:
    check_leaving_start_early_stops_a_streaming_command(lab)


def test_leaving_start_early_stops_a_silent_command_and_its_pipeline(lab: TransportLab) -> None:
    check_leaving_start_early_stops_a_silent_command(lab)


def test_writing_to_a_command_that_stopped_reading_raises(lab: TransportLab) -> None:
    check_writing_to_a_command_that_stopped_reading(lab)


def test_an_unreachable_host_raises_transport_error(
    lab: TransportLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_an_unreachable_host_raises_transport_error(lab, monkeypatch)


# --- the checks can fail ---------------------------------------------------------------


class _Broken(LocalTransport):
    """A local transport with one flaw; subclasses say which."""

    def argv_of(self, script: str) -> list[str]:
        return ["bash", "-o", "pipefail", "-c", script]

    def _spawn(self, script: str, label: str) -> LocalProcess:
        self._slots.acquire()
        popen = subprocess.Popen(
            self.argv_of(script),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return self.process(popen, label)

    def process(self, popen: subprocess.Popen[bytes], label: str) -> LocalProcess:
        return LocalProcess(self.name, label, popen, self._timeout)


class _NoPipefail(_Broken):
    def argv_of(self, script: str) -> list[str]:
        return ["bash", "-c", script]


class _QuotesNaively(_Broken):
    """Wraps the script in single quotes, as a remote command line, without escaping it."""

    def argv_of(self, script: str) -> list[str]:
        return ["bash", "-c", f"bash -o pipefail -c '{script}'"]


class _KillsBashOnly(_Broken):
    """Kills the shell (it shares this process's group), not the pipeline it started."""

    def process(self, popen: subprocess.Popen[bytes], label: str) -> LocalProcess:
        process = super().process(popen, label)
        process.kill = popen.kill  # type: ignore[method-assign]
        return process


class _WaitsForOutputForEver(_Broken):
    def process(self, popen: subprocess.Popen[bytes], label: str) -> LocalProcess:
        process = super().process(popen, label)
        process.read = popen.stdout.read1  # type: ignore[method-assign,union-attr]
        return process


class _DropsEveryOtherChunk(_Broken):
    """Reads all of stdout (so the command never blocks) but hands on only half of it."""

    def process(self, popen: subprocess.Popen[bytes], label: str) -> LocalProcess:
        process = super().process(popen, label)
        read1 = popen.stdout.read1  # type: ignore[union-attr]

        def read(size: int) -> bytes:
            read1(size)
            kept: bytes = read1(size)
            return kept

        process.read = read  # type: ignore[method-assign]
        return process


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_NoPipefail, check_a_pipeline_fails_when_any_stage_fails),
        (_QuotesNaively, check_quoted_values_arrive_as_they_are),
        (_KillsBashOnly, check_leaving_start_early_stops_a_streaming_command),
        (_KillsBashOnly, check_leaving_start_early_stops_a_silent_command),
        (_WaitsForOutputForEver, check_a_silent_command_times_out),
        (_DropsEveryOtherChunk, check_heavy_stderr_does_not_block_stdout),
        (_DropsEveryOtherChunk, check_a_file_put_through_stdin_lands_byte_for_byte),
    ],
)
def test_a_broken_transport_fails_the_check(
    kit: Kit,
    monkeypatch: pytest.MonkeyPatch,
    broken: type[_Broken],
    check: Callable[[TransportLab], None],
) -> None:
    def make(command_timeout: str = "1h") -> Transport:
        seconds = {"1s": 1.0, "1h": 3600.0}[command_timeout]
        return broken("this-machine", command_timeout=seconds)

    scratch = kit.tmp_path / "on the host"
    scratch.mkdir()
    # Whatever a broken transport runs by mistake runs there, never in the working tree.
    monkeypatch.chdir(scratch)
    check_fails(lambda: check(TransportLab(make, scratch, make())))
