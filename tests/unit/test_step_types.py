"""The step types line up: one module, one spec and one registry entry each, and every
step class takes its own spec; the playbook format has a table for every phase."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import pytest

import daemon.playbooks.steps
from daemon.domain.phases import PLAYBOOK_PHASES, Phase, playbook_phase
from daemon.playbooks.schema import Playbook
from daemon.playbooks.steps import STEP_TYPES
from daemon.playbooks.steps.specs import STEP_SPECS, CheckSpec, RunSpec, StepSpecBase, step_type

STEPS_DIR = Path(daemon.playbooks.steps.__file__).parent
# Modules of the steps package that are not a step type.
SHARED = {"__init__", "base", "specs"}


def _step_modules() -> set[str]:
    return {path.stem for path in STEPS_DIR.glob("*.py")} - SHARED


def _mismatches(
    modules: set[str], registry: Mapping[str, Any], specs: tuple[type[StepSpecBase], ...]
) -> list[str]:
    """What does not line up between the step modules, STEP_TYPES and the specs."""
    tags = {step_type(spec): spec for spec in specs}
    problems = [f"{name}: a module but no STEP_TYPES entry" for name in modules - set(registry)]
    problems += [f"{name}: in STEP_TYPES but no module" for name in set(registry) - modules]
    problems += [f"{name}: a spec but no STEP_TYPES entry" for name in set(tags) - set(registry)]
    problems += [f"{name}: in STEP_TYPES but no spec" for name in set(registry) - set(tags)]
    for name, step in registry.items():
        for method in ("describe", "run"):
            takes = get_type_hints(getattr(type(step), method))["spec"]
            if name in tags and takes is not tags[name]:
                problems.append(f"{name}: {method} takes {takes.__name__}")
    return sorted(problems)


def test_every_step_module_has_its_spec_and_its_registry_entry() -> None:
    assert _mismatches(_step_modules(), STEP_TYPES, STEP_SPECS) == []


def test_a_step_type_out_of_line_is_named() -> None:
    class TakesTheWrongSpec:
        def describe(self, spec: RunSpec, context: object) -> str:
            return ""

        def run(self, spec: CheckSpec, context: object) -> None:
            pass

    registry = {**STEP_TYPES, "check": TakesTheWrongSpec()}
    del registry["notify"]
    assert _mismatches(_step_modules() | {"ftp"}, registry, STEP_SPECS) == [
        "check: describe takes RunSpec",
        "ftp: a module but no STEP_TYPES entry",
        "notify: a module but no STEP_TYPES entry",
        "notify: a spec but no STEP_TYPES entry",
    ]


def _phase_tables(model: type[Playbook]) -> set[str]:
    """The playbook's keys that hold a list of steps."""
    return {
        name for name, field in model.model_fields.items() if get_origin(field.annotation) is list
    }


def test_the_playbook_format_has_a_table_for_every_phase() -> None:
    assert _phase_tables(Playbook) == set(PLAYBOOK_PHASES)


def test_a_phase_table_outside_the_vocabulary_is_seen() -> None:
    class Extended(Playbook):
        resume: list[RunSpec] = []

    assert _phase_tables(Extended) - set(PLAYBOOK_PHASES) == {"resume"}


def test_phase_names_read_back_as_their_phase() -> None:
    assert playbook_phase("delete") is Phase.DELETE
    assert [str(phase) for phase in PLAYBOOK_PHASES] == [
        "suspend",
        "unsuspend",
        "delete",
        "restore",
        "verify",
    ]
    with pytest.raises(ValueError, match="unknown playbook phase 'resume'"):
        playbook_phase("resume")
