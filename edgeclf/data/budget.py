"""How big the decode cache of a dataset will be, where it goes, and whether it may be
written: ``--cache-budget SIZE`` / ``$EDGECLF_CACHE_BUDGET`` cap it; above the cap (or on
a read-only or too-full disk) the dataset streams (decoded by the loader every epoch).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeclf.errors import ConfigError
from edgeclf.runtime.contract import Contract

from .scan import Dataset

BUDGET_ENV = "EDGECLF_CACHE_BUDGET"
#: Space left free on the cache's disk after the cache is written.
FREE_MARGIN = 256 << 20
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int | None) -> int | None:
    """``"200M"``, ``"1.5G"``, ``"500KiB"``, ``"0"`` -> bytes (K = 1024); ``None``,
    ``""``, ``"none"`` or ``"unlimited"`` -> None (no cap)."""
    if text is None or isinstance(text, int):
        return text
    if text.strip().lower() in ("", "none", "unlimited", "inf"):
        return None
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"cannot read the size {text!r}: give bytes or a number with K, M, "
                          "G or T (powers of 1024), e.g. 500M or 2G; 0 streams, 'none' is "
                          "no cap")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: int | None) -> str:
    if n is None:
        return "no cap"
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def resolve_budget(flag: str | int | None) -> int | None:
    """The ``--cache-budget`` flag, else ``$EDGECLF_CACHE_BUDGET``, else None (no cap)."""
    return parse_size(flag if flag is not None else os.environ.get(BUDGET_ENV))


def stored_bytes(width: int, height: int, contract: Contract) -> int:
    """Bytes one image takes in the cache: its own pixels when fewer than the contract's
    (resized when read), else the contract size's."""
    full = contract.height * contract.width
    pixels = width * height if width and height else full
    return 3 * min(pixels, full)


@dataclass(frozen=True)
class CachePlan:
    """What ``load_or_build`` will do, decided before anything is written."""

    path: Path                 # the cache folder (existing or to be written)
    bytes: int                 # pixel bytes the cache takes (or would take)
    images: int
    budget: int | None
    free: int | None           # free bytes on the cache's disk (None: unknown)
    mode: str                  # reuse | build | stream
    reason: str = ""           # why it streams

    @property
    def streaming(self) -> bool:
        return self.mode == "stream"

    def describe(self) -> str:
        where = f"{format_size(self.bytes)} for {self.images:,} images in {self.path}"
        free = "" if self.free is None else f", {format_size(self.free)} free"
        if self.mode == "reuse":
            return f"decode cache: reusing {where}"
        if self.mode == "build":
            return f"decode cache: writing {where} (budget {format_size(self.budget)}{free})"
        return f"decode cache: not written ({self.reason}); images stream (decoded every epoch)"


def check_budget(budget: int | None, contract: Contract) -> None:
    """A positive budget smaller than one image at the contract size is a mistake."""
    one = stored_bytes(0, 0, contract)
    if budget is not None and 0 < budget < one:
        raise ConfigError(f"cache budget {format_size(budget)} is smaller than one cached "
                          f"image ({format_size(one)} at {contract.height}x{contract.width}); "
                          "give 0 to stream without a cache, or a size such as 2G")


def writable(folder: Path) -> str:
    """'' when a file can be created in ``folder`` (created if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"cache folder {folder} is not writable: {e.strerror or e}"
    return ""


def plan_cache(dataset: Dataset, contract: Contract, final: Path, *, budget: int | None,
               existing_bytes: int | None) -> CachePlan:
    """Reuse, build or stream. ``existing_bytes``: the pixel bytes of a finished cache at
    ``final`` (None when there is none)."""
    check_budget(budget, contract)
    need = sum(stored_bytes(it.width, it.height, contract) for it in dataset.items)
    n = len(dataset.items)
    if existing_bytes is not None and (budget is None or existing_bytes <= budget):
        return CachePlan(final, existing_bytes, n, budget, None, "reuse")
    free = None
    try:
        free = shutil.disk_usage(_existing_parent(final)).free
    except OSError:
        pass

    def stream(reason: str) -> CachePlan:
        return CachePlan(final, need, n, budget, free, "stream", reason)

    if budget is not None and need > budget:
        return stream(f"it needs {format_size(need)}, over the cache budget of "
                      f"{format_size(budget)}")
    why = writable(final.parent)
    if why:
        return stream(why)
    if free is not None and need + FREE_MARGIN > free:
        return stream(f"it needs {format_size(need)} and {final.parent} has only "
                      f"{format_size(free)} free")
    return CachePlan(final, need, n, budget, free, "build")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
