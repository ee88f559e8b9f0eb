"""Atomic file writes: a partial file must never look finished.

Every file a stage finishes is written to a temporary path beside it
(``.<name>.<pid>.<random>.partial<suffix>``) and renamed into place, so a reader sees the
old file or the new one, never half of one. A process killed mid-write (kill -9, power loss)
leaves only such a temporary, which the next write of the same file removes once its owner
is dead. A full disk raises :class:`DiskFullError` and leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgeclf.errors import DiskFullError
from edgeclf.runtime.manifest import sha256_file

__all__ = ["atomic_path", "write_json", "write_text", "read_json", "sha256_file",
           "DiskFullError", "sweep_partials", "pid_alive"]

log = logging.getLogger(__name__)

#: errno values that mean "no space left" (disk full or quota exceeded).
DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.(?:partial|old)")


@contextlib.contextmanager
def atomic_path(final: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it into place.

    On any exception the temporary file/folder is removed and ``final`` is left as it was;
    an ``OSError`` meaning "disk full" becomes :class:`DiskFullError`. With
    ``is_dir=True`` the yielded path does not exist yet: create the folder there.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not is_dir and final.is_dir() and not final.is_symlink():
        raise IsADirectoryError(errno.EISDIR, f"{final} is a directory; refusing to replace "
                                "it with a file", str(final))
    sweep_partials(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".partial",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    if not is_dir:  # keep the suffix so libraries that look at it (".keras", ".onnx") are happy
        tmp = tmp.with_name(tmp.name + final.suffix)
    try:
        yield tmp
        _replace(tmp, final, is_dir=is_dir)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL \
                and not isinstance(exc, DiskFullError):
            raise DiskFullError(final, exc) from exc
        raise
    _fsync_dir(final.parent)


def _replace(tmp: Path, final: Path, *, is_dir: bool) -> None:
    if not (is_dir and (final.exists() or final.is_symlink())):
        os.replace(tmp, final)
        return
    # No atomic swap of folders: move the old one aside, move the new one in, drop the old.
    # A crash between the two renames leaves only the aside copy, which sweep_partials
    # restores before the next write.
    old = final.with_name(f".{final.name}.{os.getpid()}.{os.urandom(4).hex()}.old")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    _remove(old)


def sweep_partials(final: str | Path) -> list[Path]:
    """Remove temporaries of ``final`` left by dead processes (killed mid-write); restore an
    aside copy of a folder whose replacement was interrupted. Returns what was removed."""
    final = Path(final)
    removed = []
    try:
        candidates = list(final.parent.glob(f".{glob_escape(final.name)}.*"))
    except OSError:
        return removed
    for path in sorted(candidates):
        m = _PARTIAL.match(path.name)
        if not m or m.group("name") != final.name or pid_alive(int(m.group("pid"))):
            continue
        if path.name.endswith(".old") and not final.exists():
            log.warning("restoring %s from %s (its replacement was interrupted)", final, path)
            os.replace(path, final)
            continue
        log.info("removing %s, left by a process that died while writing it", path)
        _remove(path)
        removed.append(path)
    return removed


def partial_target(path: str | Path) -> str | None:
    """The name of the file a temporary (``.NAME.PID.X.partial`` / ``.old``) stands for."""
    m = _PARTIAL.match(Path(path).name)
    return m.group("name") if m else None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (used to tell abandoned temporaries from live ones)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every OS/filesystem supports it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_json(path: str | Path, data: object) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_default) + "\n")


def read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _default(o: object) -> object:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
