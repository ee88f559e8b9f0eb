"""Faults: processes killed with -9 mid-stage, then the same command rerun.

Each test kills a real subprocess at a known point (it prints a line when it gets there),
then reruns and checks that nothing partial is mistaken for finished work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeclf.data import load_or_build, scan_dataset
from edgeclf.data.cache import INDEX, cache_dir_for
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.preprocess import preprocess

CONTRACT = Contract(size=(32, 32))

BUILD_AND_STALL = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeclf.data import load_or_build, scan_dataset
    from edgeclf.runtime.contract import Contract

    def stall(done, total):          # called after each decoded chunk: stop after the first
        print(f"decoded {done}/{total}", flush=True)
        time.sleep(120)

    load_or_build(scan_dataset(sys.argv[1]), Contract(size=(32, 32)),
                  workers=int(sys.argv[3]), root=Path(sys.argv[2]), progress=stall)
""")


def _start(script: str, *args: object, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("workers", [1, 2])
def test_kill9_during_decode_cache_build_then_rerun_rebuilds(shapes_dir, tmp_path, workers):
    root = tmp_path / "cache"
    dataset = scan_dataset(shapes_dir)
    final = cache_dir_for(dataset, CONTRACT, root)
    proc = _start(BUILD_AND_STALL, shapes_dir, root, workers)
    line = proc.stdout.readline()
    assert line.startswith("decoded "), line
    done, total = map(int, line.split()[1].split("/"))
    assert 0 < done < total == len(dataset.items)       # killed half-way through
    _kill9(proc)

    assert not final.exists()                          # nothing looks like a finished cache
    partial = [p for p in final.parent.iterdir() if ".partial" in p.name]
    assert partial and not (partial[0] / INDEX).exists()

    cache = load_or_build(dataset, CONTRACT, workers=1, root=root)
    assert cache.built and cache.path == final          # rebuilt, not reused
    assert cache.ok.all() and len(cache.relpaths) == total
    for i in (0, done, total - 1):                      # rows before and after the kill point
        rel = cache.relpaths[i]
        np.testing.assert_array_equal(cache.images[i], preprocess(shapes_dir / rel, CONTRACT))
    assert not load_or_build(dataset, CONTRACT, workers=1, root=root).built
