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


def test_a_spaced_block_spaces_the_young_pass_and_puts_the_thresholds_back() -> None:
    """Nested, left by an exception, or overlapping from another thread: the thresholds
    in force before the first block are back after the last one, and only then."""
    assert _run(
        """
        import gc, threading
        from daemon.runtime import collector

        before = gc.get_threshold()
        spaced = (collector.SYNC_YOUNG_THRESHOLD, *before[1:])
        with collector.spaced():
            print(gc.get_threshold() == spaced)
            try:
                with collector.spaced():
                    raise ValueError("a sync that failed")
            except ValueError:
                pass
            print(gc.get_threshold() == spaced)
            entered, leave = threading.Event(), threading.Event()

            def other() -> None:
                with collector.spaced():
                    entered.set()
                    leave.wait()

            thread = threading.Thread(target=other)
            thread.start()
            entered.wait()
        print(gc.get_threshold() == spaced)
        leave.set()
        thread.join()
        print(gc.get_threshold() == before)
        gc.set_threshold(500_000, *before[1:])
        with collector.spaced():
            print(gc.get_threshold()[0])
        print(gc.get_threshold()[0])
        """
    ) == ["True", "True", "True", "True", "500000", "500000"]


def test_in_a_spaced_block_a_cycle_is_still_collected_without_being_asked() -> None:
    """The passes are spaced out, not stopped: a cycle made in a spaced block outlives
    half the threshold's allocations, and the collector's own pass frees it before the
    threshold's worth more is made, without a call to gc.collect."""
    assert _run(
        """
        import gc, weakref
        from daemon.runtime import collector

        class Node:
            pass

        collector.hold()
        collector.settle()
        with collector.spaced():
            node = Node()
            node.me = node
            freed = []
            weakref.finalize(node, freed.append, "freed")
            del node
            print(len(freed))
            made = [[n] for n in range(collector.SYNC_YOUNG_THRESHOLD // 2)]
            print(len(freed))
            made += [[n] for n in range(collector.SYNC_YOUNG_THRESHOLD)]
            print(len(freed))
        """
    ) == ["0", "0", "1"]


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
