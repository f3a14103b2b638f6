"""The console's web app: sign-in, the pages, and the actions behind their buttons.

Pages are rendered on the server from jinja2 templates (daemon/templates/console),
escaped (invariant 5), with plain HTML forms and no script. Every POST but the
sign-in needs a session; every POST needs the session's CSRF token; every action
needs the operator role and is recorded with the person (`console:<name>`) in the
account's events and so in the audit log. Database work runs in worker threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from daemon.config.schema import ConsoleConfig
from daemon.domain.errors import LapseError, UnknownAccountError
from daemon.notices.money import format_money
from daemon.runtime.console.auth import Authenticator, Identity
from daemon.runtime.console.security import CSRF_FIELD, SecurityHeaders, csrf_ok, csrf_token
from daemon.runtime.console.services import ConsoleServices
from daemon.runtime.console.throttle import LoginThrottle

log = structlog.get_logger("lapse.console")

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "console"
SESSION_COOKIE = "lapse_console"

Page = Callable[[Request], Awaitable[Response]]


def console_app(
    services: ConsoleServices,
    config: ConsoleConfig,
    session_key: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """Return the console for the daemon's `services`, with the `[console]` users, proxy
    and throttling settings, signing sessions with `session_key`."""
    console = _Console(services, config, clock)
    routes = [
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/", console.page(console.overview), methods=["GET"]),
        Route("/approvals", console.page(console.approvals), methods=["GET"]),
        Route("/brake", console.page(console.brake), methods=["GET"]),
        Route("/search", console.page(console.search), methods=["GET"]),
        Route("/accounts/{account_id}", console.page(console.account), methods=["GET"]),
        Route("/brake/release", console.action(console.brake_release), methods=["POST"]),
        Route(
            "/accounts/{account_id}/{verb}",
            console.action(console.account_action),
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=TEMPLATES / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=session_key,
            session_cookie=SESSION_COOKIE,
            max_age=int(config.session_lifetime.total_seconds()),
            same_site="strict",
            https_only=True,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)


class _Console:
    """The handlers, sharing the services, the authenticator, the throttle and templates."""

    def __init__(
        self, services: ConsoleServices, config: ConsoleConfig, clock: Callable[[], datetime]
    ) -> None:
        self.services = services
        self.auth = Authenticator(config)
        self.throttle = LoginThrottle(config.login_attempts, config.login_window)
        self.clock = clock
        self.lifetime = config.session_lifetime
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates.filters["money"] = format_money
        self.templates.filters["when"] = _when

    # -- who is asking ------------------------------------------------------------------

    def identity(self, request: Request) -> Identity | None:
        """The proxy's user (from a trusted proxy), else the session's local user while
        the session is young enough and the user still configured."""
        peer = request.client.host if request.client else None
        proxied = self.auth.from_proxy(peer, request.headers)
        if proxied is not None:
            return proxied
        name, since = request.session.get("user"), request.session.get("since")
        if not isinstance(name, str) or not isinstance(since, str):
            return None
        if self.clock() - datetime.fromisoformat(since) > self.lifetime:
            request.session.clear()
            return None
        return self.auth.local_user(name)

    def render(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """Render `template` with the signed-in person, the CSRF token and a flash message."""
        flash = request.session.pop("flash", None)
        html = self.templates.get_template(template).render(
            me=self.identity(request),
            csrf=csrf_token(request.session),
            csrf_field=CSRF_FIELD,
            flash=flash,
            **values,
        )
        return HTMLResponse(html, status)

    def refuse(self, request: Request, status: int, message: str) -> HTMLResponse:
        log.warning(
            "console request refused",
            path=request.url.path,
            status=status,
            reason=message,
            peer=request.client.host if request.client else None,
        )
        return self.render(request, "refused.html", status, message=message)

    # -- sign-in ------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html")

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return self.refuse(request, 403, "The form is out of date or forged (CSRF token).")
        name, password = str(form.get("user", "")), str(form.get("password", ""))
        address = request.client.host if request.client else "unknown"
        now = self.clock()
        if not self.throttle.allowed(name, address, now):
            log.warning("console sign-in throttled", user=name, peer=address)
            return self.render(
                request, "login.html", 429, error="Too many failed sign-ins; try again later."
            )
        identity = await run_in_threadpool(self.auth.check_password, name, password)
        if identity is None:
            self.throttle.failed(name, address, now)
            log.warning("console sign-in failed", user=name, peer=address)
            return self.render(request, "login.html", 401, error="Wrong user name or password.")
        self.throttle.succeeded(name)
        request.session.clear()  # a fresh session (and CSRF token) for the signed-in user
        request.session.update({"user": identity.name, "since": now.isoformat()})
        log.info("console sign-in", user=identity.name, role=identity.role, peer=address)
        return RedirectResponse("/", 303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return self.refuse(request, 403, "The form is out of date or forged (CSRF token).")
        request.session.clear()
        return RedirectResponse("/login", 303)

    # -- pages ----------------------------------------------------------------------------

    def page(self, build: Callable[[Request], Awaitable[Response]]) -> Page:
        """Wrap a page so that only a signed-in person sees it."""

        async def guarded(request: Request) -> Response:
            if self.identity(request) is None:
                return RedirectResponse("/login", 303)
            return await build(request)

        return guarded

    async def overview(self, request: Request) -> Response:
        figures = await run_in_threadpool(self.services.overview)
        return self.render(request, "overview.html", o=figures)

    async def approvals(self, request: Request) -> Response:
        waiting = await run_in_threadpool(self.services.approvals.waiting)
        return self.render(request, "approvals.html", waiting=waiting)

    async def brake(self, request: Request) -> Response:
        engaged = await run_in_threadpool(self.services.lifecycle.brake.status)
        return self.render(request, "brake.html", brake=engaged)

    async def search(self, request: Request) -> Response:
        text = request.query_params.get("q", "")[:200]
        found = await run_in_threadpool(self.services.search, text)
        return self.render(request, "search.html", q=text, found=found)

    async def account(self, request: Request) -> Response:
        account_id = request.path_params["account_id"]
        try:
            page = await run_in_threadpool(self.services.account, account_id)
        except UnknownAccountError as error:
            return self.render(request, "refused.html", 404, message=str(error))
        return self.render(request, "account.html", a=page)

    # -- actions --------------------------------------------------------------------------

    def action(self, act: Callable[[Request, Identity, Any], Awaitable[str]]) -> Page:
        """Wrap an action: a signed-in operator, the CSRF token, then `act`; its result or
        refusal is flashed and the browser sent back to the page it came from."""

        async def guarded(request: Request) -> Response:
            form = await request.form()
            if not csrf_ok(request, form.get(CSRF_FIELD)):
                return self.refuse(request, 403, "The form is out of date or forged (CSRF token).")
            me = self.identity(request)
            if me is None:
                return RedirectResponse("/login", 303)
            if not me.can_act:
                return self.refuse(request, 403, f"{me.name} is a viewer: operators only.")
            back = "/approvals" if form.get("back") == "/approvals" else _back(request)
            try:
                message = await act(request, me, form)
            except (LapseError, ValueError) as error:
                request.session["flash"] = {"error": True, "text": str(error)}
                return RedirectResponse(back, 303)
            request.session["flash"] = {"error": False, "text": message}
            return RedirectResponse(back, 303)

        return guarded

    async def account_action(self, request: Request, me: Identity, form: Any) -> str:
        account_id = request.path_params["account_id"]
        verb = request.path_params["verb"]
        reason = str(form.get("reason", "")).strip()
        services = self.services
        acts: dict[str, Callable[[], str]] = {
            "hold": lambda: services.hold(account_id, me.actor, _required(reason)),
            "release": lambda: services.release(account_id, me.actor),
            "retry": lambda: services.retry(account_id, me.actor),
            "restore": lambda: services.restore(account_id),
            "approve": lambda: services.approve(account_id, me.actor),
            "reject": lambda: services.reject(account_id, me.actor, _required(reason)),
        }
        act = acts.get(verb)
        if act is None:
            raise ValueError(f"no such action: {verb}")
        result = await run_in_threadpool(act)
        log.warning("console action", user=me.name, account=account_id, action=verb)
        return f"{account_id}: {result} (by {me.actor})"

    async def brake_release(self, request: Request, me: Identity, _form: Any) -> str:
        result = await run_in_threadpool(self.services.release_brake, me.actor)
        log.warning("console action", user=me.name, action="brake release")
        return result


def _when(moment: datetime | None) -> str:
    """A moment as the console shows it (UTC, to the minute); a dash for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _required(reason: str) -> str:
    if not reason:
        raise ValueError("a reason is required (it is recorded)")
    return reason[:500]


def _back(request: Request) -> str:
    """Where an action's answer sends the browser: the account's page, or the brake's."""
    account_id = request.path_params.get("account_id")
    return f"/accounts/{quote(account_id, safe='')}" if account_id else "/brake"
