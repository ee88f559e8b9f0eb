"""Atomic writes under faults: disk full mid-write, a writer killed with -9, folders."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeclf import fsutil
from edgeclf.errors import EdgeclfError
from edgeclf.fsutil import DiskFullError, atomic_path, sweep_partials, write_json, write_text


class _FillingFile(io.StringIO):
    """A text file on a disk that fills up after ``room`` characters."""

    def __init__(self, room: int):
        super().__init__()
        self.room = room

    def write(self, s: str) -> int:
        if self.tell() + len(s) > self.room:
            super().write(s[: max(0, self.room - self.tell())])
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)

    def fileno(self) -> int:
        raise AssertionError("fsync must not be reached after a failed write")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or
                  p.name.endswith(".old"))


def test_disk_full_while_writing_json_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"test": {"accuracy": 0.9}})
    before = target.read_bytes()
    opened: list[str] = []

    def full_open(path, mode="r", **kw):
        opened.append(str(path))
        return _FillingFile(room=10) if "w" in mode else open(path, mode, **kw)

    monkeypatch.setattr(fsutil, "open", full_open, raising=False)
    with pytest.raises(DiskFullError) as info:
        write_json(target, {"test": {"accuracy": 0.95, "per_class": list(range(100))}})
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, EdgeclfError)
    assert err.errno == errno.ENOSPC and err.filename == str(target)
    assert "no space left" in str(err) and "metrics.json is left intact" in str(err)
    assert opened and ".partial" in opened[0]           # the write went to a temporary
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_disk_full_at_fsync_and_at_checkpoint_save(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints" / "best.keras"
    with atomic_path(ckpt) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == ckpt.parent
        tmp.write_bytes(b"epoch 1 weights")
    with pytest.raises(DiskFullError):                  # e.g. inside model.save(tmp)
        with atomic_path(ckpt) as tmp:
            tmp.write_bytes(b"epoch 2 wei")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert ckpt.read_bytes() == b"epoch 1 weights"

    def no_room(fd):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(fsutil.os, "fsync", no_room)
    with pytest.raises(DiskFullError, match="best.keras is left intact"):
        write_text(ckpt, "epoch 3")
    assert ckpt.read_bytes() == b"epoch 1 weights"
    assert _leftovers(ckpt.parent) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(PermissionError):
        with atomic_path(target):
            raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(KeyError):
        with atomic_path(target):
            raise KeyError("x")
    assert not target.exists() and _leftovers(tmp_path) == []


def test_folders_are_replaced_whole_or_not_at_all(tmp_path):
    final = tmp_path / "model_savedmodel"
    with atomic_path(final, is_dir=True) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("v1")
    with pytest.raises(DiskFullError):
        with atomic_path(final, is_dir=True) as tmp:
            tmp.mkdir()
            (tmp / "saved_model.pb").write_text("v2 half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (final / "saved_model.pb").read_text() == "v1"
    with atomic_path(final, is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("v3")
    assert [p.name for p in final.iterdir()] == ["saved_model.pb"]
    assert (final / "saved_model.pb").read_text() == "v3" and _leftovers(tmp_path) == []
    with pytest.raises(IsADirectoryError):
        write_text(final, "a file over a folder")
    assert final.is_dir()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writer_killed_mid_write_leaves_nothing_that_looks_finished(tmp_path):
    target = tmp_path / "checkpoints" / "last.keras"
    write_text(target, "complete epoch 3")
    script = textwrap.dedent(f"""
        import sys, time
        from edgeclf.fsutil import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_text("half of epoch 4")
            print(tmp, flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    partial = Path(proc.stdout.readline().strip())
    assert partial.is_file() and str(proc.pid) in partial.name
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "complete epoch 3"      # the finished file is untouched
    assert partial.exists()                              # the debris of the killed writer...
    write_text(target, "complete epoch 4")               # ...is swept by the next write
    assert not partial.exists() and target.read_text() == "complete epoch 4"
    assert _leftovers(target.parent) == []


def test_interrupted_folder_swap_is_restored(tmp_path):
    final = tmp_path / "export"
    aside = tmp_path / f".export.{_dead_pid()}.abcd1234.old"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    live = tmp_path / f".export.{os.getpid()}.live0000.partial"   # a live writer's: kept
    live.mkdir()
    assert sweep_partials(final) == []
    assert (final / "manifest.json").read_text() == "{}" and not aside.exists()
    assert live.exists()
