"""The calibration set for int8 quantization: a seeded, stratified sample of the run's
*training* split, preprocessed by the shared contract (the same pixels training saw)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeclf.data.split import Split
from edgeclf.errors import ExportError
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.preprocess import preprocess_batch

if TYPE_CHECKING:
    from .context import ExportContext

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_SIZE = 300
PIXEL_RANGE = (0, 255)


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration images and the files they came from."""

    root: Path
    files: list[str]            # relative to ``root``, in the order of ``images``
    images: np.ndarray          # (n, H, W, 3) uint8
    seed: int
    requested: int
    skipped: list[str]          # files listed in the split that could not be read

    def to_dict(self) -> dict:
        """The manifest record: enough to rebuild the same set."""
        return {"split": "train", "root": str(self.root), "size": len(self.files),
                "requested": self.requested, "seed": self.seed, "files": list(self.files),
                "skipped": list(self.skipped)}

    def batches(self, batch_size: int = 1, *, dtype: str = "float32"):
        """Yield float32 batches holding 0..255 values (the model's input)."""
        for i in range(0, len(self.images), batch_size):
            yield self.images[i:i + batch_size].astype(dtype)


def stratified_sample(split: Split, size: int, seed: int) -> list[str]:
    """Pick ``size`` training files, each class in proportion to its share (at least one
    per class while ``size`` allows), reproducibly for a given seed."""
    if size < 1:
        raise ExportError(f"--calibration-size must be at least 1, got {size}")
    by_class: dict[str, list[str]] = {c: [] for c in split.classes}
    for p in split.train:
        by_class.setdefault(p.split("/", 1)[0], []).append(p)
    total = sum(len(v) for v in by_class.values())
    if total == 0:
        raise ExportError("the run's training split is empty: nothing to calibrate int8 on")
    if size >= total:
        return sorted(split.train)
    quota = {c: len(v) * size / total for c, v in by_class.items()}
    take = {c: min(len(by_class[c]), max(1, int(q))) if by_class[c] else 0
            for c, q in quota.items()}
    # hand out what is left to the classes with the largest remainders
    order = sorted(by_class, key=lambda c: (-(quota[c] - int(quota[c])), c))
    while sum(take.values()) < size:
        grown = False
        for c in order:
            if sum(take.values()) < size and take[c] < len(by_class[c]):
                take[c] += 1
                grown = True
        if not grown:
            break
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for c in sorted(by_class):
        files = sorted(by_class[c])
        idx = rng.choice(len(files), size=take[c], replace=False) if take[c] else []
        picked += [files[i] for i in sorted(idx)]
    return picked


def load_calibration(split: Split, contract: Contract, *, size: int = DEFAULT_CALIBRATION_SIZE,
                     seed: int = 0) -> CalibrationSet:
    """Sample and preprocess the calibration images; unreadable files are skipped."""
    files = stratified_sample(split, size, seed)
    batch = preprocess_batch([split.root / f for f in files], contract)
    skipped = [files[i] for i, _ in batch.errors]
    for i, err in batch.errors[:5]:
        log.warning("calibration image skipped: %s", err)
    if skipped:
        log.warning("%d of %d calibration images could not be read", len(skipped), len(files))
    kept = [files[i] for i in batch.ok]
    if not kept:
        raise ExportError(f"none of the {len(files)} calibration images under {split.root} "
                          "could be read (was the dataset moved? split.json has its root)")
    images = anchor_pixel_range(batch.array)
    log.info("calibration set: %d training images, seed %d", len(kept), seed)
    return CalibrationSet(root=split.root, files=kept, images=images, seed=seed,
                          requested=size, skipped=skipped)


def anchor_pixel_range(images: np.ndarray) -> np.ndarray:
    """Make sure the calibration data spans the full 0..255 input range.

    The converters derive the integer input's scale and zero point from the range seen
    during calibration; spanning 0..255 gives uint8 input scale 1 and zero point 0 (the
    model contract), so raw uint8 pixels are the input. Natural photos almost always
    contain both values already; otherwise one pixel of the first image is set.
    """
    lo, hi = PIXEL_RANGE
    if images.min() <= lo and images.max() >= hi:
        return images
    images = images.copy()
    images[0, 0, 0, :] = lo
    images[0, -1, -1, :] = hi
    log.debug("calibration images did not span 0..255; anchored two pixels")
    return images


def calibration_set(ctx: "ExportContext") -> "CalibrationSet":
    """The export's int8 calibration set, sampled once from the run's training split."""
    def make() -> CalibrationSet:
        if not ctx.split_path.is_file():
            raise ExportError(f"int8 calibration needs the run's split.json "
                              f"({ctx.split_path} is missing)")
        return load_calibration(Split.read(ctx.split_path), ctx.contract,
                                size=ctx.calibration_size, seed=ctx.seed)
    return ctx.memo("calibration", make)
