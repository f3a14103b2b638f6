"""`http`: call a control panel or client-portal API, expecting a status."""

from __future__ import annotations

from typing import Any

from daemon.playbooks.schema import StepSpec
from daemon.playbooks.templating import render_text
from daemon.steps.base import StepContext, StepFailedError, StepOutcome


def _render_json(value: Any, context: StepContext, where: str) -> Any:
    if isinstance(value, str):
        return render_text(value, context.variables, where)
    if isinstance(value, dict):
        return {key: _render_json(item, context, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_json(item, context, where) for item in value]
    return value


class HttpStep:
    """Sends one request; the bearer token comes from env or file, never the playbook."""

    def describe(self, spec: StepSpec, context: StepContext) -> str:
        assert spec.url is not None
        return f"{spec.method} {render_text(spec.url, context.variables, spec.name)}"

    def run(self, spec: StepSpec, context: StepContext) -> StepOutcome:
        # Imported on first use: processes that run no playbook (`lapse backup`) skip it.
        import httpx

        assert spec.url is not None
        url = render_text(spec.url, context.variables, spec.name)
        if context.dry_run:
            return StepOutcome(False, {"would_call": f"{spec.method} {url}"})
        headers = {k: render_text(v, context.variables, spec.name) for k, v in spec.headers.items()}
        if spec.bearer is not None:
            headers["Authorization"] = f"Bearer {spec.bearer.reveal()}"
        body = _render_json(spec.json_body, context, spec.name) if spec.json_body else None
        try:
            response = httpx.request(
                spec.method,
                url,
                headers=headers,
                json=body,
                timeout=spec.timeout.total_seconds(),
            )
        except httpx.HTTPError as error:
            raise StepFailedError(f"{spec.name}: {spec.method} {url} failed: {error}") from error
        expected = spec.expect_status
        ok = response.status_code == expected if expected else response.is_success
        if not ok:
            raise StepFailedError(
                f"{spec.name}: {spec.method} {url} answered {response.status_code}"
                f" (expected {expected or '2xx'}): {response.text[:200]}"
            )
        return StepOutcome(True, {"status": response.status_code})
