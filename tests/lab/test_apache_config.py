"""The apache-linux playbook's own steps against a real Apache httpd laid out the Debian
way: sites-available, a sites-enabled symlink, a TLS vhost wrapped in <IfModule>, and
a docroot whose name holds a space and a quote.

The steps run through the step types and the local transport, with the context the
runner builds, so Apache sees exactly the files and commands a host would get.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.snapshot import Service
from daemon.playbooks.contexts import step_variables
from daemon.playbooks.library import load_playbook
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.schema import Playbook, StepSpec
from daemon.playbooks.steps import STEP_TYPES, StepContext, StepFailedError
from daemon.transport.local import LocalTransport
from tests.lab.services.common import free_port, require_binary

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "apache-linux.toml"
MODULES = Path("/usr/lib/apache2/modules")
# What the maintenance answer needs (rewrite, headers, alias), what serves files
# (authz_core, mime, dir), and TLS for the second vhost.
LOADED = ["mpm_event", "authz_core", "alias", "rewrite", "headers", "mime", "dir"]
LOADED += ["socache_shmcb", "ssl"]
DOMAIN = "example.org"


@dataclass
class Site:
    """A running Apache with one client site, and the playbook's view of it."""

    root: Path
    conf: Path
    http: int
    https: int
    docroot: Path
    service: Service
    host: HostConfig

    def get(self, path: str, tls: bool = False) -> httpx.Response:
        scheme, port = ("https", self.https) if tls else ("http", self.http)
        with httpx.Client(verify=False, timeout=5) as client:  # noqa: S501 - self-signed lab cert
            return client.get(f"{scheme}://127.0.0.1:{port}{path}", headers={"Host": DOMAIN})

    @property
    def enabled(self) -> Path:
        return self.root / "sites-enabled" / f"{DOMAIN}.conf"

    @property
    def available(self) -> Path:
        return self.root / "sites-available" / f"{DOMAIN}.conf"


def _vhost(site_http: int, site_https: int, docroot: Path, tls: Path) -> str:
    """A client vhost as Debian and certbot leave it."""
    serve = (
        f'    ServerName {DOMAIN}\n    ServerAlias www.{DOMAIN}\n    DocumentRoot "{docroot}"\n'
        f'    <Directory "{docroot}">\n        Require all granted\n    </Directory>\n'
    )
    return (
        f"<VirtualHost 127.0.0.1:{site_http}>\n{serve}</VirtualHost>\n"
        "<IfModule mod_ssl.c>\n"
        f"<VirtualHost 127.0.0.1:{site_https}>\n{serve}"
        f"    SSLEngine on\n    SSLCertificateFile {tls}/cert.pem\n"
        f"    SSLCertificateKeyFile {tls}/key.pem\n"
        "</VirtualHost>\n</IfModule>\n"
    )


@pytest.fixture
def site(lab_tmp: Path, tmp_path: Path) -> Iterator[Site]:
    binary = require_binary("apache2")
    openssl = require_binary("openssl")
    root = lab_tmp / f"apache-config-{tmp_path.name}"
    for sub in ("sites-available", "sites-enabled", "state", "tls", "run"):
        (root / sub).mkdir(parents=True)
    # Quoting has to survive every layer: shell, awk and Apache's own.
    docroot = root / "www" / "it's a site"
    (docroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (docroot / "index.html").write_text("original\n")
    (docroot / ".well-known" / "acme-challenge" / "token").write_text("proof\n")
    # A client's .htaccess must not take part in the maintenance answer.
    (docroot / ".well-known" / "acme-challenge" / ".htaccess").write_text("Require all denied\n")
    tls = root / "tls"
    certificate = ["-subj", f"/CN={DOMAIN}", "-days", "2", "-nodes", "-newkey", "rsa:2048"]
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            *certificate,
            "-keyout",
            tls / "key.pem",
            "-out",
            tls / "cert.pem",
        ],
        check=True,
        capture_output=True,
    )
    http, https = free_port(), free_port()
    conf = root / "httpd.conf"
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f'ServerRoot "{root}"\nServerName localhost\nDefaultRuntimeDir "{root}/run"\n'
        f"Listen 127.0.0.1:{http}\nListen 127.0.0.1:{https}\n"
        f'PidFile "{root}/run/httpd.pid"\nErrorLog "{root}/error.log"\nLogLevel warn\n{user}'
        + "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in LOADED)
        + "TypesConfig /etc/mime.types\n"
        # A host that lets its sites use .htaccess files.
        + '<Directory "/">\n    AllowOverride All\n</Directory>\n'
        + f'IncludeOptional "{root}/sites-enabled/*.conf"\n'
    )
    (root / "sites-available" / f"{DOMAIN}.conf").write_text(_vhost(http, https, docroot, tls))
    (root / "sites-enabled" / f"{DOMAIN}.conf").symlink_to(f"../sites-available/{DOMAIN}.conf")
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    host = HostConfig.model_validate(
        {
            "transport": "local",
            "playbook": "apache-linux",
            "allowed_roots": [str(root / "www")],
            "vars": {
                "sites_dir": str(root / "sites-enabled"),
                "sites_available": str(root / "sites-available"),
                "state_dir": str(root / "state"),
                "apache_test": f"{binary} -t -f {conf}",
                "apache_reload": f"{binary} -k graceful -f {conf}",
                "check_base": f"http://127.0.0.1:{http}",
                "listen": f"127.0.0.1:{http}",
            },
        }
    )
    service = Service("web1", "acme", str(docroot), (DOMAIN, f"www.{DOMAIN}"))
    subprocess.run([binary, "-k", "start", "-f", str(conf)], check=True, capture_output=True)
    running = Site(root, conf, http, https, docroot, service, host)
    try:
        assert _until(lambda: running.get("/").text == "original\n")
        yield running
    finally:
        subprocess.run([binary, "-k", "stop", "-f", str(conf)], check=False, capture_output=True)
        pid = root / "run" / "httpd.pid"
        _until(lambda: not pid.exists())


def _until(condition: Any, seconds: float = 10) -> bool:
    """Poll `condition` until it holds (a graceful restart takes a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _context(site: Site, phase: str, playbook: Playbook) -> StepContext:
    variables = step_variables("acct-1", site.service, site.host, playbook, BrandConfig(), phase)
    return StepContext(
        account_id="acct-1",
        phase=phase,
        service=site.service,
        host_name="web1",
        transport=LocalTransport("web1", command_timeout=60),
        variables=variables,
        backups=cast(Any, None),  # the backup and restore steps are not run here
        pages=MaintenancePages(),
        clock=lambda: datetime.now(UTC),
        since=datetime.now(UTC),
    )


def _step(playbook: Playbook, phase: str, prefix: str) -> StepSpec:
    return next(spec for spec in playbook.steps(phase) if spec.name.startswith(prefix))


def _run(spec: StepSpec, context: StepContext) -> None:
    STEP_TYPES[spec.type].run(spec, context)


def _check(spec: StepSpec, context: StepContext) -> None:
    """Run a check step as the runner would, with its retries (shorter waits)."""
    for _attempt in range(spec.retries):
        try:
            STEP_TYPES["check"].run(spec, context)
            return
        except StepFailedError:
            time.sleep(0.2)
    STEP_TYPES["check"].run(spec, context)


def _config_test(site: Site) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("apache2"), "-t", "-f", str(site.conf)], capture_output=True, text=True
    )


def test_suspension_answers_503_on_every_vhost_and_reactivation_restores_the_site(
    site: Site,
) -> None:
    playbook = load_playbook(PLAYBOOK)
    suspend = _context(site, "suspend", playbook)
    page = _step(playbook, "suspend", "Upload the maintenance page")
    swap = _step(playbook, "suspend", "Serve the maintenance page")
    original = site.available.read_text()

    _run(page, suspend)
    _run(swap, suspend)

    assert _config_test(site).returncode == 0
    _check(_step(playbook, "suspend", "Check the site answers 503"), suspend)
    for tls in (False, True):
        answer = site.get("/", tls=tls)
        assert answer.status_code == 503, f"tls={tls}"
        assert answer.headers["Retry-After"] == "3600"
        assert answer.headers["X-Robots-Tag"] == "noindex, nofollow"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "lapse-maintenance-page" in answer.text and DOMAIN in answer.text
        assert site.get("/shop/cart.php?id=1", tls=tls).status_code == 503
        # The page is served only as the error document, never as a page of its own.
        assert site.get("/lapse-maintenance.html", tls=tls).status_code == 503
        acme = site.get("/.well-known/acme-challenge/token", tls=tls)
        assert (acme.status_code, acme.text) == (200, "proof\n"), f"tls={tls}"
        assert "lapse-maintenance-page" not in acme.text
    # The original stays beside the vhost, still the sites-available symlink; the file
    # it points to is untouched.
    saved = site.enabled.with_name(site.enabled.name + ".lapse-original")
    assert saved.is_symlink() and not site.enabled.is_symlink()
    assert site.available.read_text() == original
    # A resumed run does it again without harm.
    _run(swap, suspend)
    _check(_step(playbook, "suspend", "Check the site answers 503"), suspend)

    unsuspend = _context(site, "unsuspend", playbook)
    _run(swap.undo_spec(), unsuspend)
    _run(page.undo_spec(), unsuspend)

    _check(_step(playbook, "unsuspend", "Check the site answers 200"), unsuspend)
    assert site.get("/", tls=True).text == "original\n"
    assert site.enabled.is_symlink() and site.available.read_text() == original
    assert not list(site.enabled.parent.glob("*.lapse-*"))
    assert not (site.root / "state" / "maintenance" / "acct-1").exists()


def test_deleted_vhost_comes_back_from_the_restore_phase(site: Site) -> None:
    playbook = load_playbook(PLAYBOOK)
    delete = _context(site, "delete", playbook)
    _run(_step(playbook, "delete", "Remove the vhost"), delete)
    assert not site.enabled.exists() and not site.available.exists()
    assert _until(lambda: site.get("/").text != "original\n")

    restore = _context(site, "restore", playbook)
    _run(_step(playbook, "restore", "Recreate the vhost"), restore)
    _run(_step(playbook, "restore", "Enable the vhost"), restore)

    assert site.enabled.is_symlink() and site.enabled.resolve() == site.available.resolve()
    assert _config_test(site).returncode == 0
    _check(_step(playbook, "restore", "Check the site answers 200"), restore)
    assert site.get("/").text == "original\n"


def test_a_docroot_apache_cannot_quote_is_refused_before_anything_changes(site: Site) -> None:
    playbook = load_playbook(PLAYBOOK)
    site.service = Service("web1", "acme", str(site.docroot) + '" Require all denied', (DOMAIN,))
    swap = _step(playbook, "suspend", "Serve the maintenance page")

    with pytest.raises(StepFailedError, match=r"cannot put .* into an Apache config"):
        _run(swap, _context(site, "suspend", playbook))

    assert site.enabled.is_symlink()
    assert not list(site.enabled.parent.glob("*.lapse-*"))
    assert site.get("/").text == "original\n"
