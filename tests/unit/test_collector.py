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
        before = gc.get_threshold()
        collector.settle()
        print(gc.isenabled(), gc.get_freeze_count() > 1000)
        after = gc.get_threshold()
        print(after == (collector.YOUNG_THRESHOLD, *before[1:]), before[0] < after[0])
        """
    ) == ["False", "True", "True", "True", "True"]


def test_once_settled_a_cycle_is_still_collected_without_being_asked() -> None:
    """The passes are spaced out, not stopped: a cycle made after `settle` is freed by the
    collector's own pass once enough containers were made after it, none by a call."""
    assert _run(
        """
        import gc, weakref
        from daemon.runtime import collector

        class Node:
            pass

        collector.hold()
        collector.settle()
        node = Node()
        node.me = node
        freed = []
        weakref.finalize(node, freed.append, "freed")
        del node
        print(len(freed))
        made = [[n] for n in range(collector.YOUNG_THRESHOLD // 2)]
        print(len(freed))
        made += [[n] for n in range(collector.YOUNG_THRESHOLD)]
        print(len(freed), gc.get_count()[0] < collector.YOUNG_THRESHOLD)
        """
    ) == ["0", "0", "1", "True"]


@pytest.mark.parametrize("call", ["settle", "refreeze"])
def test_without_hold_nothing_is_frozen(call: str) -> None:
    """A process that did not hold the collector (a test, a bench) is left as it is."""
    assert _run(
        f"""
        import gc
        from daemon.runtime import collector
        before = gc.get_threshold()
        collector.{call}()
        print(gc.isenabled(), gc.get_freeze_count(), gc.get_threshold() == before)
        """
    ) == ["True", "0", "True"]


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
