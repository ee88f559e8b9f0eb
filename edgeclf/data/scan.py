"""Scan a folder-per-class dataset: class names, image files (sniffed by content), hashes.

Each file is read once: its bytes are hashed and its header parsed from the same read
(:mod:`edgeclf.data.headers`). Large trees are inspected in worker processes, in chunks of
files, with a progress callback (measured: benchmarks/results/scan-1m-2026-12-01.md).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing as mp
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgeclf.errors import DataError

from .headers import IMAGE_FORMATS, TooLarge, identify

log = logging.getLogger(__name__)

#: Below this many files the scan runs in this process (starting workers costs more).
PARALLEL_MIN_FILES = 4000
_CHUNK = 2000
_HEAD = 1 << 20


@dataclass(frozen=True, slots=True)
class Item:
    relpath: str        # POSIX path relative to the dataset root, "<class>/<file>"
    label: int
    sha256: str
    bytes: int
    width: int = 0      # from the header (before EXIF orientation); 0 when unknown
    height: int = 0


@dataclass(frozen=True)
class Problem:
    relpath: str
    kind: str           # not_image | unreadable | empty | nested | too_small | too_large | corrupt
    message: str


@dataclass
class Dataset:
    root: Path
    classes: list[str]
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    n_files: int = 0            # files listed in the class folders
    n_read: int = 0             # files read (all of them, or the sample)
    sampled: bool = False

    @functools.cached_property
    def fingerprint(self) -> str:
        """Content fingerprint: class names + every (relative path, content hash).
        Computed once (a million items take a second); the dataset must be complete."""
        h = hashlib.sha256()
        h.update("\0".join(self.classes).encode())
        for it in sorted(self.items, key=lambda i: i.relpath):
            h.update(f"\n{it.relpath}\0{it.sha256}".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for it in self.items:
            out[self.classes[it.label]] += 1
        return out


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__") or name in ("Thumbs.db", "desktop.ini")


def inspect_file(path: str) -> tuple:
    """Read a file once: ("ok", sha256, bytes, width, height) or (kind, message)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            n = os.fstat(fd).st_size
            head = os.read(fd, min(n, _HEAD)) if n else b""
            h = hashlib.sha256(head)
            while block := os.read(fd, 1 << 20):
                h.update(block)
        finally:
            os.close(fd)
    except OSError as err:
        return ("unreadable", f"cannot read: {err}")
    if n == 0:
        return ("empty", "0-byte file")
    try:
        found = identify(head, path)
    except TooLarge as err:
        return ("too_large", f"image too large to decode safely (decompression-bomb guard: "
                             f"{err})")
    if found is None:
        return ("not_image", "not an image in a supported format "
                             f"({', '.join(sorted(IMAGE_FORMATS))})")
    return ("ok", h.hexdigest(), n, found[1][0], found[1][1])


def _inspect_chunk(root: str, rels: list[str]) -> list[tuple]:
    return [inspect_file(os.path.join(root, rel)) for rel in rels]


def scan_dataset(root: str | Path, *, workers: int | None = None, sample: int | None = None,
                 seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> Dataset:
    """List classes (sorted sub-folder names) and image files, by content not extension.

    Hidden files and folders are skipped. Files directly in the root and folders nested
    deeper than one level are reported as problems, never silently used. ``sample``: read
    only that many files (a seeded random choice; the rest are listed, not read).
    ``progress(done, total)`` follows the files read. Raises :class:`DataError` for a
    missing/empty root or one that is a file.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is a file; give a folder with one sub-folder per class")
    root = root.resolve()
    classes = sorted(e.name for e in os.scandir(root)
                     if e.is_dir() and not _hidden(e.name))
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected DATA_DIR/<class>/<image>)")
    ds = Dataset(root=root, classes=classes)
    for e in sorted(os.scandir(root), key=lambda e: e.name):
        if e.is_file() and not _hidden(e.name):
            ds.problems.append(Problem(e.name, "misplaced",
                                       "file directly in the dataset root is ignored "
                                       "(images go in <class>/ sub-folders)"))
    files: list[tuple[str, int]] = []          # (relpath, label), in sorted order
    for label, cls in enumerate(classes):
        _list_class(ds, root, cls, label, files)
    ds.n_files = len(files)
    if sample is not None and sample < len(files):
        if sample < 1:
            raise DataError(f"--sample must be >= 1, got {sample}")
        keep = sorted(random.Random(seed).sample(range(len(files)), sample))
        files = [files[i] for i in keep]
        ds.sampled = True
    ds.n_read = len(files)
    results = _inspect_all(str(root), [rel for rel, _ in files], workers, progress)
    for (rel, label), res in zip(files, results):
        if res[0] == "ok":
            ds.items.append(Item(rel, label, res[1], res[2], res[3], res[4]))
        else:
            ds.problems.append(Problem(rel, res[0], res[1]))
    return ds


def _list_class(ds: Dataset, root: Path, cls: str, label: int,
                files: list[tuple[str, int]]) -> None:
    for e in sorted(os.scandir(root / cls), key=lambda e: e.name):
        rel = f"{cls}/{e.name}"
        if _hidden(e.name):
            continue
        if e.is_dir():
            ds.problems.append(Problem(rel, "nested", "folder nested deeper than one level "
                                       "is ignored (one sub-folder per class, images inside)"))
        elif not e.is_file():  # broken symlink, socket, ...
            ds.problems.append(Problem(rel, "unreadable", "not a regular file "
                                       "(broken symlink?)"))
        else:
            files.append((rel, label))


def _inspect_all(root: str, rels: list[str], workers: int | None,
                 progress: Callable[[int, int], None] | None) -> list[tuple]:
    n = len(rels)
    workers = max(1, min(workers or os.cpu_count() or 1, 32))
    chunks = [rels[i:i + _CHUNK] for i in range(0, n, _CHUNK)]
    out: list[tuple] = []
    if workers == 1 or n < PARALLEL_MIN_FILES:
        for chunk in chunks:
            out.extend(_inspect_chunk(root, chunk))
            if progress:
                progress(len(out), n)
        return out
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for part in pool.map(_inspect_chunk, [root] * len(chunks), chunks):
            out.extend(part)                      # in order: results line up with rels
            if progress:
                progress(len(out), n)
    return out
