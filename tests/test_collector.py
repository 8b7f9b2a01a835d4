"""The collector's settings for a command of many objects (each test in a
process of its own: the collector is the whole process's)."""

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_start_up_objects_are_frozen_and_young_ones_collected_less_often_but_still_collected():
    out = _run("""
        import gc, weakref
        from transfercore.collector import MANY_OBJECTS_THRESHOLD, many_objects
        before = gc.get_threshold()

        class Cycle:
            def __init__(self):
                self.me = self

        with many_objects():
            assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
            assert gc.get_threshold() == (MANY_OBJECTS_THRESHOLD, *before[1:]), gc.get_threshold()
            ref = weakref.ref(Cycle())
            assert ref() is not None
            junk = [[i] for i in range(3 * MANY_OBJECTS_THRESHOLD)]  # allocations drive the collector
            assert ref() is None, "a cycle made meanwhile was never collected"
        # as it was afterwards
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        print("ok")
    """)
    assert out == "ok"


def test_a_tree_copy_from_the_command_line_sets_the_collector_while_it_runs(tmp_path: Path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 100)
    out = _run(f"""
        import gc
        from transfercore.campaign import TreeCopy
        from transfercore.cli import main
        from transfercore.collector import MANY_OBJECTS_THRESHOLD
        before = gc.get_threshold()
        assert before[0] != MANY_OBJECTS_THRESHOLD
        seen = []
        run = TreeCopy.run
        def watched(self):
            seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
            return run(self)
        TreeCopy.run = watched
        code = main(["copy", "-r", "--quiet", "--journal", {str(tmp_path / "j.db")!r},
                     {str(src)!r}, {str(tmp_path / "dst")!r}])
        print(code, seen == [(MANY_OBJECTS_THRESHOLD, True)], gc.get_threshold() == before,
              gc.get_freeze_count() == 0)
    """)
    assert out == "0 True True True"
    assert (tmp_path / "dst" / "d" / "f").read_bytes() == b"x" * 100
