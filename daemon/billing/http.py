"""The `http` billing source: a JSON endpoint answering GET with the nested document."""

from __future__ import annotations

import json
from collections.abc import Generator
from decimal import Decimal

import httpx

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_document
from daemon.config.schema import HttpAuth, HttpBilling
from daemon.config.secrets import SecretError
from daemon.domain.snapshot import SyncResult


class HttpSource(BillingSource):
    """GETs the whole document on every sync, with bearer or basic auth.

    Secrets are read at each fetch, so a rotated token file takes effect at the
    next sync without a restart.
    """

    def __init__(self, config: HttpBilling) -> None:
        """Take the endpoint's config; nothing is read or sent yet.

        Raises BillingError when the URL is not a valid http(s) URL.
        """
        self.url = config.url
        try:
            parsed = httpx.URL(config.url)
        except httpx.InvalidURL as error:
            raise BillingError(f"billing.url is not a valid URL: {error}") from None
        if parsed.scheme not in ("http", "https"):
            raise BillingError(
                f"billing.url must start with https:// or http://, got {parsed.scheme!r}"
            )
        # Errors and logs show the URL without any user:password@ written into it.
        self.name = str(parsed.copy_with(username=None, password=None))
        self.auth = config.auth
        self.timeout = config.timeout.total_seconds()

    def fetch_all(self) -> SyncResult:
        """Fetch and read the document.

        Returns the snapshots and one RowError per skipped account. Raises
        BillingError on a secret that cannot be read, a network error or timeout,
        a non-2xx answer (redirects are not followed, so credentials never travel
        to another host) or a body that is not JSON; the message names the
        URL and never the credentials.
        """
        try:
            auth = _auth(self.auth)
        except SecretError as error:
            raise BillingError(f"{self.name}: {error}") from None
        try:
            response = httpx.get(
                self.url,
                headers={"Accept": "application/json"},
                auth=auth,
                timeout=self.timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            problem = str(error) or type(error).__name__
            raise BillingError(f"{self.name}: billing request failed: {problem}") from None
        if not response.is_success:
            raise BillingError(
                f"{self.name}: billing endpoint answered {response.status_code} "
                f"{response.reason_phrase}"
            )
        try:
            # Decimal, not float: amounts must add up exactly.
            document = json.loads(response.content, parse_float=Decimal)
        except json.JSONDecodeError as error:
            raise BillingError(
                f"{self.name}: billing endpoint did not return JSON: {error.msg} "
                f"at line {error.lineno}, column {error.colno}"
            ) from None
        except UnicodeDecodeError as error:
            raise BillingError(
                f"{self.name}: billing endpoint did not return JSON: not UTF-8 text "
                f"(byte {error.start})"
            ) from None
        return parse_document(document, self.name)


def _auth(auth: HttpAuth | None) -> httpx.Auth | None:
    """Return the httpx auth for the config, revealing the secret only here.

    Raises SecretError when the token or password cannot be read.
    """
    if auth is None:
        return None
    if auth.type == "basic":
        assert auth.username is not None and auth.password is not None  # checked by the schema
        return httpx.BasicAuth(auth.username, auth.password.reveal())
    assert auth.token is not None  # checked by the schema
    return _Bearer(auth.token.reveal())


class _Bearer(httpx.Auth):
    """Sends `Authorization: Bearer TOKEN`."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def __repr__(self) -> str:
        return "<bearer auth>"  # never the token, should the object end up in a log

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the Authorization header to `request` and send it once."""
        request.headers["Authorization"] = self._header
        yield request
