"""Timing for `edgeclf bench`: the timing loop and its summary, the synthetic inputs every
runner is fed, and this process's memory (peak RSS, what a batch may use). No model library
is imported here: a bench subprocess loads those when it opens its model (cold start).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeclf.errors import ConfigError

#: Largest batch size accepted at all; memory is checked separately.
MAX_BATCH = 4096
SOURCE_IMAGE = (480, 640)   # the synthetic JPEGs preprocessing is timed on (h, w)


# --- memory --------------------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_batch_memory(batch: int, height: int, width: int) -> None:
    """Refuse a batch whose input tensors alone would not fit in the available memory."""
    if batch > MAX_BATCH:
        raise ConfigError(f"batch size {batch} is over the limit of {MAX_BATCH}")
    # uint8 pixels + the float32 copy the model is fed + ~8x that for activations
    need = batch * height * width * 3 * (1 + 4 * 9)
    avail = available_memory_bytes()
    if avail is not None and need > avail:
        raise ConfigError(f"batch size {batch} at {height}x{width} needs about "
                          f"{need / 2**30:.1f} GiB, but only {avail / 2**30:.1f} GiB of memory "
                          "is available: use smaller batch sizes")


# --- timing --------------------------------------------------------------------------------

def time_calls(fn: Callable[[], Any], *, warmup: int, runs: int | None,
               seconds: float | None) -> np.ndarray:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times (or for ``seconds``, at
    least 3 calls); returns each call's latency in milliseconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds if seconds is not None else None
    while True:
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if deadline is None:
            if len(times) >= (runs or 1):
                break
        elif time.perf_counter() >= deadline and len(times) >= 3:
            break
    return np.asarray(times)


def summarize(ms: np.ndarray, batch: int) -> dict:
    mean = float(ms.mean())
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(mean, 4), "std_ms": round(float(ms.std()), 4),
            "min_ms": round(float(ms.min()), 4), "runs": int(ms.size),
            "images_per_second": round(batch * 1000.0 / mean, 2) if mean > 0 else None}


def sample_batch(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 batch with image-like structure (gradients + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     (xx + yy) * 255 // max(height + width - 2, 1)], -1)
    noise = rng.integers(-40, 40, (batch, height, width, 3))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


def sample_jpegs(n: int, size: tuple[int, int] = SOURCE_IMAGE) -> list[bytes]:
    """``n`` distinct in-memory JPEGs (camera-like 640x480) for timing preprocessing."""
    import io

    from PIL import Image

    out = []
    for arr in sample_batch(min(n, 8), *size, seed=1):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return [out[i % len(out)] for i in range(n)]
