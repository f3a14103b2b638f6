"""Naming the process that runs a playbook action, and telling whether it still runs.

An action is claimed by one process at a time (the daemon, or an operator's
`lapse suspend` / `lapse retry`). A claim names the host, the process id and the
process's start time, so a process id reused after a crash or reboot is not
mistaken for the one that claimed it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start(pid: int) -> str | None:
    """Return the start time of process `pid` (clock ticks since boot, from
    /proc/PID/stat), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; fields after
    # it are plain. starttime is field 22, the 20th after the closing parenthesis.
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """Return the claim string of the calling process: "host:pid:start"."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def claim_is_stale(claim: str | None) -> bool:
    """Return whether the process named by `claim` is gone, so its action may be resumed.

    An unclaimed action (None, written before claims were recorded) is stale. A
    claim from another host cannot be checked and is never stale: an operator
    resolves it (`lapse retry`).
    """
    if not claim:
        return True
    host, _, rest = claim.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return process_start(int(pid)) != start
