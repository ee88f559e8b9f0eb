"""Dataset layer: scan a folder per class, validate, split, and cache decoded images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgeclf.runtime.contract import Contract

from .cache import DecodeCache, cache_root, load_or_build
from .check import DataReport, check_dataset, require_trainable
from .scan import Dataset, Item, Problem, scan_dataset
from .split import Split, make_split, parse_fractions

__all__ = ["Dataset", "Item", "Problem", "scan_dataset", "DecodeCache", "load_or_build",
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
                 require: bool = True) -> PreparedData:
    """Scan, decode (or reuse the cache) and validate a dataset folder."""
    dataset = scan_dataset(root)
    cache = load_or_build(dataset, contract, workers=workers, progress=progress)
    report = check_dataset(dataset, cache)
    if require:
        require_trainable(report)
    return PreparedData(dataset, cache, report)
