"""What is wrong in a playbook file, one sentence per problem, naming file, key and step.

pydantic files a step's errors under the step type that picked its model
(`('suspend', 1, 'run', 'command')`); the operator wrote `suspend[1].command`, so
the type is dropped from the key path. The problems only a step has are worded
in playbook terms: a key its type needs, a key its type does not take (naming the
step and the step types that do take it), a `type` no step has. Everything else
reads as in the config (daemon.config.load.format_error), which never quotes a value
at or under a secret key (a `bearer` written as the token itself), e.g.

    x.toml: at 'suspend[2]': a 'run' step needs 'command'
    x.toml: at 'suspend[0].url': unknown option in the 'run' step 'Lock the user':
        'url' belongs to 'http' and 'check' steps
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import ErrorDetails

from daemon.config.load import format_error
from daemon.config.plaintext import is_secret_path
from daemon.domain.phases import PLAYBOOK_PHASES
from daemon.playbooks.steps.specs import STEP_SPECS, option_owners, step_type


def playbook_problem(source: str, raw: Mapping[str, Any], detail: ErrorDetails) -> str:
    """Return one sentence for one pydantic error about the playbook `raw` read from
    `source`: `FILE: at 'phase[n].key': what is wrong`."""
    loc = detail["loc"]
    step = _step_at(raw, loc)
    if step is None:
        return format_error(source, detail)
    tag = step.get("type")
    # Keys inside the step, without the type pydantic puts in front of them.
    inside = loc[3:] if len(loc) > 2 and loc[2] == tag else loc[2:]
    where = (*loc[:2], *inside)
    kind = detail["type"]
    if kind == "union_tag_invalid":
        expected = _listing([step_type(spec) for spec in STEP_SPECS], "or")
        return _sentence(source, (*where, "type"), f"expected one of {expected}, got {tag!r}")
    if kind == "union_tag_not_found":
        return _sentence(source, (*where, "type"), "missing required option")
    if kind == "missing" and len(inside) == 1:
        return _sentence(source, loc[:2], f"a {tag!r} step needs {inside[0]!r}")
    if kind == "extra_forbidden" and len(inside) == 1:
        return _sentence(source, where, _not_an_option(str(inside[0]), tag, step.get("name")))
    if kind == "model_attributes_type" and not is_secret_path(where):
        return _sentence(source, where, f"expected a table, got {detail['input']!r}")
    return format_error(source, {**detail, "loc": where})


def _step_at(raw: Mapping[str, Any], loc: Sequence[int | str]) -> Mapping[str, Any] | None:
    """The step table an error at `loc` is about, or None when it is not inside a step."""
    if len(loc) < 2 or loc[0] not in PLAYBOOK_PHASES or not isinstance(loc[1], int):
        return None
    steps = raw.get(str(loc[0]))
    if not isinstance(steps, list) or loc[1] >= len(steps):
        return None
    step = steps[loc[1]]
    return step if isinstance(step, Mapping) else {}


def _not_an_option(key: str, tag: object, name: object) -> str:
    """Say that `key` is no option of the step, and which step types take it."""
    step = f"the {tag!r} step" + (f" {name!r}" if isinstance(name, str) else "")
    owners = option_owners(key)
    if not owners:
        return f"unknown option in {step}"
    return f"unknown option in {step}: {key!r} belongs to {_listing(owners, 'and')} steps"


def _listing(words: Sequence[str], conjunction: str) -> str:
    """`'a', 'b' or 'c'`: the words quoted, the last two joined by `conjunction`."""
    quoted = [repr(word) for word in words]
    if len(quoted) < 2:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + f" {conjunction} {quoted[-1]}"


def _sentence(source: str, loc: Sequence[int | str], message: str) -> str:
    """Word `message` at `loc` the way the config's errors are worded."""
    detail = ErrorDetails(
        type="value_error", loc=tuple(loc), msg=message, input=None, ctx={"error": message}
    )
    return format_error(source, detail)
