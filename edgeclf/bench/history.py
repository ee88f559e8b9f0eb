"""``bench.json`` and ``bench.png``: the dated entries of `edgeclf bench`, kept side by side.

``bench.json`` is ``{"runs": [entry, ...]}``, one :class:`BenchResult` entry per bench, the
earlier ones never rewritten; ``bench.png`` is drawn from the newest.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeclf.errors import RunError
from edgeclf.fsutil import write_json
from edgeclf.run import RunPaths


@dataclass
class BenchResult:
    """One dated entry of ``bench.json``."""

    date: str
    machine: dict
    config: dict
    target: str
    results: list[dict] = field(default_factory=list)

    def to_entry(self) -> dict:
        return asdict(self)


def default_output(target: str | Path) -> Path:
    """Where bench.json/bench.png go: the run itself, or ``bench-<stem>/`` for a model file."""
    target = Path(target)
    return target if target.is_dir() else Path.cwd() / f"bench-{target.stem}"


def append_history(bench_json: str | Path, result: BenchResult) -> dict:
    """Append ``result`` to ``bench.json`` (``{"runs": [...]}``), keeping every earlier run.

    A ``bench.json`` that is not in that shape is refused rather than overwritten.
    """
    bench_json = Path(bench_json)
    bench_json.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(bench_json.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)   # two benches appending at once both keep their entry
        history: dict = {"runs": []}
        if bench_json.is_file():
            try:
                history = json.loads(bench_json.read_text())
            except ValueError as e:
                raise RunError(f"{bench_json} is not valid JSON ({e}); move it away to start "
                               "a new history") from None
            if not isinstance(history, dict) or not isinstance(history.get("runs"), list):
                raise RunError(f"{bench_json} has no 'runs' list; move it away to start a "
                               "new history")
        history["runs"].append(result.to_entry())
        write_json(bench_json, history)
        return history
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_history(bench_json: str | Path) -> list[dict]:
    path = Path(bench_json)
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def save_bench(result: BenchResult, out_dir: str | Path) -> tuple[Path, Path | None]:
    """Append to ``out_dir/bench.json`` and draw ``out_dir/bench.png``; returns both paths."""
    paths = RunPaths(Path(out_dir))
    append_history(paths.bench_json, result)
    from edgeclf.bench.plot import plot_bench

    png = plot_bench(result, paths.bench_png, parity_json=paths.parity,
                     manifest=paths.manifest)
    return paths.bench_json, png
