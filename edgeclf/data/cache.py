"""Decode cache: every image decoded once into a memory-mapped uint8 file.

Keyed by the dataset's content fingerprint and the preprocessing contract, so a second
``data check`` or ``train`` on the same folder decodes nothing. An image is stored at the
contract size, or at its own size when it has fewer pixels (a 32x32 JPEG takes 3 KB, not
the 147 KB of a 224x224 row) and resized when read, with the contract's resize
(:mod:`edgeclf.data.store`): what a reader gets equals ``preprocess`` bit for bit.

Before writing, :func:`edgeclf.data.budget.plan_cache` decides: reuse, build, or stream
(above ``--cache-budget``, on a read-only or too-full disk): the images are then checked
once (decoded, nothing stored but the index) and decoded again by the loader every epoch.
Built in worker processes that import only numpy + Pillow; the pixel file is allocated
up front (a full disk fails before any decoding) and everything is written into a
temporary folder renamed at the end, so a build killed half-way or stopped by a full disk
leaves no partial cache.
"""

from __future__ import annotations

import errno
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

from edgeclf.errors import DataError
from edgeclf.fsutil import pid_alive
from edgeclf.runtime.contract import Contract

from .budget import CachePlan, format_size, plan_cache, stored_bytes
from .scan import Dataset
from .store import PIXELS, ROWS, PackedImages, StreamImages

log = logging.getLogger(__name__)

INDEX = "index.json"
ARRAY = PIXELS
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class CacheError(DataError):
    """The decode cache could not be written (full disk, I/O error); nothing was kept."""


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
    images: np.ndarray                     # (N, H, W, 3) uint8: memmap or store view
    ok: np.ndarray                         # (N,) bool
    errors: dict[str, str]                 # relpath -> message, for images that failed
    sizes: dict[str, tuple[int, int]]      # relpath -> original (width, height)
    built: bool = False                    # True when this call decoded images
    seconds: float = 0.0
    plan: CachePlan | None = None
    decode_rate: float = 0.0               # images/s per worker, measured when decoding

    @property
    def streaming(self) -> bool:
        """No pixels cached: every read decodes the file."""
        return isinstance(self.images, StreamImages)

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
                  progress: Callable[[int, int], None] | None = None,
                  budget: int | None = None,
                  on_plan: Callable[[CachePlan], None] | None = None) -> DecodeCache:
    """Open the cache for (dataset, contract), building it first if needed.

    ``budget``: most pixel bytes the cache may take (None: no cap, 0: never cache); above
    it the images stream. ``on_plan`` sees the decision before anything is written.
    Raises :class:`CacheError` when the disk fills while writing (nothing is kept).
    """
    final = cache_dir_for(dataset, contract, root)
    index = _read_index(final)
    has_pixels = index is not None and index.get("pixels", True)
    plan = plan_cache(dataset, contract, final, budget=budget,
                      existing_bytes=_pixel_bytes(index, contract) if has_pixels else None)
    if on_plan:
        on_plan(plan)
    else:
        log.info("%s", plan.describe())
    if plan.mode == "reuse":
        cache = _open(final, index, contract)
        log.info("decode cache hit: %s (%d images, nothing decoded)", final, len(cache.relpaths))
    elif plan.mode == "stream" and index is not None:
        cache = _from_index(index, StreamImages(dataset.root, index["relpaths"], contract))
    else:
        t0 = time.perf_counter()
        cache = _build(dataset, contract, final, pixels=not plan.streaming, workers=workers,
                       progress=progress)
        cache.built = True
        cache.seconds = time.perf_counter() - t0
        log.info("decode cache %s: %s (%d images in %.1fs)",
                 "checked" if plan.streaming else "built", final, len(cache.relpaths),
                 cache.seconds)
    cache.plan = plan
    return cache


def _read_index(path: Path) -> dict | None:
    if not (path / INDEX).is_file():
        return None
    try:
        index = json.loads((path / INDEX).read_text())
        if index.get("pixels", True) and not (path / ARRAY).is_file():
            raise ValueError(f"{ARRAY} is missing")
        index["path"] = str(path)
        return index
    except (OSError, ValueError) as e:
        log.warning("decode cache %s unreadable (%s); rebuilding", path, e)
        shutil.rmtree(path, ignore_errors=True)
        return None


def _pixel_bytes(index: dict | None, contract: Contract) -> int | None:
    if index is None:
        return None
    return int(index.get("bytes", len(index["relpaths"]) * stored_bytes(0, 0, contract)))


def _from_index(index: dict, images) -> DecodeCache:  # noqa: ANN001 - memmap or store view
    return DecodeCache(path=Path(index["path"]), relpaths=index["relpaths"], images=images,
                       ok=np.array(index["ok"], dtype=bool), errors=index["errors"],
                       sizes={k: tuple(v) for k, v in index["sizes"].items()},
                       decode_rate=float(index.get("decode_rate", 0.0)))


def _open(path: Path, index: dict, contract: Contract) -> DecodeCache:
    """A finished pixel cache: a plain memmap when every row has the contract size."""
    n = len(index["relpaths"])
    h, w = index["size"]
    row = h * w * 3
    rows = np.load(path / ROWS) if (path / ROWS).is_file() else None   # absent: version 1
    uniform = rows is None or bool(
        os.path.getsize(path / ARRAY) >= n * row
        and np.all(rows[:, 0] == np.arange(n, dtype=np.int64) * row)
        and np.all((rows[:, 1] == h) & (rows[:, 2] == w) | (rows[:, 1] == 0)))
    if not n:
        images = np.zeros((0, h, w, 3), np.uint8)
    elif uniform:
        images = np.memmap(path / ARRAY, dtype=np.uint8, mode="r", shape=(n, h, w, 3))
    else:
        images = PackedImages(path, rows, contract)
    return _from_index(index, images)


def _decode_chunk(array_path: str | None, root: str, contract_json: str,
                  rows: list[tuple[str, int, int]]) -> list[tuple]:
    """Worker: decode ``rows`` (relpath, byte offset, bytes allotted); write the stored
    pixels at their offsets when ``array_path`` is given. Returns (relpath, error or
    None, stored height, stored width) per row."""
    from PIL import Image  # noqa: F401 - the worker's only imports: numpy + Pillow

    from edgeclf.runtime.contract import Contract as _C
    from edgeclf.runtime.errors import ImageError
    from edgeclf.runtime.preprocess import decode_rgb, resize_to_contract

    contract = _C.from_json(contract_json)
    full = contract.height * contract.width
    fd = os.open(array_path, os.O_WRONLY) if array_path else None
    results = []
    try:
        for rel, offset, allotted in rows:
            path = os.path.join(root, rel)
            try:
                rgb = decode_rgb(path, contract)
            except ImageError as e:
                results.append((rel, str(e).replace(path + ": ", ""), 0, 0))
                continue
            with rgb:
                w, h = rgb.size
                if fd is None:
                    results.append((rel, None, min(h, contract.height), min(w, contract.width)))
                    continue
                small = w * h <= full
                arr = np.asarray(rgb if small else resize_to_contract(rgb, contract), np.uint8)
            if arr.nbytes > allotted:
                results.append((rel, f"decoded to {w}x{h}, more pixels than its header "
                                f"announced", 0, 0))
                continue
            if os.pwrite(fd, np.ascontiguousarray(arr).data, offset) != arr.nbytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))   # a short write
            results.append((rel, None, arr.shape[0], arr.shape[1]))
    finally:
        if fd is not None:
            os.close(fd)
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


def _allocate(path: Path, nbytes: int) -> None:
    """Create the pixel file with every block reserved: a disk too full for the cache
    fails here, before decoding, and never half-way through a memory-mapped write."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        if nbytes:
            try:
                os.posix_fallocate(fd, 0, nbytes)
            except OSError as e:
                if e.errno in _FULL_DISK:
                    raise
                os.ftruncate(fd, nbytes)       # no fallocate on this file system
    finally:
        os.close(fd)


def _build(dataset: Dataset, contract: Contract, final: Path, *, pixels: bool,
           workers: int | None, progress: Callable[[int, int], None] | None) -> DecodeCache:
    """Decode every image; with ``pixels`` store them (else only check them and keep the
    index, where the folder is writable)."""
    relpaths = [it.relpath for it in dataset.items]
    allotted = [stored_bytes(it.width, it.height, contract) for it in dataset.items]
    offsets = np.concatenate([[0], np.cumsum(allotted, dtype=np.int64)])
    h, w = contract.size
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if sweep_dead_partials(final.parent):
            log.info("removed decode-cache folders left by killed builds in %s", final.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        if pixels:
            raise CacheError(f"cannot create the decode cache in {final.parent}: {e}") from None
        tmp = None                             # checking only: keep the index in memory
    index: dict | None = None
    try:
        if pixels:
            _allocate(tmp / ARRAY, int(offsets[-1]))
        t0 = time.perf_counter()
        rows = [(rel, int(offsets[i]), allotted[i]) for i, rel in enumerate(relpaths)]
        results, n_workers = _run_workers(str(tmp / ARRAY) if pixels else None,
                                          str(dataset.root), contract, rows, workers, progress)
        seconds = time.perf_counter() - t0
        index = {"version": 2, "root": str(dataset.root), "fingerprint": dataset.fingerprint,
                 "contract": contract.to_dict(), "size": [h, w], "relpaths": relpaths,
                 "pixels": pixels, "bytes": int(offsets[-1]) if pixels else 0,
                 "decode_rate": len(relpaths) / seconds / n_workers if seconds else 0.0,
                 "ok": [results[p][0] is None for p in relpaths],
                 "errors": {p: results[p][0] for p in relpaths if results[p][0] is not None},
                 "sizes": {it.relpath: [it.width, it.height] for it in dataset.items
                           if results[it.relpath][0] is None}}
        if tmp is not None:
            table = np.array([[offsets[i], *results[p][1:]] if results[p][0] is None
                              else [offsets[i], 0, 0] for i, p in enumerate(relpaths)],
                             np.int64).reshape(-1, 3)
            np.save(tmp / ROWS, table)
            (tmp / INDEX).write_text(json.dumps(index))
            _publish(tmp, final)
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in _FULL_DISK:
            raise CacheError(_full_message(final, int(offsets[-1]), e)) from None
        if not pixels and index is not None:   # the check itself worked: the index is in memory
            log.warning("decode cache index not saved in %s: %s", final.parent, e)
            return _stream_cache(index, final, dataset, contract)
        raise CacheError(f"writing the decode cache {final} failed: {e}; nothing was kept") \
            from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not pixels:
        return _stream_cache(index, final, dataset, contract)
    opened = _read_index(final)
    if opened is None:
        raise CacheError(f"the decode cache {final} vanished right after it was written")
    return _open(final, opened, contract)


def _stream_cache(index: dict, final: Path, dataset: Dataset, contract: Contract) -> DecodeCache:
    index["path"] = str(final)
    return _from_index(index, StreamImages(dataset.root, index["relpaths"], contract))


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished build into place (a checked-only index gives way to pixels;
    a finished pixel cache from another process wins)."""
    if final.exists():
        other = _read_index(final)
        if other is not None and other.get("pixels", True):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _full_message(final: Path, need: int, e: OSError) -> str:
    try:
        free = format_size(shutil.disk_usage(final.parent).free)
    except OSError:
        free = "unknown"
    return (f"the disk filled while writing the decode cache {final} ({os.strerror(e.errno)}; "
            f"it needs {format_size(need)}, {free} free): nothing was kept. Free some space, "
            "set EDGECLF_CACHE_DIR to a bigger disk, or pass --cache-budget 0 to stream the "
            "images instead of caching them")


def _run_workers(array_path: str | None, root: str, contract: Contract,
                 rows: list[tuple[str, int, int]], workers: int | None,
                 progress: Callable[[int, int], None] | None) -> tuple[dict[str, tuple], int]:
    n = len(rows)
    workers = max(1, min(workers or os.cpu_count() or 1, 32))
    chunk = max(8, min(128, n // (workers * 4) + 1))
    starts = list(range(0, n, chunk))
    results: dict[str, tuple] = {}
    done = 0
    if workers == 1 or n <= chunk:
        for s in starts:
            for rel, err, h, w in _decode_chunk(array_path, root, contract.to_json(),
                                                rows[s:s + chunk]):
                results[rel] = (err, h, w)
            done = min(n, s + chunk)
            if progress:
                progress(done, n)
        return results, 1
    # forkserver: workers never inherit TensorFlow/JAX state from the parent
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_decode_chunk, array_path, root, contract.to_json(),
                               rows[s:s + chunk]) for s in starts]
        for fut in as_completed(futures):
            part = fut.result()
            for rel, err, h, w in part:
                results[rel] = (err, h, w)
            done += len(part)
            if progress:
                progress(done, n)
    return results, workers
