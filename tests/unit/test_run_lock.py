"""run_lock: a second process on the same run is refused politely; kill -9 frees the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from edgeclf.errors import RunError
from edgeclf.run import RunPaths, lock_owner, run_lock

HOLD = textwrap.dedent("""
    import sys, time
    from edgeclf.run import RunPaths, run_lock
    with run_lock(RunPaths(sys.argv[1]), purpose="train"):
        print("locked", flush=True)
        time.sleep(120)
""")
TRY = textwrap.dedent("""
    import sys
    from edgeclf.errors import RunError
    from edgeclf.run import RunPaths, run_lock
    try:
        with run_lock(RunPaths(sys.argv[1])):
            print("acquired")
    except RunError as e:
        print("refused:", e)
""")


@pytest.fixture
def holder(tmp_path):
    run = tmp_path / "models" / "r"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield RunPaths(run), proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_process_is_refused_then_takes_over_after_kill9(holder):
    paths, proc = holder
    out = subprocess.run([sys.executable, "-c", TRY, str(paths.root)], capture_output=True,
                         text=True, timeout=60).stdout
    assert out.startswith("refused:") and f"pid {proc.pid}" in out and "purpose train" in out
    assert "wait for it to finish or stop it" in out
    with pytest.raises(RunError, match="in use by another edgeclf process"):
        with run_lock(paths):
            pass
    assert lock_owner(paths)["pid"] == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert paths.lock.exists() and lock_owner(paths) is None   # stale file, dead owner
    with run_lock(paths):
        assert json.loads(paths.lock.read_text())["pid"] == os.getpid()
        assert lock_owner(paths)["pid"] == os.getpid()
    assert not paths.lock.exists()


def test_reentrant_in_one_process_and_released_on_error(tmp_path):
    paths = RunPaths(tmp_path / "run")
    with pytest.raises(ValueError):
        with run_lock(paths):
            with run_lock(paths, purpose="export"):
                assert paths.lock.exists()
            assert paths.lock.exists()                  # the inner exit keeps the outer lock
            raise ValueError("stage failed")
    assert not paths.lock.exists()
    out = subprocess.run([sys.executable, "-c", TRY, str(paths.root)], capture_output=True,
                         text=True, timeout=60).stdout
    assert out.strip() == "acquired"


def test_lock_file_of_an_older_version_is_understood(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    paths.lock.write_text(str(os.getpid()))              # bare pid, live: reported
    assert lock_owner(paths) == {"pid": os.getpid()}
    with run_lock(paths):                                # but nobody holds the flock
        pass
    assert not paths.lock.exists()


def test_relocate_waits_for_no_one_and_touches_nothing_while_a_run_is_in_use(holder, tmp_path):
    """`data relocate` rewrites split.json and run.json: refused while another process
    holds the run (e.g. trains or exports it), so it never edits files under its feet."""
    from edgeclf.data.split import relocate_run

    paths, _ = holder
    paths.split.write_text(json.dumps({"root": str(tmp_path), "classes": ["a"], "train": [],
                                       "val": [], "test": []}))
    before = paths.split.read_text()
    with pytest.raises(RunError, match="in use by another edgeclf process"):
        relocate_run(paths.root, tmp_path)
    assert paths.split.read_text() == before
