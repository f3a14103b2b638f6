"""The `http` billing source: a JSON endpoint answering GET with the nested document."""

from __future__ import annotations

import httpx

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_document
from daemon.billing.snapshot import SyncResult
from daemon.config.schema import HttpAuth, HttpBilling


class HttpSource(BillingSource):
    """GETs the whole document on every sync, with bearer or basic auth."""

    def __init__(self, config: HttpBilling) -> None:
        self.url = config.url
        self.name = config.url
        self.auth = config.auth
        self.timeout = config.timeout.total_seconds()

    def fetch_all(self) -> SyncResult:
        """Fetch and read the document.

        Returns the snapshots and one RowError per skipped account. Raises
        BillingError on a network error, a non-2xx answer or a body that is
        not JSON; the message names the URL and never the credentials.
        """
        try:
            response = httpx.get(
                self.url,
                headers={"Accept": "application/json"},
                auth=_auth(self.auth),
                timeout=self.timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            raise BillingError(f"{self.url}: billing request failed: {error}") from error
        if not response.is_success:
            raise BillingError(
                f"{self.url}: billing endpoint answered {response.status_code} "
                f"{response.reason_phrase}"
            )
        try:
            document = response.json()
        except ValueError as error:
            raise BillingError(
                f"{self.url}: billing endpoint did not return JSON: {error}"
            ) from error
        return parse_document(document, self.url)


def _auth(auth: HttpAuth | None) -> httpx.Auth | None:
    """Return the httpx auth for the config, revealing the secret only here."""
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

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = self._header
        yield request
