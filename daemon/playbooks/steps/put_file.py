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
    """Writes `content` (a template) or a maintenance page `template` to `path`.

    A maintenance page is written in the brand's language to `path` and once more in
    each language of the notice catalogs beside it, the language's tag before the
    extension (`lapse-maintenance.de.html`): the web server picks one by the visitor's
    Accept-Language (the shipped playbooks' vhosts do).
    """

    def describe(self, spec: PutFileSpec, context: StepContext) -> str:
        return f"write {self._path(spec, context)} (mode {spec.mode})"

    def _path(self, spec: PutFileSpec, context: StepContext) -> str:
        path = render_text(spec.path, context.variables, spec.name)
        if not path.startswith("/") or normpath(path) != path or "\n" in path:
            raise StepFailedError(f"{spec.name}: {path!r} is not a plain absolute path")
        return path

    def _files(self, spec: PutFileSpec, context: StepContext, path: str) -> list[tuple[str, bytes]]:
        """Return (path, content) of each file the step writes: the one file of `content`,
        or the page in the brand's language and one per language beside it."""
        if spec.template is None:
            assert spec.content is not None
            return [(path, render_text(spec.content, context.variables, spec.name).encode())]
        files = [(path, self._page(spec.template, context, None))]
        for language in context.pages.languages():
            files.append((_beside(path, language), self._page(spec.template, context, language)))
        return files

    def _page(self, template: str, context: StepContext, language: str | None) -> bytes:
        brand = context.variables["brand"]
        domains = context.service.domains
        page = context.pages.render(
            template,
            site=domains[0] if domains else context.variables["host"]["name"],
            support_email=brand["support_email"],
            company=brand["company"],
            language=language,
        )
        return page.encode("utf-8")

    def run(self, spec: PutFileSpec, context: StepContext) -> StepOutcome:
        path = self._path(spec, context)
        files = self._files(spec, context, path)
        if context.dry_run:
            digest = hashlib.sha256(files[0][1]).hexdigest()
            return StepOutcome(False, {"would_write": path, "sha256": digest})
        outcomes = [self._write(spec, context, where, content) for where, content in files]
        output = outcomes[0].output
        if len(files) > 1:
            output = {**output, "languages": context.pages.languages()}
        return StepOutcome(any(outcome.changed for outcome in outcomes), output)

    def _write(
        self, spec: PutFileSpec, context: StepContext, path: str, content: bytes
    ) -> StepOutcome:
        """Write one file atomically; raises StepFailedError when the host refuses."""
        digest = hashlib.sha256(content).hexdigest()
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


def _beside(path: str, language: str) -> str:
    """Return the path of the `language` copy of the page at `path`: the tag before the
    extension ('/m/page.html' gives '/m/page.de.html'), or after a name without one."""
    folder, _slash, name = path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    return f"{folder}/{stem}.{language}.{extension}" if dot and stem else f"{path}.{language}"
