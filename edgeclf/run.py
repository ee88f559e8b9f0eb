"""The run directory layout, shared by every stage.

models/<name>/
  run.json            resolved config, versions, backend, dataset fingerprint, classes
  labels.txt          one class name per line, in model output order
  split.json          public contract: {"root", "classes", "train", "val", "test"}
  data_report.json    dataset validation report
  history.csv         one row per epoch (both phases)
  logs/               TensorBoard logs
  checkpoints/best.keras, last.keras, state.json (resume state)
  metrics.json        public contract: {"test": {...}, "val": {...}, "train_seconds", ...}
  export/manifest.json + artifacts
  parity.json, eval.json, confusion_matrix.png, bench.json, bench.png, report.html
  .lock               held while a process trains this run
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgeclf.errors import RunError

DEFAULT_ROOT = Path("models")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    run_json = property(lambda self: self.root / "run.json")
    labels = property(lambda self: self.root / "labels.txt")
    split = property(lambda self: self.root / "split.json")
    data_report = property(lambda self: self.root / "data_report.json")
    history = property(lambda self: self.root / "history.csv")
    logs = property(lambda self: self.root / "logs")
    checkpoints = property(lambda self: self.root / "checkpoints")
    best = property(lambda self: self.root / "checkpoints" / "best.keras")
    last = property(lambda self: self.root / "checkpoints" / "last.keras")
    state = property(lambda self: self.root / "checkpoints" / "state.json")
    metrics = property(lambda self: self.root / "metrics.json")
    export_dir = property(lambda self: self.root / "export")
    manifest = property(lambda self: self.root / "export" / "manifest.json")
    parity = property(lambda self: self.root / "parity.json")
    eval_json = property(lambda self: self.root / "eval.json")
    confusion_png = property(lambda self: self.root / "confusion_matrix.png")
    bench_json = property(lambda self: self.root / "bench.json")
    bench_png = property(lambda self: self.root / "bench.png")
    report_html = property(lambda self: self.root / "report.html")
    lock = property(lambda self: self.root / ".lock")

    def require(self, *, checkpoint: bool = False) -> "RunPaths":
        if not self.root.is_dir():
            raise RunError(f"{self.root} is not a run directory (it does not exist)")
        if not self.run_json.is_file():
            raise RunError(f"{self.root} is not an edgeclf run: no run.json")
        if checkpoint and not (self.best.is_file() or self.last.is_file()):
            raise RunError(f"{self.root} has no checkpoint (checkpoints/best.keras): "
                           "train it first or resume it with `edgeclf train --resume`")
        return self

    def read_labels(self) -> list[str]:
        if not self.labels.is_file():
            raise RunError(f"{self.root} has no labels.txt")
        return [ln for ln in self.labels.read_text(encoding="utf-8").splitlines() if ln]


@contextlib.contextmanager
def run_lock(paths: RunPaths) -> Iterator[None]:
    """Hold ``.lock`` for the duration; a second process on the same run is refused.

    The lock records the pid; a lock left by a dead process (kill -9) is taken over.
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = paths.lock
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = _read_pid(lock)
            if pid and _alive(pid) and pid != os.getpid():
                raise RunError(f"{paths.root} is in use by another edgeclf process "
                               f"(pid {pid}); wait for it or stop it") from None
            lock.unlink(missing_ok=True)  # stale lock of a dead process
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    else:  # pragma: no cover - race with another process
        raise RunError(f"could not lock {paths.root}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _read_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
