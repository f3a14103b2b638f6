"""Bulk streams into a host through the OpenSSH client, beside the paramiko connection.

paramiko sends at most the server's channel packet size per packet (32 KiB for
OpenSSH's sshd), each through some Python work: a restore streaming an archive
*into* a host spent longer in those packets than the AWS CLI piped into `ssh`
spent on the whole job. For such streams (`Transport.start_bulk`) Lapse runs the
`ssh` binary instead, with the same guarantees as the paramiko transport: the
host key is checked against the configured known_hosts file only (strict, no
user or system config read, no prompt), the configured key or the agent
authenticates, and the script runs under `bash -o pipefail` (~/.bashrc read once,
by the login shell). The process's stdin, stdout and stderr are pipes, handled as
a local command's are.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from daemon.transport.base import TransportError
from daemon.transport.local import LocalProcess, start_process

# The same cipher order as the paramiko transport: aes128-gcm is the fastest here.
_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr"


def openssh_argv(
    script: str,
    *,
    address: str,
    port: int,
    user: str,
    known_hosts: Path,
    key_file: Path | None,
    connect_timeout: float,
    keepalive: int,
) -> list[str]:
    """Return the `ssh` argv running `script` under bash with pipefail on the host.

    `--norc`, as the paramiko transport's wrapper (daemon.transport.ssh): bash started
    by sshd reads ~/.bashrc even for a command, and `exec` puts the new bash back at
    the top shell level, so it would read it a second time (a `pyenv init` hook: 0.1 s
    of every restore's extraction and swap here).
    """
    argv = ["ssh", "-F", "/dev/null", "-T", "-o", "BatchMode=yes"]
    argv += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}"]
    argv += ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    argv += ["-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    argv += ["-o", f"ServerAliveInterval={max(1, keepalive)}", "-o", "ServerAliveCountMax=3"]
    argv += ["-c", _CIPHERS]
    if key_file is not None:
        argv += ["-o", "IdentitiesOnly=yes", "-i", str(key_file)]
    argv += ["-p", str(port), "--", f"{user}@{address}"]
    return [*argv, "exec bash --norc -o pipefail -c " + shlex.quote(script)]


def spawn(host: str, label: str, argv: list[str], timeout: float) -> LocalProcess:
    """Start `argv` (from openssh_argv) and return it as a running process.

    Raises TransportError when the `ssh` binary cannot be started.
    """
    try:
        popen = start_process(argv)
    except OSError as error:
        raise TransportError(f"cannot start ssh for {label} on {host}: {error}") from error
    return LocalProcess(host, label, popen, timeout)
