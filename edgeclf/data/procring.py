"""Augmentation in worker *processes* writing into a shared, file-backed ring of batches.

Threads stop scaling once the Python work around Pillow's resampling (building the affine
matrix, wrapping arrays, the GIL hand-offs of a dozen threads) competes with the training
loop's own Python for the GIL: on the 16-core GPU machine, 15 loader threads gave about
1,600 augmented 224 px images/s alone and 847 next to MobileNetV2 fine-tuning; 15 processes
gave 4,200-4,400 alone and 0.87-0.91 of the synthetic-tensor rate
(benchmarks/results/train-gpu-2026-11-22.md). Processes have no shared GIL.

Each worker opens the images (the decode cache's read-only memmap, or a packed or streamed
view from :mod:`edgeclf.data.store`: a streamed dataset is decoded right here, in the
workers) and the ring (a float32 memmap of
``slots`` batches in /dev/shm when it has room, else in the temp folder), and
writes one augmented batch into the slot it was given. The loader hands that slot to the
consumer as a view and reuses it when the consumer asks for the next batch, so a batch's
``x`` is valid until then (the training loop consumes each batch before the next).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import tempfile
import weakref
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .augment import AugmentConfig, augment_batch, image_rngs
from .store import open_source, source_spec

RING_FILE = "ring.f32"

_images = None                           # per worker process: memmap or store view
_ring: np.ndarray | None = None


def _init_worker(images: tuple | dict, ring: tuple) -> None:
    global _images, _ring
    _images = open_source(images)
    rpath, rshape = ring
    _ring = np.memmap(rpath, dtype=np.float32, mode="r+", shape=rshape)


def read_rows(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``images[idx]`` as a uint8 array, read in ascending row order (sequential memmap
    reads) and returned in ``idx``'s order."""
    sort = np.argsort(idx, kind="stable")
    raw = np.empty((len(idx), *images.shape[1:]), np.uint8)
    raw[sort] = images[idx[sort]]
    return raw


def _fill(slot: int, idx: np.ndarray, cfg: dict, seed: tuple[list[int], int]) -> int:
    """Worker: augment rows ``idx`` of the cache into ring slot ``slot`` (as the thread
    loader would: same row order, same per-image random streams, ``seed`` = (the batch's
    key, the first image's place in the batch))."""
    assert _images is not None and _ring is not None
    key, first = seed
    augment_batch(read_rows(_images, idx), AugmentConfig(**cfg),
                  image_rngs(key, first, len(idx)), out=_ring[slot, :len(idx)])
    return len(idx)


def memmap_source(images: np.ndarray) -> tuple | dict | None:
    """What a worker process needs to reopen ``images`` (a memmapped, packed or streamed
    dataset; see :mod:`edgeclf.data.store`), else None."""
    return source_spec(images)


def ring_folder(nbytes: int) -> Path:
    """A fresh folder for the ring: shared memory (no dirty pages written back to disk)
    when /dev/shm has twice the room, else the temp folder."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and shutil.disk_usage(shm).free >= 2 * nbytes:
            return Path(tempfile.mkdtemp(prefix="edgeclf-ring-", dir=str(shm)))
    except OSError:                       # not writable here: the temp folder instead
        pass
    return Path(tempfile.mkdtemp(prefix="edgeclf-ring-"))


class ProcessRing:
    """A pool of ``workers`` processes and a ring of ``slots`` batch buffers."""

    def __init__(self, source: tuple | dict, batch_shape: tuple, *, workers: int, slots: int) -> None:
        self.slots = int(slots)
        shape = (self.slots, *batch_shape)
        self.folder = ring_folder(int(np.prod(shape)) * 4)
        path = self.folder / RING_FILE
        self.buffers = np.memmap(path, dtype=np.float32, mode="w+", shape=shape)
        # forkserver: workers never inherit TensorFlow/JAX state (threads) from the parent
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods()
                             else "spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                        initializer=_init_worker,
                                        initargs=(source, (str(path), shape)))
        self._finalizer = weakref.finalize(self, _close, self.pool, self.folder)

    def submit(self, slot: int, idx: np.ndarray, cfg: AugmentConfig,  # noqa: ANN201
               seed: tuple[list[int], int]):
        return self.pool.submit(_fill, slot, idx, cfg.to_dict(), seed)

    def close(self) -> None:
        self._finalizer()


def _close(pool: ProcessPoolExecutor, folder: Path) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    shutil.rmtree(folder, ignore_errors=True)
