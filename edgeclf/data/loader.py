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

from .augment import AugmentConfig, augment_batch, image_rngs
from .procring import ProcessRing, memmap_source, read_rows

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
    """Every core on small machines; one left for the training loop from 4 cores on."""
    cores = os.cpu_count() or 1
    return cores if cores <= 2 else max(2, min(16, cores - 1))


PROCESS_MIN_WORKERS = 4    # below this, threads scale fine (measured on 2 cores)


class BatchLoader:
    """Batches of ``images[indices]`` with ``labels``.

    ``drop_remainder`` (training) keeps every batch the same shape; ``pad`` (evaluation)
    pads the last batch to ``batch_size`` by repeating its last row and reports the real
    count in :attr:`Batch.n` — fixed shapes mean one compile per phase on JAX/XLA.
    ``shard=(i, n)``: this process reads only the i-th of n equal slices of each batch (the
    batches themselves, their order and count, are those of one process), augmented with
    its own random stream.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray | list[int],
                 labels: np.ndarray | list[int], *, batch_size: int, shuffle: bool = False,
                 augment: AugmentConfig | None = None, drop_remainder: bool = False,
                 pad: bool = False, workers: int | None = None, prefetch: int | None = None,
                 seed: int = 0, max_batches: int | None = None,
                 processes: bool | None = None, shard: tuple[int, int] = (0, 1)) -> None:
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
        self.shard_index, self.shard_count = (int(v) for v in shard)
        if not 0 <= self.shard_index < self.shard_count:
            raise ConfigError(f"loader: shard {shard} is not (index, count) with index < count")
        if self.shard_count > 1 and self.batch_size % self.shard_count:
            raise ConfigError(f"batch size {batch_size} must be a multiple of the "
                              f"{self.shard_count} processes sharing each batch")
        self.stats = LoaderStats()
        # augmenting loaders over a memmapped cache use worker processes (see procring)
        # when there are enough workers for the GIL to matter, or when asked to
        self._source = memmap_source(images) if self.augment is not None and not pad else None
        want = processes if processes is not None else self.workers >= PROCESS_MIN_WORKERS
        self.processes = bool(want and self._source is not None and self.workers > 1)
        self._slots = max(2, int(prefetch or self.workers + 2))
        self._ring: ProcessRing | None = None

    @property
    def ahead(self) -> int:
        """How many batches the loader prepares ahead of the consumer at most."""
        return self._slots if self.processes else self.prefetch

    def close(self) -> None:
        """Stop the worker processes (if any) and remove their ring file."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None

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
        raw = read_rows(self.images, self.indices[rows])
        y = self.labels[rows]
        n = len(rows)
        if self.augment is not None:
            key, first = self._rng_key(epoch, b, n)
            x = augment_batch(raw, self.augment, image_rngs(key, first, n))
        else:
            x = raw.astype(np.float32)
        if self.pad and n < self.batch_size:
            extra = self.batch_size - n
            x = np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])
            y = np.concatenate([y, np.repeat(y[-1:], extra)])
        return Batch(x=x, y=y, n=n)

    def _rng_key(self, epoch: int, b: int, n: int) -> tuple[list[int], int]:
        """Batch ``b``'s key and the place in it of this shard's first image (``n`` images
        per shard): every image has its own stream (:func:`~edgeclf.data.augment.image_rngs`),
        so the slices of several processes are augmented exactly as one process augments
        the whole batch."""
        return [self.seed, epoch, b, 7], self.shard_index * n

    def _slices(self, epoch: int) -> list[np.ndarray]:
        order = self._order(epoch)
        bs = self.batch_size
        slices = [order[i * bs:(i + 1) * bs] for i in range(len(self))]
        if self.shard_count == 1:
            return slices
        i, n = self.shard_index, self.shard_count
        return [rows[i * (len(rows) // n):(i + 1) * (len(rows) // n)] for rows in slices]

    def rows_of_epoch(self, epoch: int) -> np.ndarray:
        """The cache rows this loader (this shard) reads in ``epoch``, in order."""
        slices = self._slices(epoch)
        return self.indices[np.concatenate(slices)] if slices else self.indices[:0]

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """Yield the batches of one epoch, prepared in the background."""
        slices = self._slices(epoch)
        if self.workers <= 1 and self.prefetch <= 1:
            for b, rows in enumerate(slices):
                yield self._timed(lambda: self._make(rows, epoch, b))
            return
        if self.processes:
            yield from self._ring_epoch(slices, epoch)
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

    def _ring_epoch(self, slices: list[np.ndarray], epoch: int) -> Iterator[Batch]:
        """Batches augmented by worker processes into ring slots; a slot is reused once the
        consumer asks for the next batch."""
        if self._ring is None:
            self._ring = ProcessRing(self._source, (self.batch_size, *self.images.shape[1:]),
                                     workers=self.workers, slots=self._slots)
        ring = self._ring
        free: queue.Queue[int] = queue.Queue()
        for slot in range(ring.slots):
            free.put(slot)
        pending: queue.Queue = queue.Queue()
        stop = threading.Event()

        def feed() -> None:
            for b, rows in enumerate(slices):
                slot = None
                while slot is None and not stop.is_set():
                    try:
                        slot = free.get(timeout=0.1)
                    except queue.Empty:
                        continue
                if slot is None:
                    return
                fut = ring.submit(slot, self.indices[rows], self.augment,
                                  self._rng_key(epoch, b, len(rows)))
                pending.put((fut, slot, rows))
            pending.put(None)

        feeder = threading.Thread(target=feed, name="edgeclf-ring-feed", daemon=True)
        feeder.start()
        held = None
        try:
            while True:
                if held is not None:           # the consumer is done with the last batch
                    free.put(held)
                    held = None
                t0 = time.perf_counter()
                item = pending.get()
                if item is None:
                    break
                fut, held, rows = item
                n = fut.result()
                batch = Batch(x=ring.buffers[held, :n], y=self.labels[rows], n=n)
                self._count(batch, time.perf_counter() - t0)
                yield batch
        finally:
            stop.set()
            feeder.join(timeout=5)
            while not pending.empty():        # no worker may write into a slot later
                item = pending.get_nowait()
                if item is not None and not item[0].cancel():
                    try:
                        item[0].result()
                    except Exception:  # noqa: BLE001 - the epoch is being abandoned
                        pass
