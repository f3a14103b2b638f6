"""Claims on playbook actions: a live claimant is respected, a gone one is not."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from daemon.playbooks.claims import claim_is_stale, process_start, this_process


def test_this_process_claim_is_live() -> None:
    claim = this_process()
    assert claim.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert not claim_is_stale(claim)


def test_a_finished_process_claim_is_stale() -> None:
    child = subprocess.Popen(["sleep", "30"])
    claim = f"{socket.gethostname()}:{child.pid}:{process_start(child.pid)}"
    assert not claim_is_stale(claim)
    child.kill()
    child.wait()
    assert claim_is_stale(claim)


def test_a_reused_process_id_does_not_keep_a_claim_alive() -> None:
    # This process is alive, but it did not start at tick 1: the claim is someone else's.
    assert claim_is_stale(f"{socket.gethostname()}:{os.getpid()}:1")


def test_claims_from_elsewhere_are_left_alone_and_missing_ones_are_stale() -> None:
    assert not claim_is_stale("another-host:1:1")
    assert claim_is_stale(None)


def test_process_start_reads_names_with_spaces_and_parentheses(tmp_path: Path) -> None:
    # The command name in /proc/PID/stat is the executable's: "a b) c" must not shift
    # the fields that follow it.
    odd = tmp_path / "a b) c"
    shutil.copy("/bin/sleep", odd)
    child = subprocess.Popen([str(odd), "30"])
    try:
        time.sleep(0.2)  # let it exec
        assert "(a b) c)" in Path(f"/proc/{child.pid}/stat").read_text()
        assert process_start(child.pid) == Path(f"/proc/{child.pid}/stat").read_text().split()[23]
    finally:
        child.kill()
        child.wait()
