"""`http`: call a control panel or client-portal API, expecting a status and, where the
step says so, a text in the answer; optionally reading the object's state first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import HttpSpec
from daemon.playbooks.templating import render_text

if TYPE_CHECKING:
    import httpx


def _render_json(value: Any, context: StepContext, where: str) -> Any:
    if isinstance(value, str):
        return render_text(value, context.variables, where)
    if isinstance(value, dict):
        return {key: _render_json(item, context, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_json(item, context, where) for item in value]
    return value


def _holds(response: httpx.Response, marker: str) -> bool:
    """Whether the answer holds `marker`, as sent or with form encoding undone (panels
    such as DirectAdmin answer `error=1&text=...` url-encoded)."""
    return marker in response.text or marker in unquote_plus(response.text)


class HttpStep:
    """Sends one request; tokens and passwords come from env or file, never the playbook."""

    def describe(self, spec: HttpSpec, context: StepContext) -> str:
        return f"{spec.method} {render_text(spec.url, context.variables, spec.name)}"

    def run(self, spec: HttpSpec, context: StepContext) -> StepOutcome:
        """Read the state (if `state_url`), call, check the answer, read the state again.

        Returns unchanged when the state already showed `state_text`. Raises
        StepFailedError naming the URL and what was expected and found.
        """
        # Imported on first use: processes that run no playbook (`lapse backup`) skip it.
        import httpx

        url = render_text(spec.url, context.variables, spec.name)
        if context.dry_run:
            return StepOutcome(False, {"would_call": f"{spec.method} {url}"})
        headers = {k: render_text(v, context.variables, spec.name) for k, v in spec.headers.items()}
        if spec.bearer is not None:
            headers["Authorization"] = f"Bearer {spec.bearer.reveal()}"
        auth = None
        if spec.basic is not None:
            user = render_text(spec.basic.user, context.variables, spec.name)
            auth = httpx.BasicAuth(user, spec.basic.password.reveal())
        body = _render_json(spec.json_body, context, spec.name) if spec.json_body else None
        form = _render_json(spec.form, context, spec.name) if spec.form else None
        state_url = state_text = None
        if spec.state_url is not None and spec.state_text is not None:
            state_url = render_text(spec.state_url, context.variables, spec.name)
            state_text = render_text(spec.state_text, context.variables, spec.name)
        try:
            with httpx.Client(
                headers=headers, auth=auth, timeout=spec.timeout.total_seconds()
            ) as client:
                if state_url and state_text and _holds(client.get(state_url), state_text):
                    return StepOutcome(False, {"state": f"{state_url} holds {state_text!r}"})
                response = client.request(spec.method, url, json=body, data=form)
                self._check(spec, context, url, response)
                if state_url and state_text:
                    after = client.get(state_url)
                    if not _holds(after, state_text):
                        raise StepFailedError(
                            f"{spec.name}: after {spec.method} {url}, {state_url} does not "
                            f"hold {state_text!r}: {after.text[:200]}"
                        )
        except httpx.HTTPError as error:
            raise StepFailedError(f"{spec.name}: {spec.method} {url} failed: {error}") from error
        return StepOutcome(True, {"status": response.status_code})

    @staticmethod
    def _check(spec: HttpSpec, context: StepContext, url: str, response: httpx.Response) -> None:
        """Raise StepFailedError unless the status and the answer's text are as expected."""
        expected = spec.expect_status
        ok = response.status_code == expected if expected else response.is_success
        if not ok:
            raise StepFailedError(
                f"{spec.name}: {spec.method} {url} answered {response.status_code}"
                f" (expected {expected or '2xx'}): {response.text[:200]}"
            )
        if spec.expect_text is not None:
            marker = render_text(spec.expect_text, context.variables, spec.name)
            if not _holds(response, marker):
                raise StepFailedError(
                    f"{spec.name}: {spec.method} {url} answered without {marker!r}: "
                    f"{unquote_plus(response.text[:200])}"
                )
        if spec.reject_text is not None:
            marker = render_text(spec.reject_text, context.variables, spec.name)
            if _holds(response, marker):
                raise StepFailedError(
                    f"{spec.name}: {spec.method} {url} answered {marker!r}: "
                    f"{unquote_plus(response.text[:200])}"
                )
