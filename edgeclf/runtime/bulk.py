"""Bulk prediction over an iterable of any length (a folder of a million images): batches
are decoded in a thread pool (Pillow releases the GIL) while the model runs the batch
before them, and at most ``ahead`` batches are ever decoded ahead of the consumer, so
memory stays flat however many images go through. Predictions come back in input order.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator

from .predictor import Prediction, Predictor
from .preprocess import BatchResult, preprocess_batch


def default_decoders() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def predict_stream(predictor: Predictor, sources: Iterable[Any], *, top_k: int = 5,
                   batch_size: int = 32, decoders: int | None = None,
                   ahead: int | None = None) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per source (unusable images carry their error).

    ``decoders`` threads decode batches; ``ahead`` (default: ``decoders + 1``) bounds the
    batches decoded but not yet run. ``sources`` is consumed lazily: no more than
    ``(ahead + 1) * batch_size`` items are held at any time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    decoders = decoders or default_decoders()
    ahead = max(1, ahead or decoders + 1)
    it = iter(sources)
    chunks = iter(lambda: list(itertools.islice(it, batch_size)), [])
    contract = predictor.contract
    pending: deque[tuple[int, list, Future[BatchResult]]] = deque()
    first = 0
    with ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="edgeclf-decode") as pool:
        try:
            while True:
                while len(pending) < ahead:
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    pending.append((first, chunk, pool.submit(preprocess_batch, chunk,
                                                              contract, threads=1)))
                    first += len(chunk)
                if not pending:
                    return
                start, chunk, fut = pending.popleft()
                yield from predictor.predictions(chunk, fut.result(), top_k, first=start)
        finally:
            for _, _, fut in pending:
                fut.cancel()
