"""How fast and how lean `lapse restore` is, against the AWS CLI piped into OpenSSH.

A 1 GiB site (bench/backup.py's mix: half random data in files of mixed sizes,
half compressible text, a few thousand small files) is backed up into a moto S3
server (its own process) by `lapse backup`, then restored over the lab's OpenSSH
sshd, alternating which side goes first:

- Lapse: `lapse restore ACCOUNT --force` as its own process (start-up included),
  with every check kept: the stream hashed against the manifest and every member
  checked in the daemon as it goes to the host, extraction into a fresh staging
  directory, the host's listing (sizes, SHA-256, modes, owners, times, links)
  compared with the archive's, and the swap (the previous tree is removed in the
  background after the command returns).
- Baseline: `aws s3 cp s3://BUCKET/KEY - | ssh HOST 'zstd -d | tar -x -C DIR'`
  into an empty directory, with the AWS CLI set (in a temporary AWS_CONFIG_FILE)
  to fetch the object in one request: moto re-reads the whole object for every
  ranged GET, so the CLI's default 8 MiB ranges would measure moto.

`restore_ratio` is Lapse's median time over the baseline's (target <= 1);
`rss_mb` the peak resident memory of `lapse restore` as GNU time reports it.
`lapse_cpu_s` and `baseline_cpu_s` are the median CPU seconds (user + system) of
each side's whole restore: the command and its children (the `ssh` client), the
lab sshd and everything it ran on the host's side (tar, find, the digests), and
the moto server. Unlike wall-clock time they barely move when other work shares
the cores.

Usage: .venv/bin/python bench/restore.py [--runs 5] [--size-mib 1024] [--workdir DIR]
Needs the AWS CLI (`make bench-deps`). Ends with one line
`RESULT restore_ratio=... lapse_s=... baseline_s=... rss_mb=... archive_mib=...
lapse_cpu_s=... baseline_cpu_s=...`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backup import (
    ACCESS_KEY,
    BUCKET,
    MIB,
    SECRET_KEY,
    MotoServer,
    make_site,
    openssh_argv,
    toml_table,
)
from daemon.backup.staging import PREVIOUS_PREFIX
from tests.lab.backup_helpers import s3_store, site_account, ssh_host
from tests.lab.services.sshd import SSHServer, start_sshd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the site")
    parser.add_argument("--workdir", type=Path, default=None, help="where test data goes")
    args = parser.parse_args()
    bundled = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "aws"
    aws = str(bundled) if bundled.exists() else shutil.which("aws")
    if aws is None:
        sys.exit("bench/restore.py: the AWS CLI is not on PATH; run `make bench-deps` first")
    # The checkout's bytecode, as an installed Lapse has it (pip compiles a wheel's
    # modules): with PYTHONDONTWRITEBYTECODE set, every run would compile them again.
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "daemon", quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="lapse-bench-", dir=args.workdir or "/var/tmp"))
    sshd = start_sshd(workdir / "sshd")
    s3 = MotoServer(workdir / "moto.log")
    try:
        www = workdir / "www"
        make_site(www / "site", args.size_mib * MIB)
        os.sync()
        bench = Bench(sshd, s3, aws, workdir, www)
        ratio, lapse_s, baseline_s, rss = bench.alternate(args.runs)
        lapse_cpu, baseline_cpu = bench.cpu_medians()
    finally:
        s3.stop()
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"RESULT restore_ratio={ratio:.3g} lapse_s={lapse_s:.2f} baseline_s={baseline_s:.2f}"
        f" rss_mb={rss:.0f} archive_mib={bench.archive_size / MIB:.0f}"
        f" lapse_cpu_s={lapse_cpu:.2f} baseline_cpu_s={baseline_cpu:.2f}"
    )


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and of the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command's name: utime, stime, cutime and cstime are fields 14 to 17.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


class Bench:
    """The site backed up once; then restores by Lapse and by the baseline, timed."""

    def __init__(self, sshd: SSHServer, s3: MotoServer, aws: str, workdir: Path, www: Path):
        self.sshd, self.aws, self.workdir, self.www = sshd, aws, workdir, www
        self.s3 = s3
        self.cpu: dict[str, list[float]] = {"lapse": [], "baseline": []}
        self.endpoint = s3.endpoint_url
        self.config = self._write_config(s3)
        self.environment = {
            **os.environ,
            "LAPSE_TEST_S3_KEY": ACCESS_KEY,
            "LAPSE_TEST_S3_SECRET": SECRET_KEY,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(workdir / "aws-config"),
        }
        # One GET for the whole object: larger parts than any object here.
        for key, value in (("multipart_chunksize", "4GB"), ("multipart_threshold", "4GB")):
            subprocess.run(
                [aws, "configure", "set", f"default.s3.{key}", value],
                env=self.environment,
                check=True,
            )
        self._lapse("run", "--once")
        self._lapse("backup", "bench")
        backup = json.loads(self._lapse("backups", "bench", "--json"))[0]
        self.key = f"bench/{backup['id']}/files-1.tar.zst"
        self.archive_size = int(backup["size_bytes"])

    def _write_config(self, s3: MotoServer) -> Path:
        config = self.workdir / "lapse.toml"
        (self.workdir / "billing.json").write_text(
            json.dumps({"accounts": [site_account("bench", "bench", self.www / "site", [])]})
        )
        config.write_text(
            f"""
[state]
url = "sqlite:///{self.workdir / "state.db"}"
[billing]
type = "file"
path = "billing.json"
[hosts.bench]
{toml_table(ssh_host(self.sshd, [self.www]))}
[backup.store]
{toml_table(s3_store(s3.endpoint_url, BUCKET))}
[notices.notifier]
type = "outbox"
path = "outbox"
"""
        )
        return config

    def _lapse(self, *arguments: str) -> str:
        lapse = str(Path(sys.executable).with_name("lapse"))
        done = subprocess.run(
            [lapse, *arguments, "-c", str(self.config)],
            env=self.environment,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"lapse {arguments[0]} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def lapse_restore(self) -> tuple[float, float]:
        """Time `lapse restore bench --force`; return (seconds, peak RSS in MB)."""
        lapse = str(Path(sys.executable).with_name("lapse"))
        report = self.workdir / "rss-kib"
        cpu = self._cpu()
        started = time.perf_counter()
        argv = ["/usr/bin/time", "-f", "%M", "-o", str(report), lapse, "restore", "bench"]
        subprocess.run(
            [*argv, "--force", "-c", str(self.config)],
            env=self.environment,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        elapsed = time.perf_counter() - started
        self._settle()
        self.cpu["lapse"].append(self._cpu() - cpu)
        return elapsed, int(report.read_text().split()[-1]) / 1024

    def baseline_restore(self) -> float:
        """Time the AWS CLI into ssh, zstd and tar in an empty directory; then remove it."""
        target = self.www / "baseline"
        target.mkdir()
        download = [self.aws, "s3", "cp", f"s3://{BUCKET}/{self.key}", "-"]
        download += ["--endpoint-url", self.endpoint, "--only-show-errors"]
        extract = openssh_argv(self.sshd, f"zstd -d -q | tar -x -C {shlex.quote(str(target))}")
        command = f"{shlex.join(download)} | {shlex.join(extract)}"
        cpu = self._cpu()
        started = time.perf_counter()
        subprocess.run(["bash", "-o", "pipefail", "-c", command], env=self.environment, check=True)
        elapsed = time.perf_counter() - started
        shutil.rmtree(target)
        self._settle()
        self.cpu["baseline"].append(self._cpu() - cpu)
        return elapsed

    def _settle(self) -> None:
        """Let the run just timed finish what it left behind, untimed, so that neither side's
        run pays for the one before: the previous tree `lapse restore` removes in the
        background after it returns (waited for up to 60 s), then every page not yet
        written out (the restored gigabyte of Lapse's tree; the baseline's tree is removed
        before then)."""
        deadline = time.monotonic() + 60
        while (
            any(entry.name.startswith(PREVIOUS_PREFIX) for entry in self.www.iterdir())
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        os.sync()

    def _cpu(self) -> float:
        """CPU seconds so far of this process's children, the sshd and the moto server.

        Waits (up to 10 s) until the sshd has reaped its sessions: a session's process
        can outlive the client by a moment, and its time counts only once reaped.
        """
        sshd = self.sshd.process.popen.pid
        children = Path(f"/proc/{sshd}/task/{sshd}/children")
        deadline = time.monotonic() + 10
        while children.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        host = _process_cpu(sshd)
        return _children_cpu() + host + _process_cpu(self.s3.process.pid)

    def cpu_medians(self) -> tuple[float, float]:
        """Return the median CPU seconds of Lapse's restores and of the baseline's."""
        return statistics.median(self.cpu["lapse"]), statistics.median(self.cpu["baseline"])

    def alternate(self, runs: int) -> tuple[float, float, float, float]:
        """Return (ratio of the medians, Lapse's median s, the baseline's median s, peak RSS)."""
        lapse: list[float] = []
        baseline: list[float] = []
        peak = 0.0
        for run in range(1, runs + 1):
            # Each side goes first in every other run: the second finds caches warm.
            if run % 2:
                baseline.append(self.baseline_restore())
                seconds, rss = self.lapse_restore()
            else:
                seconds, rss = self.lapse_restore()
                baseline.append(self.baseline_restore())
            lapse.append(seconds)
            peak = max(peak, rss)
            print(
                f"restore run {run}: baseline {baseline[-1]:.2f} s, lapse {seconds:.2f} s,"
                f" {rss:.0f} MB; CPU baseline {self.cpu['baseline'][-1]:.2f} s,"
                f" lapse {self.cpu['lapse'][-1]:.2f} s",
                file=sys.stderr,
            )
        lapse_s, baseline_s = statistics.median(lapse), statistics.median(baseline)
        return lapse_s / baseline_s, lapse_s, baseline_s, peak


if __name__ == "__main__":
    main()
