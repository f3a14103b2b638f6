"""A private Apache httpd on a random loopback port; tests drop vhost files into its sites dir."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.services.common import LabError, free_port, log_tail, port_open, require_binary

MODULES = Path("/usr/lib/apache2/modules")
_MODULE_NAMES = ("mpm_event", "authz_core", "alias", "rewrite", "headers", "mime", "dir")


@dataclass
class ApacheServer:
    """Handle on a lab Apache: every `sites_dir/*.conf` is included, workers run as www-data
    (so what it serves must be traversable by that user)."""

    root: Path
    conf: Path
    port: int
    binary: str
    env: dict[str, str]

    @property
    def sites_dir(self) -> Path:
        """Where vhost files go (`*.conf` is included)."""
        return self.root / "sites"

    def url(self, path: str = "/") -> str:
        """Return the http URL of `path` on this Apache."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def command(self, *arguments: str) -> str:
        """Return a shell command line running apache2 on this config with `arguments`."""
        run_dir = f"APACHE_RUN_DIR={self.root} APACHE_LOCK_DIR={self.root}"
        return f"env {run_dir} {self.binary} {' '.join(arguments)} -f {self.conf}"

    def stop(self) -> None:
        """Stop httpd and wait for its pid file to go."""
        subprocess.run([self.binary, "-k", "stop", "-f", str(self.conf)], env=self.env, check=False)
        deadline = time.monotonic() + 10
        while (self.root / "httpd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def start_apache(root: Path) -> ApacheServer:
    """Start Apache with its config, logs and sites dir under `root` (which www-data must be
    able to traverse), listening on a free loopback port. Raises LabError."""
    binary = require_binary("apache2")
    (root / "sites").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "httpd.conf"
    conf.write_text(
        f"ServerRoot {root}\nServerName localhost\nListen 127.0.0.1:{port}\n"
        f"PidFile {root}/httpd.pid\nErrorLog {root}/error.log\nUser www-data\nGroup www-data\n"
        + "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in _MODULE_NAMES)
        + f"TypesConfig /etc/mime.types\nIncludeOptional {root}/sites/*.conf\n"
    )
    env = {**os.environ, "APACHE_RUN_DIR": str(root), "APACHE_LOCK_DIR": str(root)}
    started = subprocess.run(
        [binary, "-k", "start", "-f", str(conf)], env=env, capture_output=True, text=True
    )
    if started.returncode != 0:
        raise LabError(f"lab: apache2 did not start: {started.stderr.strip()}")
    # `-k start` returns once httpd detached, before it wrote its pid file and listened:
    # a `-k graceful` sent earlier finds no httpd and starts a second one, which cannot
    # bind the port.
    deadline = time.monotonic() + 10
    while not ((root / "httpd.pid").exists() and port_open("127.0.0.1", port)):
        if time.monotonic() > deadline:
            raise LabError(f"lab: apache2 did not listen on {port}: {log_tail(root / 'error.log')}")
        time.sleep(0.05)
    return ApacheServer(root, conf, port, binary, env)
