"""Decode cache: every image decoded and resized once into a memory-mapped uint8 array.

Keyed by the dataset's content fingerprint and the preprocessing contract, so a second
``data check`` or ``train`` on the same folder decodes nothing. Built in worker processes
that import only numpy + Pillow; written into a temporary folder and renamed at the end, so
a build killed half-way is never mistaken for a finished cache.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgeclf.fsutil import pid_alive
from edgeclf.runtime.contract import Contract

from .scan import Dataset

log = logging.getLogger(__name__)

INDEX = "index.json"
ARRAY = "images.u8"


def cache_root() -> Path:
    """``$EDGECLF_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeclf``, else ``~/.cache/edgeclf``."""
    env = os.environ.get("EDGECLF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeclf"


@dataclass
class DecodeCache:
    """A finished cache: ``images[i]`` is the preprocessed ``relpaths[i]`` (when ``ok``)."""

    path: Path
    relpaths: list[str]
    images: np.ndarray                     # memmap (N, H, W, 3) uint8, read-only
    ok: np.ndarray                         # (N,) bool
    errors: dict[str, str]                 # relpath -> message, for images that failed
    sizes: dict[str, tuple[int, int]]      # relpath -> original (width, height)
    built: bool = False                    # True when this call decoded images
    seconds: float = 0.0

    def index_of(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.relpaths)}

    def take(self, relpaths: list[str]) -> np.ndarray:
        """Rows for the given paths (which must be in the cache and ok), as an array."""
        idx = self.index_of()
        return self.images[[idx[p] for p in relpaths]]


def cache_dir_for(dataset: Dataset, contract: Contract, root: Path | None = None) -> Path:
    return (root or cache_root()) / "decode" / f"{dataset.fingerprint[:20]}-{contract.key()}"


def load_or_build(dataset: Dataset, contract: Contract, *, workers: int | None = None,
                  root: Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> DecodeCache:
    """Open the cache for (dataset, contract), building it first if needed."""
    final = cache_dir_for(dataset, contract, root)
    if (final / INDEX).is_file():
        try:
            cache = _open(final)
            log.info("decode cache hit: %s (%d images, nothing decoded)", final, len(cache.relpaths))
            return cache
        except (OSError, ValueError, KeyError) as e:
            log.warning("decode cache %s unreadable (%s); rebuilding", final, e)
            shutil.rmtree(final, ignore_errors=True)
    t0 = time.perf_counter()
    cache = _build(dataset, contract, final, workers=workers, progress=progress)
    cache.built = True
    cache.seconds = time.perf_counter() - t0
    log.info("decode cache built: %s (%d images in %.1fs)", final, len(cache.relpaths),
             cache.seconds)
    return cache


def _open(path: Path) -> DecodeCache:
    index = json.loads((path / INDEX).read_text())
    n = len(index["relpaths"])
    h, w = index["size"]
    images = np.memmap(path / ARRAY, dtype=np.uint8, mode="r", shape=(n, h, w, 3)) \
        if n else np.zeros((0, h, w, 3), np.uint8)
    return DecodeCache(path=path, relpaths=index["relpaths"],
                       images=images, ok=np.array(index["ok"], dtype=bool),
                       errors=index["errors"],
                       sizes={k: tuple(v) for k, v in index["sizes"].items()})


def _decode_chunk(array_path: str, shape: tuple, root: str, contract_json: str,
                  start: int, relpaths: list[str]) -> list[tuple[str, str | None, tuple]]:
    """Worker: decode ``relpaths`` into rows ``start...`` of the memmap."""
    from edgeclf.runtime.contract import Contract as _C
    from edgeclf.runtime.errors import ImageError
    from edgeclf.runtime.preprocess import open_image, preprocess

    contract = _C.from_json(contract_json)
    out = np.memmap(array_path, dtype=np.uint8, mode="r+", shape=shape)
    results = []
    for k, rel in enumerate(relpaths):
        path = os.path.join(root, rel)
        try:
            with open_image(path) as img:
                size = img.size
            out[start + k] = preprocess(path, contract)
            results.append((rel, None, size))
        except ImageError as e:
            results.append((rel, str(e).replace(path + ": ", ""), ()))
    out.flush()
    return results


def sweep_dead_partials(folder: Path) -> int:
    """Remove ``.<key>.partial-<pid>`` build folders whose process is gone (kill -9)."""
    removed = 0
    for tmp in folder.glob(".*.partial-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed



def _build(dataset: Dataset, contract: Contract, final: Path, *, workers: int | None,
           progress: Callable[[int, int], None] | None) -> DecodeCache:
    final.parent.mkdir(parents=True, exist_ok=True)
    if sweep_dead_partials(final.parent):
        log.info("removed decode-cache folders left by killed builds in %s", final.parent)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        relpaths = [it.relpath for it in dataset.items]
        n = len(relpaths)
        h, w = contract.size
        shape = (max(n, 1), h, w, 3)
        np.memmap(tmp / ARRAY, dtype=np.uint8, mode="w+", shape=shape).flush()
        results = _run_workers(str(tmp / ARRAY), shape, str(dataset.root), contract,
                               relpaths, workers, progress)
        ok = [results[p][0] is None for p in relpaths]
        index = {"version": 1, "root": str(dataset.root), "fingerprint": dataset.fingerprint,
                 "contract": contract.to_dict(), "size": [h, w], "relpaths": relpaths,
                 "ok": ok,
                 "errors": {p: results[p][0] for p in relpaths if results[p][0] is not None},
                 "sizes": {p: list(results[p][1]) for p in relpaths if results[p][1]}}
        (tmp / INDEX).write_text(json.dumps(index))
        if final.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _open(final)


def _run_workers(array_path: str, shape: tuple, root: str, contract: Contract,
                 relpaths: list[str], workers: int | None,
                 progress: Callable[[int, int], None] | None) -> dict[str, tuple]:
    n = len(relpaths)
    workers = max(1, min(workers or os.cpu_count() or 1, 32))
    chunk = max(8, min(128, n // (workers * 4) + 1))
    starts = list(range(0, n, chunk))
    results: dict[str, tuple] = {}
    done = 0
    if workers == 1 or n <= chunk:
        for s in starts:
            for rel, err, size in _decode_chunk(array_path, shape, root, contract.to_json(),
                                                s, relpaths[s:s + chunk]):
                results[rel] = (err, size)
            done = min(n, s + chunk)
            if progress:
                progress(done, n)
        return results
    # forkserver: workers never inherit TensorFlow/JAX state from the parent
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_decode_chunk, array_path, shape, root, contract.to_json(),
                               s, relpaths[s:s + chunk]) for s in starts]
        for fut in as_completed(futures):
            part = fut.result()
            for rel, err, size in part:
                results[rel] = (err, size)
            done += len(part)
            if progress:
                progress(done, n)
    return results
