"""Dataset validation report: counts, bad files, duplicates, empty classes, imbalance."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from edgeclf.errors import DataError

from .cache import DecodeCache
from .scan import Dataset, Problem

#: Images whose shorter side is below this many pixels are reported as too small.
MIN_SIZE = 32
#: A largest/smallest class ratio above this is reported as imbalance.
IMBALANCE_RATIO = 3.0
#: A class with this many times fewer images than the largest (or a single image) is
#: flagged by name: its results mean little and it may be recalled poorly.
SMALL_CLASS_RATIO = 5.0


@dataclass
class DataReport:
    root: Path
    classes: list[str]
    counts: dict[str, int]                         # usable images per class
    n_files: int                                   # image files found (before decoding)
    problems: list[Problem] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)        # same class
    cross_class_duplicates: list[list[str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    imbalance: float = 1.0
    small_classes: list[str] = field(default_factory=list)   # see SMALL_CLASS_RATIO
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""
    sample: dict | None = None                     # {"checked": n, "listed": m} if sampled

    @property
    def n_usable(self) -> int:
        return sum(self.counts.values())

    @property
    def usable_classes(self) -> list[str]:
        return [c for c in self.classes if self.counts[c] > 0]

    def to_dict(self) -> dict:
        return {
            "root": str(self.root), "fingerprint": self.fingerprint,
            "classes": self.classes, "counts": self.counts,
            "n_files": self.n_files, "n_usable": self.n_usable,
            "problems": [{"file": p.relpath, "kind": p.kind, "message": p.message}
                         for p in self.problems],
            "duplicates": self.duplicates,
            "cross_class_duplicates": self.cross_class_duplicates,
            "empty_classes": self.empty_classes,
            "imbalance": round(self.imbalance, 3), "small_classes": self.small_classes,
            "warnings": self.warnings,
            **({"sample": self.sample} if self.sample else {}),
        }


def check_dataset(dataset: Dataset, cache: DecodeCache, *, min_size: int = MIN_SIZE) -> DataReport:
    """Combine the scan and the decode results into one report (never raises for bad files)."""
    problems = list(dataset.problems)
    ok = dict(zip(cache.relpaths, cache.ok.tolist()))
    for rel, msg in sorted(cache.errors.items()):
        kind = "too_large" if "decompression" in msg else (
            "too_small" if "smaller than" in msg else "corrupt")
        problems.append(Problem(rel, kind, msg))
    counts = {c: 0 for c in dataset.classes}
    by_hash: dict[str, list[str]] = defaultdict(list)
    for it in dataset.items:
        if not ok.get(it.relpath, False):
            continue
        counts[dataset.classes[it.label]] += 1
        by_hash[it.sha256].append(it.relpath)
        w_h = cache.sizes.get(it.relpath)
        if w_h and min(w_h) < min_size:
            problems.append(Problem(it.relpath, "small", f"image is {w_h[0]}x{w_h[1]}, "
                                    f"smaller than {min_size} px (still used)"))
    dups, cross = [], []
    for paths in by_hash.values():
        if len(paths) > 1:
            (cross if len({p.split('/', 1)[0] for p in paths}) > 1 else dups).append(sorted(paths))
    report = DataReport(root=dataset.root, classes=dataset.classes, counts=counts,
                        n_files=len(dataset.items), problems=problems,
                        duplicates=sorted(dups), cross_class_duplicates=sorted(cross),
                        empty_classes=[c for c, n in counts.items() if n == 0],
                        fingerprint=dataset.fingerprint,
                        sample={"checked": dataset.n_read, "listed": dataset.n_files}
                        if dataset.sampled else None)
    nonzero = [n for n in counts.values() if n]
    report.imbalance = (max(nonzero) / min(nonzero)) if nonzero else 1.0
    report.small_classes = small_classes(counts)
    _add_warnings(report)
    return report


def small_classes(counts: dict[str, int]) -> list[str]:
    """Classes with images but :data:`SMALL_CLASS_RATIO` times fewer than the largest, or
    a single image."""
    top = max(counts.values(), default=0)
    return [c for c, n in counts.items() if n and (n == 1 or n * SMALL_CLASS_RATIO <= top)]


def _add_warnings(r: DataReport) -> None:
    if r.sample:
        r.warnings.append(f"only a sample was checked: {r.sample['checked']:,} of "
                          f"{r.sample['listed']:,} files; counts and problems are the sample's")
    bad = [p for p in r.problems if p.kind != "small"]
    if bad:
        r.warnings.append(f"{len(bad)} file(s) skipped: "
                          + ", ".join(p.relpath for p in bad[:10])
                          + (" ..." if len(bad) > 10 else ""))
    if r.empty_classes:
        r.warnings.append(f"empty class(es) with no usable image: {', '.join(r.empty_classes)}")
    if r.cross_class_duplicates:
        r.warnings.append(f"{len(r.cross_class_duplicates)} image(s) appear in more than one "
                          "class: " + "; ".join(" = ".join(g) for g in r.cross_class_duplicates[:5]))
    if r.duplicates:
        r.warnings.append(f"{len(r.duplicates)} group(s) of exact duplicates inside a class")
    if r.imbalance > IMBALANCE_RATIO:
        r.warnings.append(f"class imbalance: largest/smallest class = {r.imbalance:.1f}x "
                          "(edgeclf train weights the classes when they are >= 2x apart)")
    if r.small_classes:
        r.warnings.append(f"small class(es), >= {SMALL_CLASS_RATIO:g}x fewer images than the "
                          f"largest or a single image: "
                          + ", ".join(f"{c} ({r.counts[c]})" for c in r.small_classes))


def require_trainable(report: DataReport) -> None:
    """Raise :class:`DataError` unless at least two classes have usable images."""
    usable = report.usable_classes
    if len(usable) < 2:
        raise DataError(f"{report.root}: need at least 2 classes with usable images, found "
                        f"{len(usable)} ({', '.join(usable) or 'none'}); "
                        f"{len(report.problems)} problem file(s)")
