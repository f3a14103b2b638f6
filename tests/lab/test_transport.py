"""The ssh transport against a real OpenSSH sshd: connection reuse and loss, session
limits, host keys, long streams and commands that die with their connection. What every
transport does (local and ssh alike) is checked by tests/contracts/test_transport_contract.py."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.backup.restore_listing import parse_listing
from daemon.backup.staging import extract_script, staged_target
from daemon.transport import HostKeyError, TransportError
from daemon.transport.ssh import SSHTransport
from tests.contracts.escaping import ESCAPING, assert_killing_the_starter_ends_it, running
from tests.lab.services.common import user_tool
from tests.lab.services.sshd import EXTRA_LOGIN_PREFIX, SSHServer, install_authorized_key


@pytest.fixture
def own_login(sshd: SSHServer) -> Iterator[tuple[str, Path]]:
    """A login user of the test's own on the lab sshd, with an empty ~/.bashrc (the lab
    machine's root runs hooks in its own, which print under concurrent logins): yields
    its name and home; killed and removed afterwards."""
    name = f"{EXTRA_LOGIN_PREFIX}{secrets.token_hex(3)}"
    public_key = Path(f"{sshd.client_key_path}.pub").read_text()
    user = install_authorized_key(public_key, name)
    home = Path(user.pw_dir)
    (home / ".bashrc").write_text("")
    try:
        yield name, home
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        user_tool("userdel", "--remove", name, check=False)


def ssh_transport(sshd: SSHServer, **options: object) -> SSHTransport:
    """An SSHTransport to the lab sshd as root; `options` override its settings."""
    settings: dict[str, object] = {
        "port": sshd.port,
        "user": sshd.root_user,
        "known_hosts": sshd.known_hosts_path,
        "key_file": sshd.client_key_path,
    } | options
    return SSHTransport("lab", sshd.host, **settings)  # type: ignore[arg-type]


def test_ssh_reuses_one_connection(sshd: SSHServer) -> None:
    transport = ssh_transport(sshd)
    try:
        transport.run("true", "first")
        first = transport.connection()
        transport.run("true", "second")
        assert transport.connection() is first
    finally:
        transport.close()


def test_ssh_reconnects_after_the_connection_dropped(sshd: SSHServer) -> None:
    transport = ssh_transport(sshd)
    try:
        transport.run("true", "first")
        transport.connection().close()
        assert transport.run("echo again", "second").stdout == b"again\n"
    finally:
        transport.close()


def test_a_dropped_connection_mid_stream_is_an_error(sshd: SSHServer) -> None:
    transport = ssh_transport(sshd)
    try:
        with (
            pytest.raises(TransportError, match="lost"),
            transport.start("head -c 200000000 /dev/zero", "stream") as process,
        ):
            assert process.read(1 << 16)
            transport.connection().sock.close()  # the link goes down under the reader
            while process.read(1 << 20):
                pass
            process.wait()
    finally:
        transport.close()


def test_session_limit_queues_commands(sshd: SSHServer) -> None:
    transport = ssh_transport(sshd, max_sessions=1)
    started: list[float] = []
    try:
        with transport.start("sleep 1", "first") as first:

            def second() -> None:
                transport.run("true", "second")
                started.append(time.monotonic())

            thread = threading.Thread(target=second)
            released = time.monotonic()
            thread.start()
            first.read_all()
            first.check()
            released = time.monotonic()
        thread.join(timeout=30)
    finally:
        transport.close()
    assert started and started[0] >= released


def test_unknown_host_key_refuses_to_connect(sshd: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    transport = ssh_transport(sshd, known_hosts=empty)
    with pytest.raises(HostKeyError, match="no key for"):
        transport.run("true", "probe")


def test_changed_host_key_refuses_to_connect(sshd: SSHServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    impostor = (tmp_path / "other_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {' '.join(impostor)}\n")
    transport = ssh_transport(sshd, known_hosts=known)
    with pytest.raises(HostKeyError, match="does not match"):
        transport.run("true", "probe")


def test_a_3_gib_stream_completes(sshd: SSHServer) -> None:
    """paramiko's own rekey at 2^29 bytes stalls long streams (paramiko #822): 3 GiB
    is six times past that point and must arrive whole."""
    size = 3 * 1024**3
    transport = ssh_transport(sshd)
    received = 0
    try:
        with transport.start(f"head -c {size} /dev/zero", "3 GiB") as process:
            while chunk := process.read(1 << 20):
                received += len(chunk)
            process.check()
    finally:
        transport.close()
    assert received == size


@pytest.mark.parametrize("form", list(ESCAPING))
def test_a_command_dies_with_the_process_that_started_it(sshd: SSHServer, form: str) -> None:
    """A daemon killed mid-command leaves nothing running on the host: without a pty sshd
    sends no hangup, so the command would otherwise run on beside the restarted daemon's.
    Nor does anything the command started: every playbook `run` step is wrapped in
    `timeout`, whose child is in a process group of its own."""
    marker = f"{86400 + secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    command = f"echo started; {ESCAPING[form].format(m=marker)}; sleep {marker}"
    child_code = f"""
import sys, time
from pathlib import Path
from daemon.transport.ssh import SSHTransport
transport = SSHTransport(
    "lab", {sshd.host!r}, port={sshd.port}, user={sshd.root_user!r},
    known_hosts=Path({str(sshd.known_hosts_path)!r}), key_file=Path({str(sshd.client_key_path)!r}),
)
with transport.start({command!r}, "long") as process:
    print(process.read(100).decode().strip(), flush=True)
    time.sleep(3600)
"""
    assert_killing_the_starter_ends_it(child_code, marker)


def test_a_command_reads_the_users_bashrc_once_and_keeps_what_it_exported(
    sshd: SSHServer, own_login: tuple[str, Path]
) -> None:
    """sshd's bash reads ~/.bashrc even for a command; the bash the transport starts must
    not read it again (each read costs every command its time, and whatever it prints
    lands in the output twice) but keeps what it exported."""
    name, home = own_login
    reads = home / "reads"
    (home / ".bashrc").write_text(f'echo "$$" >> {reads}\nexport LAPSE_FROM_RC=exported\n')
    transport = ssh_transport(sshd, user=name)
    try:
        assert transport.run('echo "$LAPSE_FROM_RC"', "rc").stdout == b"exported\n"
        assert len(reads.read_text().splitlines()) == 1
    finally:
        transport.close()


def _small_archive() -> bytes:
    """A tar of three small files: the extract script deals them to two digest lists."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("a.txt", "b.txt", "c.txt"):
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(name), 0o644
            archive.addfile(member, io.BytesIO(name.encode()))
    return buffer.getvalue()


def test_the_openssh_client_and_the_extract_scripts_digests_read_the_bashrc_once(
    sshd: SSHServer, own_login: tuple[str, Path]
) -> None:
    """The bulk path (the `ssh` binary: a restore's extraction and swap) as the paramiko
    one: the login shell reads ~/.bashrc, no bash Lapse starts reads it again, not even
    the extract script's digest processes, which run in the background at the top
    shell level (with a `pyenv init` hook, 0.1 s each)."""
    name, home = own_login
    reads = home / "reads"
    (home / ".bashrc").write_text(f'echo "$$" >> {reads}\nexport LAPSE_FROM_RC=exported\n')
    transport = ssh_transport(sshd, user=name)
    try:
        result = transport.run_standalone('echo "$LAPSE_FROM_RC"', "rc")
        assert (result.status, result.stdout) == (0, b"exported\n")
        assert len(reads.read_text().splitlines()) == 1
        reads.unlink()

        script = extract_script(staged_target(str(home / "site"), [str(home)]), "none")
        with transport.start_bulk(script, "extract") as process:
            process.write(_small_archive())
            process.close_stdin()
            output = process.read_all()
            result = process.wait()
        assert result.status == 0, result.stderr
        _, tree = parse_listing(output.partition(b"\0")[2])
        assert {path for path, entry in tree.items() if entry.digest} == {
            b"a.txt",
            b"b.txt",
            b"c.txt",
        }
        assert len(reads.read_text().splitlines()) == 1
    finally:
        transport.close()


def test_a_command_whose_session_ended_while_the_login_shell_started_never_runs(
    sshd: SSHServer, own_login: tuple[str, Path]
) -> None:
    """The login shell reads ~/.bashrc before it starts the transport's bash; a daemon
    killed in that time leaves a bash whose parent is already gone. It must not run the
    script (no orphan beside the re-run a restarted daemon makes)."""
    name, home = own_login
    ran = home / "ran"
    (home / ".bashrc").write_text("sleep 1\n")  # a slow login, as pyenv's hooks
    transport = ssh_transport(sshd, user=name)
    try:
        transport.run("true", "first")
        with transport.start(f"sleep 1; echo ran > {ran}", "cut"):
            transport.connection().close()  # the daemon dies while ~/.bashrc runs
            time.sleep(4)  # the login 1 s, the script 1 s, with time to spare
            assert not ran.exists()
        left = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True)
        assert left.stdout == ""
    finally:
        transport.close()


def test_a_script_that_ends_at_once_leaves_no_job_notice_in_its_stderr(sshd: SSHServer) -> None:
    """The wrapper starts the script as a job of its own; one that ends before job control
    is off again must not have bash's "[1]+ Exit 3" notice printed into its stderr (it
    happened about once in a hundred commands: 160 here, four at a time). As the lab's
    unprivileged user: root's ~/.bashrc on a developer's machine may print under
    concurrent logins (a `pyenv rehash` lock)."""
    transport = ssh_transport(sshd, user=sshd.user)
    seen: list[tuple[int, str]] = []

    def quick_ones() -> None:
        for _ in range(40):
            result = transport.run("echo why >&2; exit 3", "quick", check=False)
            seen.append((result.status, result.stderr))

    try:
        threads = [threading.Thread(target=quick_ones) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 160
        assert set(seen) == {(3, "why\n")}
    finally:
        transport.close()


def test_killing_a_command_leaves_the_others_on_its_connection_running(sshd: SSHServer) -> None:
    """A kill finds its command's wrapper by the token in its arguments: the commands
    beside it on the same connection, started the same way, must not be touched."""
    transport = ssh_transport(sshd)
    kept, cut = (f"{86400 + secrets.randbelow(10**6)}.{n}" for n in (1, 2))
    try:
        with transport.start(f"echo started; timeout 600 sleep {kept}", "kept") as other:
            assert other.read(8) == b"started\n"
            with transport.start(f"echo started; timeout 600 sleep {cut}", "cut") as process:
                assert process.read(8) == b"started\n"
                process.kill()
            deadline = time.monotonic() + 5
            while running(cut) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not running(cut), "the killed command runs on"
            assert running(kept), "a kill reached another command on the connection"
            other.kill()
        deadline = time.monotonic() + 5
        while running(kept) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(kept)
    finally:
        transport.close()
        for marker in (kept, cut):
            subprocess.run(["pkill", "-KILL", "-f", f"sleep {marker}"], check=False)
