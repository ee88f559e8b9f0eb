"""Scan a folder-per-class dataset: class names, image files (sniffed by content), hashes."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from edgeclf.errors import DataError

log = logging.getLogger(__name__)

#: Formats accepted by content sniffing (Pillow's format names).
IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "MPO"}


@dataclass(frozen=True)
class Item:
    relpath: str        # POSIX path relative to the dataset root, "<class>/<file>"
    label: int
    sha256: str
    bytes: int


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

    @property
    def fingerprint(self) -> str:
        """Content fingerprint: class names + every (relative path, content hash)."""
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


class _TooLarge(Exception):
    pass


def sniff(path: Path) -> str | None:
    """Return Pillow's format name if the file's content is a supported image, else None.

    Raises ``_TooLarge`` for an image whose header announces a decompression bomb.
    """
    try:
        with Image.open(path) as img:
            fmt = img.format
    except Image.DecompressionBombError as e:
        raise _TooLarge(str(e)) from None
    except Exception:  # noqa: BLE001 - any failure to parse a header means "not an image"
        return None
    return fmt if fmt in IMAGE_FORMATS else None


def _hash(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def scan_dataset(root: str | Path) -> Dataset:
    """List classes (sorted sub-folder names) and image files, by content not extension.

    Hidden files and folders are skipped. Files directly in the root and folders nested
    deeper than one level are reported as problems, never silently used. Raises
    :class:`DataError` for a missing/empty root or one that is a file.
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
    for label, cls in enumerate(classes):
        _scan_class(ds, root, cls, label)
    return ds


def _scan_class(ds: Dataset, root: Path, cls: str, label: int) -> None:
    for e in sorted(os.scandir(root / cls), key=lambda e: e.name):
        rel = f"{cls}/{e.name}"
        if _hidden(e.name):
            continue
        if e.is_dir():
            ds.problems.append(Problem(rel, "nested", "folder nested deeper than one level "
                                       "is ignored (one sub-folder per class, images inside)"))
            continue
        path = Path(e.path)
        if not path.is_file():  # broken symlink, socket, ...
            ds.problems.append(Problem(rel, "unreadable", "not a regular file "
                                       "(broken symlink?)"))
            continue
        try:
            digest, size = _hash(path)
        except OSError as err:
            ds.problems.append(Problem(rel, "unreadable", f"cannot read: {err}"))
            continue
        if size == 0:
            ds.problems.append(Problem(rel, "empty", "0-byte file"))
            continue
        try:
            fmt = sniff(path)
        except _TooLarge as err:
            ds.problems.append(Problem(rel, "too_large", f"image too large to decode safely "
                                       f"(decompression-bomb guard: {err})"))
            continue
        if fmt is None:
            ds.problems.append(Problem(rel, "not_image", "not an image in a supported "
                                       f"format ({', '.join(sorted(IMAGE_FORMATS))})"))
            continue
        ds.items.append(Item(rel, label, digest, size))
