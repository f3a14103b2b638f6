"""The shipped apache-linux playbook's maintenance swap on a real Apache httpd."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.snapshot import Service
from daemon.playbooks.contexts import step_variables
from daemon.playbooks.library import load_playbook
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.steps.specs import RunSpec
from daemon.playbooks.templating import render_command
from tests.lab.services.common import free_port

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "apache-linux.toml"
MODULES = Path("/usr/lib/apache2/modules")


@dataclass
class Apache:
    root: Path
    conf: Path
    port: int
    env: dict[str, str]

    def get(self, path: str, languages: str | None = None) -> httpx.Response:
        """Fetch `path`, asking for `languages` (an Accept-Language value) when given."""
        headers = {"Host": "example.org"}
        if languages is not None:
            headers["Accept-Language"] = languages
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=5)

    def wait_for(self, status: int) -> httpx.Response:
        """Poll / until it answers `status` (a graceful restart takes a moment)."""
        deadline = time.monotonic() + 10
        while (answer := self.get("/")).status_code != status and time.monotonic() < deadline:
            time.sleep(0.1)
        return answer


@pytest.fixture
def apache(lab_tmp: Path, tmp_path: Path) -> Iterator[Apache]:
    """Apache httpd on a free loopback port serving one site from a vhost file."""
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    assert Path(binary).exists(), "apache2 is missing: run `make lab-deps`"
    root = Path(lab_tmp) / f"apache-{tmp_path.name}"
    (root / "sites").mkdir(parents=True)
    docroot = root / "www" / "example.org"
    (docroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (docroot / "index.html").write_text("original\n")
    (docroot / ".well-known" / "acme-challenge" / "token").write_text("proof\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    modules = ["mpm_event", "authz_core", "alias", "rewrite", "headers", "mime", "dir"]
    conf = root / "httpd.conf"
    conf.write_text(
        f"ServerRoot {root}\nServerName localhost\nListen 127.0.0.1:{port}\n"
        f"PidFile {root}/httpd.pid\nErrorLog {root}/error.log\nUser www-data\nGroup www-data\n"
        + "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in modules)
        + f"TypesConfig /etc/mime.types\nIncludeOptional {root}/sites/*.conf\n"
    )
    (root / "sites" / "example.org.conf").write_text(
        f"<VirtualHost 127.0.0.1:{port}>\n    ServerName example.org\n"
        f"    DocumentRoot {docroot}\n    <Directory {docroot}>\n        Require all granted\n"
        "    </Directory>\n</VirtualHost>\n"
    )
    env = {**os.environ, "APACHE_RUN_DIR": str(root), "APACHE_LOCK_DIR": str(root)}
    subprocess.run([binary, "-k", "start", "-f", str(conf)], check=True, env=env)
    server = Apache(root, conf, port, env)
    try:
        assert server.wait_for(200).text == "original\n"
        yield server
    finally:
        subprocess.run([binary, "-k", "stop", "-f", str(conf)], env=env, check=False)


def _swap_step(apache: Apache) -> tuple[str, str]:
    """The playbook's maintenance swap and its undo, rendered for the test site."""
    playbook = load_playbook(PLAYBOOK)
    state = apache.root / "state"
    page = state / "maintenance" / "acct-1" / "lapse-maintenance.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>lapse-maintenance-page</p>\n")
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    host = HostConfig.model_validate(
        {
            "transport": "local",
            "playbook": "apache-linux",
            "allowed_roots": [str(apache.root / "www")],
            "vars": {
                "sites_dir": str(apache.root / "sites"),
                "state_dir": str(state),
                "apache_test": f"apache2 -t -f {apache.conf}",
                "apache_reload": f"apache2 -k graceful -f {apache.conf}",
            },
        }
    )
    docroot = str(apache.root / "www" / "example.org")
    service = Service("web1", "acme", docroot, ("example.org",))
    variables = step_variables("acct-1", service, host, playbook, BrandConfig(), "suspend")
    step = next(s for s in playbook.steps("suspend") if s.name.startswith("Serve"))
    assert isinstance(step, RunSpec)
    assert step.command is not None and step.undo is not None
    return (
        render_command(step.command, variables, step.name),
        render_command(step.undo, variables, step.name),
    )


def _bash(apache: Apache, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        env=apache.env,
        check=False,
    )


def test_maintenance_swap_answers_503_keeps_acme_and_undoes(apache: Apache) -> None:
    swap, undo = _swap_step(apache)

    assert _bash(apache, swap).returncode == 0
    page = apache.wait_for(503)
    assert page.headers["Retry-After"] == "3600"
    assert page.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "lapse-maintenance-page" in page.text
    assert apache.get("/any/deep/path.php").status_code == 503
    acme = apache.get("/.well-known/acme-challenge/token")
    assert acme.status_code == 200 and acme.text == "proof\n"
    # Running the swap again (a resumed run) changes nothing.
    assert _bash(apache, swap).returncode == 0
    assert apache.wait_for(503).status_code == 503

    assert _bash(apache, undo).returncode == 0
    assert apache.wait_for(200).text == "original\n"
    assert not list((apache.root / "sites").glob("*.lapse-*"))


def test_the_maintenance_page_is_in_the_language_the_visitor_asks_for(apache: Apache) -> None:
    swap, _undo = _swap_step(apache)
    pages = MaintenancePages()
    folder = apache.root / "state" / "maintenance" / "acct-1"
    for tag in pages.languages():  # as the upload step writes them beside the default
        page = folder / f"lapse-maintenance.{tag}.html"
        page.write_text(pages.render("default.html", "example.org", "help@example.com", "Co", tag))
        page.chmod(0o644)

    assert _bash(apache, swap).returncode == 0
    apache.wait_for(503)

    german = apache.get("/", languages="de-DE,de;q=0.9,en;q=0.5")
    japanese = apache.get("/any/page.php", languages="ja")
    assert german.status_code == japanese.status_code == 503
    assert '<html lang="de">' in german.text and "vorübergehend nicht erreichbar" in german.text
    assert '<html lang="ja">' in japanese.text and "一時的にご利用いただけません" in japanese.text
    for languages in ("xx", None):  # the default page the test wrote
        answer = apache.get("/", languages=languages)
        assert answer.status_code == 503 and answer.text == "<p>lapse-maintenance-page</p>\n"
    assert "Accept-Language" in german.headers["Vary"]


def test_a_config_apache_rejects_puts_the_original_back(apache: Apache) -> None:
    swap, _undo = _swap_step(apache)
    # A vhost Apache cannot load once rewritten: the headers module is unknown to it.
    apache.conf.write_text(apache.conf.read_text().replace("LoadModule headers_module", "#"))

    result = _bash(apache, swap)

    assert result.returncode == 1
    assert "the original vhost is back in place" in result.stderr
    assert apache.get("/").text == "original\n"
    vhost = (apache.root / "sites" / "example.org.conf").read_text()
    assert "lapse-maintenance" not in vhost
