"""The garbage collector's policy (daemon.runtime.collector), each case in a process of
its own: the collector is process-wide."""

from __future__ import annotations

import pytest

from tests.e2e.daemon_process import python


def _run(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; return the words it printed."""
    done = python(code)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_hold_turns_the_collector_off_and_settle_freezes_what_is_alive_and_turns_it_on() -> None:
    assert _run(
        """
        import gc
        from daemon.runtime import collector
        collector.hold()
        print(gc.isenabled())
        collector.settle()
        print(gc.isenabled(), gc.get_freeze_count() > 1000)
        """
    ) == ["False", "True", "True"]


@pytest.mark.parametrize("call", ["settle", "refreeze"])
def test_without_hold_nothing_is_frozen(call: str) -> None:
    """A process that did not hold the collector (a test, a bench) is left as it is."""
    assert _run(
        f"""
        import gc
        from daemon.runtime import collector
        collector.{call}()
        print(gc.isenabled(), gc.get_freeze_count())
        """
    ) == ["True", "0"]


def test_a_cycle_frozen_at_start_is_collected_only_after_refreeze() -> None:
    """What a reload replaces: frozen at start, unreachable now, freed by `refreeze`."""
    assert _run(
        """
        import gc, weakref
        from daemon.runtime import collector

        class Node:
            pass

        collector.hold()
        node = Node()
        node.me = node
        freed = []
        weakref.finalize(node, freed.append, "freed")
        collector.settle()
        del node
        gc.collect()
        print(len(freed))
        collector.refreeze()
        print(len(freed), gc.get_freeze_count() > 1000)
        """
    ) == ["0", "1", "True"]


def test_the_console_entry_is_light_so_the_hold_comes_before_the_imports() -> None:
    assert _run(
        """
        import sys
        import daemon.cli.entry
        print("daemon.cli.main" in sys.modules, "sqlalchemy" in sys.modules)
        """
    ) == ["False", "False"]
