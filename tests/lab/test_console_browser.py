"""The console in a real browser: headless Chromium (Debian's package) driven through its
chromium-driver by Selenium, against a console served by uvicorn on loopback.

One account has gone through the demo playbook to its deletion, which the plan makes
wait for approval. An operator signs in, approves it from the approval queue and finds
the decision in the account's audit log; a viewer's action is refused; a form without
its CSRF token, or with another, is refused; repeated wrong passwords throttle sign-in.
Screenshots of the overview and the account page go to $LAPSE_CONSOLE_SHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from daemon.config.load import validate_config
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from daemon.runtime.console.app import console_app
from daemon.runtime.console.auth import hash_password
from daemon.runtime.console.services import ConsoleServices
from daemon.runtime.http.serving import Limits, ListenerThread
from tests.lab.approval_scene import T0, approval_config, to_deletion

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORDS = {"alice": "alice-pass-1", "sam": "sam-pass-1"}
SHOTS = os.environ.get("LAPSE_CONSOLE_SHOTS")


@dataclass
class Console:
    """The app behind the console, its address, and the accounts it asked to wake."""

    app: App
    url: str
    woken: list[str] = field(default_factory=list)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    raw = approval_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", approve=["delete"])
    raw["console"] = {
        "users": {
            "alice": {"password_hash": hash_password(PASSWORDS["alice"]), "role": "operator"},
            "sam": {"password_hash": hash_password(PASSWORDS["sam"]), "role": "viewer"},
        },
        "login_attempts": 3,
        "proxy_header": "X-Forwarded-User",
        "trusted_proxies": ["127.0.0.1"],
    }
    clock = VirtualClock(T0)
    app = build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)
    to_deletion(app, clock)
    app.runner.run_pending()  # the deletion is picked and left waiting for approval
    woken: list[str] = []
    services = ConsoleServices(
        app.readers,
        app.lifecycle,
        app.runner,
        app.approvals,
        app.backups,
        lambda: clock.now,
        woken.append,
    )
    web = console_app(services, app.config.console, "test-session-key", clock=lambda: clock.now)
    listener = ListenerThread(web, "127.0.0.1:0", lambda: Limits(10.0, 60.0, 64), "console")
    listener.start()
    yield Console(app, f"http://localhost:{listener.port}", woken)
    listener.stop()
    app.engine.dispose()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(2)
    yield driver
    driver.quit()


def submit(browser: WebDriver, element_id: str) -> None:
    """Click the button `element_id` and wait until the page it leads to has replaced
    this one (a click does not wait for the navigation it starts)."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, element_id).click()
    WebDriverWait(browser, 10).until(staleness_of(page))


def sign_in(browser: WebDriver, console: Console, user: str, password: str | None = None) -> None:
    browser.get(console.url + "/login")
    browser.find_element(By.NAME, "user").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password or PASSWORDS[user])
    submit(browser, "sign-in")


def shot(browser: WebDriver, name: str) -> None:
    """Save a full-height screenshot when $LAPSE_CONSOLE_SHOTS names a directory."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, max(1000, int(height) + 40))
    browser.save_screenshot(str(Path(SHOTS) / name))
    browser.set_window_size(1280, 1000)


def delete_queued(app: App) -> bool:
    """Whether acct-1's delete phase is still queued (waiting, or not run yet)."""
    return any(action.name == "delete" for action in app.readers.accounts.pending_actions("acct-1"))


def test_an_operator_signs_in_approves_a_deletion_and_sees_the_audit_entry(
    console: Console, browser: WebDriver
) -> None:
    sign_in(browser, console, "alice")
    assert browser.find_element(By.CSS_SELECTOR, ".whoami span").text == "alice (operator)"
    queue = browser.find_element(By.CSS_SELECTOR, "table.approvals").text
    assert "acct-1" in queue and "delete" in queue
    assert "removal-warned" not in browser.find_element(By.ID, "stages").text
    assert "EUR" in browser.find_element(By.ID, "overdue").text
    shot(browser, "overview.png")

    submit(browser, "approve-acct-1")
    assert browser.current_url == console.url + "/accounts/acct-1"
    flash = browser.find_element(By.ID, "flash").text
    assert flash == "acct-1: delete approved (by console:alice)"
    assert console.woken == ["acct-1"]
    console.app.runner.run_pending()  # the daemon's worker, woken by the console
    assert not delete_queued(console.app)

    browser.get(console.url + "/accounts/acct-1")
    audit = browser.find_element(By.ID, "audit").text
    assert "approval delete approved by console:alice" in audit
    assert "chain intact" in browser.page_source
    approvals = browser.find_element(By.ID, "approvals").text
    assert "approved" in approvals and "console:alice" in approvals
    assert "deletion" in browser.find_element(By.CSS_SELECTOR, "details.letter summary").text
    shot(browser, "account.png")


def test_a_viewer_reads_but_is_refused_an_action(console: Console, browser: WebDriver) -> None:
    sign_in(browser, console, "sam")
    browser.get(console.url + "/accounts/acct-1")
    assert browser.find_elements(By.ID, "approve-acct-1") == []  # no buttons shown
    assert "delete" in browser.find_element(By.ID, "approvals").text
    # Post the approval anyway, with sam's own valid session and CSRF token.
    browser.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/accounts/acct-1/approve";
        const token = document.querySelector("input[name=csrf_token]").cloneNode();
        form.appendChild(token);
        document.body.appendChild(form);
        form.submit();
        """
    )
    refused = browser.find_element(By.ID, "refused").text
    assert refused == "sam is a viewer: operators only."
    assert [item.account_id for item in console.app.approvals.waiting()] == ["acct-1"]
    assert delete_queued(console.app)
    assert console.woken == []


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_form_without_its_csrf_token_is_refused(
    console: Console, browser: WebDriver, token: str | None
) -> None:
    sign_in(browser, console, "alice")
    browser.get(console.url + "/accounts/acct-1")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/reject'] input[name=reason]").send_keys(
        "planted"
    )
    browser.execute_script(
        """
        const input = document.querySelector("form[action$='/reject'] input[name=csrf_token]");
        if (arguments[0] === null) { input.remove(); } else { input.value = arguments[0]; }
        """,
        token,
    )
    submit(browser, "reject-acct-1")
    refused = browser.find_element(By.ID, "refused").text
    assert refused == "The form is out of date or forged (CSRF token)."
    assert [item.account_id for item in console.app.approvals.waiting()] == ["acct-1"]
    assert console.app.readers.accounts.view("acct-1").record.state == "deleted"


def test_sign_in_is_throttled_after_repeated_failures(console: Console, browser: WebDriver) -> None:
    for _ in range(3):
        sign_in(browser, console, "alice", "wrong")
        assert browser.find_element(By.ID, "login-error").text == "Wrong user name or password."
    sign_in(browser, console, "alice")  # the right password, too late
    error = browser.find_element(By.ID, "login-error").text
    assert error == "Too many failed sign-ins; try again later."
    assert browser.find_elements(By.CSS_SELECTOR, ".whoami") == []


def test_pages_need_a_session_and_carry_the_security_headers(console: Console) -> None:
    page = httpx.get(console.url + "/accounts/acct-1", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login")
    login = httpx.get(console.url + "/login")
    csp = login.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no script is allowed at all
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["referrer-policy"] == "no-referrer"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    posted = httpx.post(console.url + "/accounts/acct-1/approve", data={"csrf_token": "x"})
    assert posted.status_code == 403


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy(console: Console) -> None:
    """From 127.0.0.1 (trusted) the header signs dana in as a viewer; from 127.0.0.2 it is
    ignored, and so is an X-Forwarded-For that claims the trusted address."""
    headers = {"X-Forwarded-User": "dana"}
    trusted = httpx.get(console.url + "/accounts/acct-1", headers=headers)
    assert trusted.status_code == 200
    assert "dana <em>(viewer)</em>" in trusted.text
    assert 'id="approve-acct-1"' not in trusted.text
    untrusted = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    url = console.url.replace("localhost", "127.0.0.1") + "/accounts/acct-1"
    with untrusted:
        for claim in ({}, {"X-Forwarded-For": "127.0.0.1"}):
            page = untrusted.get(url, headers=headers | claim, follow_redirects=False)
            assert (page.status_code, page.headers["location"]) == (303, "/login")


@pytest.mark.parametrize(
    ("query", "found"),
    [("SHOP.example", True), ("acct-1@example", True), ("acct-", True), ("nowhere", False)],
)
def test_search_finds_an_account_by_id_domain_or_email(
    console: Console, query: str, found: bool
) -> None:
    page = httpx.get(
        console.url + "/search", params={"q": query}, headers={"X-Forwarded-User": "dana"}
    )
    assert page.status_code == 200
    assert ('<a href="/accounts/acct-1">acct-1</a>' in page.text) is found
    assert ("no account matches" in page.text) is not found


def test_the_brake_page_says_the_lifecycle_runs(console: Console) -> None:
    page = httpx.get(console.url + "/brake", headers={"X-Forwarded-User": "dana"})
    assert page.status_code == 200
    assert "the lifecycle runs" in page.text
    assert 'id="brake-release"' not in page.text


def test_an_operator_rejects_a_deletion_then_releases_the_hold(
    console: Console, browser: WebDriver
) -> None:
    """Reject puts the account on hold; Retry with nothing failed is refused with the
    service's own sentence; Release resumes the clock, and the deletion, due again,
    waits for approval again."""
    sign_in(browser, console, "alice")
    browser.get(console.url + "/approvals")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/reject'] input[name=reason]").send_keys(
        "client phoned"
    )
    submit(browser, "reject-acct-1")
    assert browser.current_url == console.url + "/approvals"
    assert browser.find_element(By.ID, "flash").text == (
        "acct-1: delete rejected; the account is on hold (by console:alice)"
    )
    browser.get(console.url + "/accounts/acct-1")
    assert browser.find_element(By.ID, "account-state").text == "on-hold"
    assert "delete rejected: client phoned" in browser.find_element(By.ID, "hold").text

    submit(browser, "retry-button")
    flash = browser.find_element(By.CSS_SELECTOR, "#flash.error").text
    assert flash == "acct-1 has no failed playbook phase to retry"

    submit(browser, "release-button")
    assert browser.find_element(By.ID, "flash").text.startswith("acct-1: on-hold -> ")
    assert console.woken == ["acct-1"]
    console.app.runner.run_pending()
    browser.get(console.url + "/accounts/acct-1")
    assert browser.find_element(By.ID, "awaiting").text == "delete waits for approval"
