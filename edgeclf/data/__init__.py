"""Dataset layer: scan a folder per class, validate, split, and cache decoded images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgeclf.runtime.contract import Contract

from .budget import CachePlan, parse_size, resolve_budget
from .cache import CacheError, DecodeCache, cache_root, load_or_build
from .check import DataReport, check_dataset, require_trainable
from .scan import Dataset, Item, Problem, scan_dataset
from .split import Split, make_split, parse_fractions

__all__ = ["Dataset", "Item", "Problem", "scan_dataset", "DecodeCache", "load_or_build",
           "CacheError", "CachePlan", "parse_size", "resolve_budget",
           "cache_root", "DataReport", "check_dataset", "require_trainable", "Split",
           "make_split", "parse_fractions", "PreparedData", "prepare_data"]


@dataclass
class PreparedData:
    dataset: Dataset
    cache: DecodeCache
    report: DataReport

    def usable(self) -> list[str]:
        ok = dict(zip(self.cache.relpaths, self.cache.ok.tolist()))
        return [it.relpath for it in self.dataset.items if ok.get(it.relpath)]


def prepare_data(root: str | Path, contract: Contract, *, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 require: bool = True, budget: int | None = None, sample: int | None = None,
                 scan_progress: Callable[[int, int], None] | None = None,
                 on_plan: Callable[[CachePlan], None] | None = None) -> PreparedData:
    """Scan, decode (or reuse the cache) and validate a dataset folder.

    ``budget``: most bytes the decode cache may take (None: no cap; above it the images
    are checked and not cached). ``sample``: check only that many files (nothing cached).
    """
    dataset = scan_dataset(root, workers=workers, sample=sample, progress=scan_progress)
    cache = load_or_build(dataset, contract, workers=workers, progress=progress,
                          budget=0 if dataset.sampled else budget, on_plan=on_plan)
    report = check_dataset(dataset, cache)
    if require:
        require_trainable(report)
    return PreparedData(dataset, cache, report)
