"""How fast and how lean Lapse's backups are, against OpenSSH and the AWS CLI.

Everything runs on loopback against the lab's OpenSSH sshd and a moto S3 server
started in its own process (so the server's work does not share a process with
either side being measured). Three figures, each against its baseline in the
same run:

- SSH leg: a RUNS-times stream of a 3 GiB file read through Lapse's SSH transport
  (paramiko) vs `ssh -c aes128-gcm@openssh.com HOST 'cat FILE' > /dev/null`.
  Runs alternate between the two; `ssh_ratio` is Lapse's median throughput over
  OpenSSH's (target >= 0.9) and `ssh_ok` how many of Lapse's runs completed.
- End to end: a 1 GiB site (half random data in files of mixed sizes, half
  compressible text, a few thousand small files) backed up into the S3 server by
  Lapse (`BackupService.create` without verification: tar | zstd -1 over SSH into
  a multipart upload) vs `ssh HOST 'tar -cf - DIR | zstd -1' | aws s3 cp - s3://...`.
  Runs alternate which side goes first; `e2e_ratio` is Lapse's median time over
  the baseline's (target <= 1);
  `verify_s` is what Lapse's verification then adds (re-reading every object).
- Memory: `lapse backup ACCOUNT` (with verification) run as its own process on a
  1 GiB and a 4 GiB site; `rss_1g_mb` / `rss_4g_mb` are that process's peak
  resident memory in MiB, as GNU time reports it (target < 150 MB, and not growing
  with the archive).

Usage: .venv/bin/python bench/backup.py [--runs 10] [--e2e-runs 5] [--workdir DIR]
Needs the AWS CLI: `make bench-deps` installs it into .venv-bench (kept apart from
the project's venv, whose boto3 it would pin), else the one on PATH is used.
Ends with one line `RESULT ssh_ratio=... e2e_ratio=... rss_1g_mb=... rss_4g_mb=...`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.backup.pump import CHUNK as READ_SIZE  # as backups read
from daemon.domain.clock import VirtualClock
from daemon.runtime.logs import configure_logging
from daemon.transport.base import CommandError, TransportError
from daemon.transport.ssh import SSHTransport
from tests.lab.backup_helpers import backup_app, s3_store, site_account, ssh_host
from tests.lab.services.common import free_port
from tests.lab.services.sshd import SSHServer, start_sshd

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from daemon.backup.views import BackupView

GIB = 1024**3
MIB = 1024**2
CIPHER = "aes128-gcm@openssh.com"
BUCKET = "bench"
ACCESS_KEY = SECRET_KEY = "bench"  # noqa: S105 - moto accepts any key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="SSH leg runs per side")
    parser.add_argument("--e2e-runs", type=int, default=5, help="end-to-end runs per side")
    parser.add_argument("--workdir", type=Path, default=None, help="where test data goes")
    args = parser.parse_args()
    bundled = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "aws"
    aws = str(bundled) if bundled.exists() else shutil.which("aws")
    if aws is None:
        sys.exit("bench/backup.py: the AWS CLI is not on PATH; run `make bench-deps` first")
    configure_logging(level="warning", fmt="json")
    workdir = Path(tempfile.mkdtemp(prefix="lapse-bench-", dir=args.workdir or "/var/tmp"))
    sshd = start_sshd(workdir / "sshd")
    s3 = MotoServer(workdir / "moto.log")
    try:
        big = workdir / "stream.bin"
        write_random(big, 3 * GIB)
        # Written back now, not by the kernel during the runs that follow.
        os.sync()
        ssh_ratio, ssh_ok, ssh_mb_s = ssh_leg(sshd, big, args.runs)
        site_1g = workdir / "site-1g"
        make_site(site_1g, GIB)
        os.sync()
        e2e_ratio, verify_s = end_to_end(sshd, s3, aws, workdir, site_1g, args.e2e_runs)
        site_4g = workdir / "site-4g"
        link_site(site_4g, [site_1g, big])
        rss_1g = backup_rss(sshd, s3, workdir / "rss-1g", site_1g)
        rss_4g = backup_rss(sshd, s3, workdir / "rss-4g", site_4g)
    finally:
        s3.stop()
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"RESULT ssh_ratio={ssh_ratio:.3g} ssh_ok={ssh_ok}/{args.runs}"
        f" ssh_mb_s={ssh_mb_s:.0f} e2e_ratio={e2e_ratio:.3g} verify_s={verify_s:.1f}"
        f" rss_1g_mb={rss_1g:.0f} rss_4g_mb={rss_4g:.0f}"
    )


class MotoServer:
    """moto's S3 server as a separate process on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().create_bucket(Bucket=BUCKET)
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)

    def client(self) -> S3Client:
        import boto3

        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        return client

    def empty(self) -> None:
        """Delete every object (moto keeps them in memory)."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=item["Key"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def write_random(path: Path, size: int) -> None:
    """Write `size` bytes of incompressible data to `path`."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as handle:
        for offset in range(0, size, len(block)):
            # Vary each block so nothing downstream can deduplicate it.
            handle.write(offset.to_bytes(8, "big") + block[8 : min(len(block), size - offset)])


def make_site(root: Path, size: int) -> None:
    """A site of about `size` bytes: half random files from 4 KiB to 64 MiB, half text."""
    rng = random.Random(42)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)
    ]
    budget_random = budget_text = size // 2
    index = 0
    while budget_random > 0 or budget_text > 0:
        directory = root / f"dir{index % 40:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        # Mostly small files, as sites have; a few large media files carry most bytes.
        file_size = rng.choice([4096, 16384, 65536, 262144, 4 * MIB, 64 * MIB])
        if budget_random > 0:
            chunk = min(file_size, budget_random)
            (directory / f"media{index}.bin").write_bytes(os.urandom(chunk))
            budget_random -= chunk
        if budget_text > 0:
            chunk = min(file_size, budget_text)
            text = bytearray()
            while len(text) < chunk:
                text += b" ".join(rng.choices(words, k=200)) + b"\n"
            (directory / f"page{index}.html").write_bytes(bytes(text[:chunk]))
            budget_text -= chunk
        index += 1


def link_site(root: Path, sources: list[Path]) -> None:
    """A site made of hard links to `sources` (files or trees), so it costs no disk.

    tar stores a file as a hard link only to an earlier member of the same archive,
    so each link is archived in full.
    """
    for source in sources:
        if source.is_file():
            root.mkdir(parents=True, exist_ok=True)
            os.link(source, root / source.name)
            continue
        for path in source.rglob("*"):
            target = root / source.name / path.relative_to(source)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)


def ssh_leg(sshd: SSHServer, path: Path, runs: int) -> tuple[float, int, float]:
    """Alternate OpenSSH and Lapse reads of `path`; return (throughput ratio of the
    medians, Lapse runs completed, Lapse's median MB/s)."""
    size = path.stat().st_size
    openssh: list[float] = []
    lapse: list[float] = []
    completed = 0
    for run in range(1, runs + 1):
        started = time.perf_counter()
        subprocess.run(openssh_argv(sshd, f"cat {path}"), stdout=subprocess.DEVNULL, check=True)
        openssh.append(size / (time.perf_counter() - started))
        started = time.perf_counter()
        try:
            received = read_through_lapse(sshd, path)
        except (TransportError, CommandError) as error:
            print(f"ssh run {run}: Lapse failed: {error}", file=sys.stderr)
            continue
        if received != size:
            print(f"ssh run {run}: Lapse read {received} of {size} bytes", file=sys.stderr)
            continue
        lapse.append(size / (time.perf_counter() - started))
        completed += 1
        print(
            f"ssh run {run}: openssh {openssh[-1] / MIB:.0f} MiB/s,"
            f" lapse {lapse[-1] / MIB:.0f} MiB/s",
            file=sys.stderr,
        )
    if not lapse:
        return 0.0, 0, 0.0
    return (
        statistics.median(lapse) / statistics.median(openssh),
        completed,
        statistics.median(lapse) / 1e6,
    )


def openssh_argv(sshd: SSHServer, command: str) -> list[str]:
    """The OpenSSH client running `command` on the lab host as root with the fast cipher."""
    ssh, *options = sshd.ssh_argv(command, user=sshd.root_user)
    return [ssh, "-c", CIPHER, *options]


def read_through_lapse(sshd: SSHServer, path: Path) -> int:
    """Stream `path` through a fresh SSHTransport (connection set-up included, as for
    the ssh command); return the bytes received. Raises on a non-zero exit."""
    transport = SSHTransport(
        "bench",
        sshd.host,
        port=sshd.port,
        user=sshd.root_user,
        known_hosts=sshd.known_hosts_path,
        key_file=sshd.client_key_path,
    )
    received = 0
    try:
        with transport.start(f"cat {path}", "cat") as process:
            while chunk := process.read(READ_SIZE):
                received += len(chunk)
            process.check()
    finally:
        transport.close()
    return received


def end_to_end(
    sshd: SSHServer, s3: MotoServer, aws: str, workdir: Path, site: Path, runs: int
) -> tuple[float, float]:
    """Alternate the OpenSSH + AWS CLI pipeline and Lapse's backup of `site` into S3;
    return (Lapse's median time over the baseline's, Lapse's verification time)."""
    os.environ["LAPSE_TEST_S3_KEY"] = ACCESS_KEY
    os.environ["LAPSE_TEST_S3_SECRET"] = SECRET_KEY
    (workdir / "e2e").mkdir()
    app = backup_app(
        workdir / "e2e",
        f"sqlite:///{workdir / 'e2e' / 'state.db'}",
        VirtualClock(datetime.now(UTC)),
        hosts={"bench": ssh_host(sshd, [site.parent])},
        store=s3_store(s3.endpoint_url, BUCKET),
        accounts=[site_account("bench", "bench", site, [])],
    )
    upload = [aws, "s3", "cp", "-", f"s3://{BUCKET}/baseline.tar.zst"]
    upload += ["--endpoint-url", s3.endpoint_url, "--only-show-errors"]
    baseline_command = (
        shlex.join(openssh_argv(sshd, f"tar -cf - -C {site} . | zstd -1 -q"))
        + " | "
        + shlex.join(upload)
    )
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    baseline: list[float] = []
    lapse: list[float] = []
    verify_s = 0.0

    def run_baseline() -> None:
        started = time.perf_counter()
        subprocess.run(
            ["bash", "-o", "pipefail", "-c", baseline_command], env=environment, check=True
        )
        baseline.append(time.perf_counter() - started)
        s3.empty()

    def run_lapse(verify: bool) -> BackupView:
        """Time one unverified backup; then time its verification if asked."""
        nonlocal verify_s
        started = time.perf_counter()
        backup = app.backups.create("bench", reason="bench", verify=False)
        lapse.append(time.perf_counter() - started)
        if verify:
            from daemon.backup.verify import verify_backup

            started = time.perf_counter()
            verify_backup(app.backups, backup.id)
            verify_s = time.perf_counter() - started
        s3.empty()
        return backup

    for run in range(1, runs + 1):
        # Each side goes first in every other run: whichever follows the other finds
        # the site in the page cache and the S3 server warm.
        if run % 2:
            run_baseline()
            backup = run_lapse(verify=run == 1)
        else:
            backup = run_lapse(verify=False)
            run_baseline()
        print(
            f"e2e run {run}: baseline {baseline[-1]:.1f} s, lapse {lapse[-1]:.1f} s"
            f" ({(backup.size_bytes or 0) / MIB:.0f} MiB stored)",
            file=sys.stderr,
        )
    app.transports.close()
    return statistics.median(lapse) / statistics.median(baseline), verify_s


def backup_rss(sshd: SSHServer, s3: MotoServer, workdir: Path, site: Path) -> float:
    """Run `lapse backup` (with verification) on `site` as its own process; return its
    peak resident memory in MB."""
    workdir.mkdir()
    (workdir / "billing.json").write_text(
        json.dumps({"accounts": [site_account("bench", "bench", site, [])]})
    )
    host = ssh_host(sshd, [site.parent])
    store = s3_store(s3.endpoint_url, BUCKET)
    config = workdir / "lapse.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///{workdir / "state.db"}"
[billing]
type = "file"
path = "billing.json"
[hosts.bench]
{toml_table(host)}
[backup.store]
{toml_table(store)}
[notices.notifier]
type = "outbox"
path = "outbox"
"""
    )
    lapse = str(Path(sys.executable).with_name("lapse"))
    environment = {
        **os.environ,
        "LAPSE_TEST_S3_KEY": ACCESS_KEY,
        "LAPSE_TEST_S3_SECRET": SECRET_KEY,
    }
    sync = subprocess.run([lapse, "run", "--once", "-c", str(config)], env=environment)
    if sync.returncode != 0:
        raise RuntimeError("lapse run --once failed")
    # Through GNU time: a child's ru_maxrss as seen by this process would include this
    # (large) process's memory at fork, which the kernel carries over to the exec.
    report = workdir / "rss-kib"
    backup = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(report),
            lapse,
            "backup",
            "bench",
            "-c",
            str(config),
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    s3.empty()
    if backup.returncode != 0:
        raise RuntimeError(f"lapse backup exited {backup.returncode}")
    return int(report.read_text().split()[-1]) / 1024  # GNU time reports KiB


def toml_table(values: dict[str, object]) -> str:
    """Render a flat table's body as TOML (JSON strings, numbers and lists are valid TOML;
    a nested table becomes an inline table)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
