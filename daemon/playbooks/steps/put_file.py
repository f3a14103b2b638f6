"""`put_file`: render a template and write it to a host path atomically, with mode and owner."""

from __future__ import annotations

import hashlib
from posixpath import normpath
from shlex import quote

from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import PutFileSpec
from daemon.playbooks.templating import render_text
from daemon.transport import CommandError


class PutFileStep:
    """Writes `content` (a template) or a maintenance page `template` to `path`."""

    def describe(self, spec: PutFileSpec, context: StepContext) -> str:
        return f"write {self._path(spec, context)} (mode {spec.mode})"

    def _path(self, spec: PutFileSpec, context: StepContext) -> str:
        path = render_text(spec.path, context.variables, spec.name)
        if not path.startswith("/") or normpath(path) != path or "\n" in path:
            raise StepFailedError(f"{spec.name}: {path!r} is not a plain absolute path")
        return path

    def _content(self, spec: PutFileSpec, context: StepContext) -> bytes:
        if spec.template is not None:
            brand = context.variables["brand"]
            domains = context.service.domains
            page = context.pages.render(
                spec.template,
                site=domains[0] if domains else context.variables["host"]["name"],
                support_email=brand["support_email"],
                company=brand["company"],
            )
            return page.encode("utf-8")
        assert spec.content is not None
        return render_text(spec.content, context.variables, spec.name).encode("utf-8")

    def run(self, spec: PutFileSpec, context: StepContext) -> StepOutcome:
        path = self._path(spec, context)
        content = self._content(spec, context)
        digest = hashlib.sha256(content).hexdigest()
        if context.dry_run:
            return StepOutcome(False, {"would_write": path, "sha256": digest})
        owner = ""
        if spec.owner or spec.group:
            who = (spec.owner or "") + (":" + spec.group if spec.group else "")
            owner = f'chown -- {quote(who)} "$tmp"'
        # Written next to the target and renamed over it: readers see the old file or
        # the new one, never half of one.
        script = f"""
set -e
path={quote(path)}
dir=$(dirname -- "$path")
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.lapse-put.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chmod {spec.mode} "$tmp"
{owner}
if [ -f "$path" ] && [ "$(sha256sum < "$path" | cut -d' ' -f1)" = {digest} ]; then
  chmod {spec.mode} "$path"
  echo "lapse: unchanged"
else
  mv -f -- "$tmp" "$path"
fi
"""
        try:
            result = context.transport.run(script, spec.name, stdin=content)
        except CommandError as error:
            raise StepFailedError(f"{spec.name}: cannot write {path}: {error}") from error
        changed = b"lapse: unchanged" not in result.stdout
        return StepOutcome(changed, {"path": path, "sha256": digest, "bytes": len(content)})
