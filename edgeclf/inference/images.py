"""Labelled image sets preprocessed once by a run's contract: a run's split (checked
against the hashes ``split.json`` recorded) or a folder with one sub-folder per class.
Parity and eval both judge models on an :class:`ImageSet`."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.errors import ConfigError, DataError, RunError
from edgeclf.fsutil import read_json
from edgeclf.run import RunPaths
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.manifest import sha256_file
from edgeclf.runtime.preprocess import preprocess_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str          # missing | changed | unreadable
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageSet:
    """Labelled images preprocessed once: ``x[i]`` is ``files[i]`` of class ``y[i]``."""

    root: Path
    files: list[str]
    y: np.ndarray
    x: np.ndarray                          # (N, H, W, 3) uint8
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_split_images(run: RunPaths, split: str = "test", *, contract: Contract | None = None,
                      labels: Sequence[str] | None = None,
                      max_images: int | None = None) -> ImageSet:
    """The images of ``split.json``'s ``split``, checked against what training saw.

    A file that is gone, or whose sha256 differs from the one ``split.json`` recorded
    (``"sha256": {relpath: hex}``), is skipped and reported. Without per-file hashes the
    dataset fingerprint of ``run.json`` is compared instead (a warning, files unnamed).
    """
    if not run.split.is_file():
        raise RunError(f"{run.root} has no split.json")
    raw = read_json(run.split)
    if split not in ("train", "val", "test") or split not in raw:
        raise ConfigError(f"split must be test, val or train; got {split!r}")
    run_json = read_json(run.run_json) if run.run_json.is_file() else {}
    if contract is None:
        contract = run.contract()
    labels = list(labels or run.read_labels())
    root = Path(raw["root"])
    rel = [str(p) for p in raw[split]]
    y = _class_indices(rel, labels, where=f"split.json ({split})")
    rel, y = _select(rel, y, max_images)
    hashes = raw.get("sha256") if isinstance(raw.get("sha256"), dict) else None
    skipped: list[Skipped] = []
    keep: list[int] = []
    for i, p in enumerate(rel):
        f = root / p
        if not f.is_file():
            skipped.append(Skipped(p, "missing", f"{f} no longer exists"))
        elif hashes and p in hashes and sha256_file(f) != hashes[p]:
            skipped.append(Skipped(p, "changed", "content changed since training "
                                   "(sha256 differs from split.json)"))
        else:
            keep.append(i)
    warnings = [] if hashes else _fingerprint_warning(root, run_json)
    images = _preprocess(root, [rel[i] for i in keep], y[keep], contract, skipped)
    images.warnings = warnings + images.warnings
    return images


def load_folder_images(data_dir: str | Path, labels: Sequence[str], contract: Contract, *,
                       max_images: int | None = None) -> ImageSet:
    """Images of ``DATA_DIR/<class>/<file>``; class folders must be named as the labels."""
    from edgeclf.data.scan import scan_dataset

    ds = scan_dataset(data_dir)
    unknown = [c for c in ds.classes if c not in labels]
    if unknown:
        raise DataError(f"{data_dir}: class folder(s) {unknown[:10]} are not among the "
                        f"model's {len(labels)} labels ({', '.join(list(labels)[:10])}...)")
    rel = [it.relpath for it in ds.items]
    rel, y = _select(rel, _class_indices(rel, labels, where=str(data_dir)), max_images)
    skipped = [Skipped(p.relpath, p.kind, p.message) for p in ds.problems]
    return _preprocess(ds.root, rel, y, contract, skipped)


def _class_indices(rel: list[str], labels: Sequence[str], *, where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(labels)}
    bad = sorted({p.split("/", 1)[0] for p in rel} - set(index))
    if bad:
        raise DataError(f"{where} has classes {bad[:10]} that the model's labels lack")
    return np.array([index[p.split("/", 1)[0]] for p in rel], dtype=np.int64)


def _select(rel: list[str], y: np.ndarray, max_images: int | None) -> tuple[list[str], np.ndarray]:
    """At most ``max_images``, taken round-robin over classes (stable, class-balanced)."""
    if max_images is None or max_images >= len(rel):
        return rel, y
    if max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {max_images}")
    rank = np.zeros(len(rel), np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(len(idx))
    order = sorted(np.argsort(rank * (y.max() + 1) + y, kind="stable")[:max_images])
    return [rel[i] for i in order], y[order]


def _fingerprint_warning(root: Path, run_json: dict) -> list[str]:
    expected = (run_json.get("dataset") or {}).get("fingerprint")
    if not expected or not root.is_dir():
        return []
    from edgeclf.data.scan import scan_dataset

    if scan_dataset(root).fingerprint == expected:
        return []
    return [f"the dataset {root} changed since training (its fingerprint differs from "
            "run.json) and split.json records no per-file hashes, so changed files cannot "
            "be named; they are evaluated as they are now"]


def _preprocess(root: Path, rel: list[str], y: np.ndarray, contract: Contract,
                skipped: list[Skipped]) -> ImageSet:
    batch = preprocess_batch([root / p for p in rel], contract)
    for i, err in batch.errors:
        skipped.append(Skipped(rel[i], "unreadable", str(err)))
    files = [rel[i] for i in batch.ok]
    if not files:
        raise DataError(f"no usable image left under {root} ({len(skipped)} skipped: "
                        + ", ".join(f"{s.file} ({s.reason})" for s in skipped[:5]) + ")")
    if skipped:
        log.warning("%d image(s) skipped: %s", len(skipped),
                    ", ".join(f"{s.file} ({s.reason})" for s in skipped[:10]))
    return ImageSet(root=root, files=files, y=y[batch.ok], x=batch.array, skipped=skipped)


def digest_images(images: ImageSet) -> str:
    """sha256 of the preprocessed pixels (proves every model saw the same array)."""
    return hashlib.sha256(np.ascontiguousarray(images.x).tobytes()).hexdigest()
