"""`check`: probe the site over HTTP and require a status, headers and a marker text."""

from __future__ import annotations

from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import CheckSpec
from daemon.playbooks.templating import render_text


class CheckStep:
    """Proves an effect took hold: a suspension that does not show is not a suspension."""

    def describe(self, spec: CheckSpec, context: StepContext) -> str:
        url = render_text(spec.url, context.variables, spec.name)
        return f"expect {spec.expect_status or 200} from {url}"

    def run(self, spec: CheckSpec, context: StepContext) -> StepOutcome:
        # Imported on first use: processes that run no playbook (`lapse backup`) skip it.
        import httpx

        url = render_text(spec.url, context.variables, spec.name)
        if context.dry_run:
            return StepOutcome(False, {"would_check": url})
        headers = {}
        if spec.host_header:
            headers["Host"] = render_text(spec.host_header, context.variables, spec.name)
        try:
            response = httpx.get(
                url, headers=headers, timeout=spec.timeout.total_seconds(), follow_redirects=False
            )
        except httpx.HTTPError as error:
            raise StepFailedError(f"{spec.name}: {url} did not answer: {error}") from error
        problems = []
        expected = spec.expect_status or 200
        if response.status_code != expected:
            problems.append(f"status {response.status_code}, expected {expected}")
        for name, value in spec.expect_header.items():
            wanted = render_text(value, context.variables, spec.name)
            if response.headers.get(name) != wanted:
                problems.append(
                    f"header {name}: {response.headers.get(name)!r}, expected {wanted!r}"
                )
        if spec.expect_text is not None:
            marker = render_text(spec.expect_text, context.variables, spec.name)
            if marker not in response.text:
                problems.append(f"body lacks {marker!r}")
        if spec.reject_text is not None:
            marker = render_text(spec.reject_text, context.variables, spec.name)
            if marker in response.text:
                problems.append(f"body still holds {marker!r}")
        if problems:
            raise StepFailedError(f"{spec.name}: {url}: " + "; ".join(problems))
        return StepOutcome(False, {"status": response.status_code})
