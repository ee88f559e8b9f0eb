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
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgeclf.errors import RunError
from edgeclf.fsutil import pid_alive
from edgeclf.runtime.contract import Contract

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

    def contract(self) -> Contract:
        """The run's preprocessing contract, as training recorded it in ``run.json``."""
        try:
            raw = json.loads(self.run_json.read_text(encoding="utf-8"))
            return Contract.from_dict(raw["preprocessing"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RunError(f"{self.run_json} has no usable preprocessing contract: "
                           f"{type(e).__name__}: {e}") from None


#: Run roots whose lock this process holds: [file descriptor, re-entry depth].
_HELD: dict[Path, list] = {}


@contextlib.contextmanager
def run_lock(paths: RunPaths, *, purpose: str = "train") -> Iterator[None]:
    """Hold ``RUN/.lock`` for the duration; another process on the same run is refused.

    The lock is an exclusive ``flock`` on the file, so the kernel drops it when its process
    dies (kill -9 included): a lock left by a dead process never blocks a rerun. The file
    holds the owner's pid, purpose and start time for the refusal message. Re-entrant within
    one process (a stage that calls another keeps the outer lock).
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    key = paths.root.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _acquire(paths, purpose)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        _release(paths.lock, fd)


def lock_owner(paths: RunPaths) -> dict | None:
    """``{"pid", "purpose", "started"}`` of the live process holding the run, else ``None``.

    Read-only (it never takes the lock, so it cannot make a starting stage fail): the
    recorded pid is checked for liveness.
    """
    owner = _read_owner(paths.lock)
    pid = owner.get("pid") if owner else None
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return owner


def _acquire(paths: RunPaths, purpose: str) -> int:
    for _ in range(20):
        fd = os.open(paths.lock, os.O_CREAT | os.O_RDWR, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            owner = _read_owner(paths.lock) or {}
            what = ", ".join(f"{k} {owner[k]}" for k in ("pid", "purpose", "started")
                             if owner.get(k))
            raise RunError(f"{paths.root} is in use by another edgeclf process"
                           f"{f' ({what})' if what else ''}; wait for it to finish or stop "
                           "it, then rerun")
        try:  # the previous holder may have unlinked the file between our open and lock
            same = os.fstat(fd).st_ino == os.stat(paths.lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            owner = {"pid": os.getpid(), "purpose": purpose,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
            return fd
        _unlock(fd)
        os.close(fd)
    raise RunError(f"could not lock {paths.root}: the lock file keeps changing")


def _release(lock: Path, fd: int) -> None:
    try:
        lock.unlink(missing_ok=True)   # while still holding it: nobody can lock the old inode
    finally:
        _unlock(fd)
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_owner(lock: Path) -> dict | None:
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(data, int):          # older edgeclf wrote the bare pid
        return {"pid": data}
    return data if isinstance(data, dict) else None

