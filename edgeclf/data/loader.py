"""Numpy batches over the decode cache, augmented in CPU workers and prefetched.

Never ``tf.data``: the same loader feeds Keras on TensorFlow and on JAX (where TensorFlow
is not installed). A background thread keeps ``prefetch`` batches in flight on a pool of
``workers`` threads (gathering rows from the memory-mapped cache, augmenting with Pillow,
converting to float32 — all of which release the GIL), so the accelerator is fed while
the previous step runs. Every batch of an epoch is deterministic in (seed, epoch).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edgeclf.errors import ConfigError

from .augment import AugmentConfig, augment_batch

log = logging.getLogger(__name__)


@dataclass
class Batch:
    x: np.ndarray          # float32 (B, H, W, 3), values 0..255
    y: np.ndarray          # int32 (B,)
    n: int                 # rows that are real (the rest pads a fixed-size last batch)


@dataclass
class LoaderStats:
    batches: int = 0
    images: int = 0
    wait_seconds: float = 0.0      # time the consumer waited for a batch

    def reset(self) -> None:
        self.batches = self.images = 0
        self.wait_seconds = 0.0


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


class BatchLoader:
    """Batches of ``images[indices]`` with ``labels``.

    ``drop_remainder`` (training) keeps every batch the same shape; ``pad`` (evaluation)
    pads the last batch to ``batch_size`` by repeating its last row and reports the real
    count in :attr:`Batch.n` — fixed shapes mean one compile per phase on JAX/XLA.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray | list[int],
                 labels: np.ndarray | list[int], *, batch_size: int, shuffle: bool = False,
                 augment: AugmentConfig | None = None, drop_remainder: bool = False,
                 pad: bool = False, workers: int | None = None, prefetch: int | None = None,
                 seed: int = 0, max_batches: int | None = None) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int32)
        if len(self.indices) != len(self.labels):
            raise ConfigError("loader: indices and labels differ in length")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_remainder, self.pad = shuffle, drop_remainder, pad
        self.augment = augment if (augment is not None and augment.enabled) else None
        self.workers = int(workers or default_workers())
        self.prefetch = int(prefetch or max(2, 2 * self.workers))
        self.seed = int(seed)
        self.max_batches = max_batches
        self.stats = LoaderStats()

    def __len__(self) -> int:
        n = len(self.indices)
        full = n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)
        if self.drop_remainder and full == 0 and n:
            full = 1                 # fewer rows than a batch: one (smaller) batch
        return min(full, self.max_batches) if self.max_batches else full

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.indices))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))

    def _make(self, rows: np.ndarray, epoch: int, b: int) -> Batch:
        idx = self.indices[rows]
        sort = np.argsort(idx, kind="stable")          # sequential reads from the memmap
        raw = np.empty((len(idx), *self.images.shape[1:]), np.uint8)
        raw[sort] = self.images[idx[sort]]
        y = self.labels[rows]
        n = len(rows)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, b, 7])
            x = augment_batch(raw, self.augment, rng)
        else:
            x = raw.astype(np.float32)
        if self.pad and n < self.batch_size:
            extra = self.batch_size - n
            x = np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])
            y = np.concatenate([y, np.repeat(y[-1:], extra)])
        return Batch(x=x, y=y, n=n)

    def _slices(self, epoch: int) -> list[np.ndarray]:
        order = self._order(epoch)
        bs = self.batch_size
        return [order[i * bs:(i + 1) * bs] for i in range(len(self))]

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """Yield the batches of one epoch, prepared in the background."""
        slices = self._slices(epoch)
        if self.workers <= 1 and self.prefetch <= 1:
            for b, rows in enumerate(slices):
                yield self._timed(lambda: self._make(rows, epoch, b))
            return
        yield from self._background(slices, epoch)

    def _timed(self, fn) -> Batch:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        batch = fn()
        self._count(batch, time.perf_counter() - t0)
        return batch

    def _count(self, batch: Batch, waited: float) -> None:
        self.stats.wait_seconds += waited
        self.stats.batches += 1
        self.stats.images += batch.n

    def _background(self, slices: list[np.ndarray], epoch: int) -> Iterator[Batch]:
        pending: queue.Queue[Future | None] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="edgeclf-load")

        def feed() -> None:
            for b, rows in enumerate(slices):
                if stop.is_set():
                    break
                fut = pool.submit(self._make, rows, epoch, b)
                while not stop.is_set():
                    try:
                        pending.put(fut, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            pending.put(None) if not stop.is_set() else None

        feeder = threading.Thread(target=feed, name="edgeclf-prefetch", daemon=True)
        feeder.start()
        try:
            while True:
                t0 = time.perf_counter()
                fut = pending.get()
                if fut is None:
                    break
                batch = fut.result()
                self._count(batch, time.perf_counter() - t0)
                yield batch
        finally:
            stop.set()
            while not pending.empty():
                item = pending.get_nowait()
                if item is not None:
                    item.cancel()
            feeder.join(timeout=5)
            pool.shutdown(wait=True, cancel_futures=True)
