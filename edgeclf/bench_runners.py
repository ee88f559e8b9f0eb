"""The measuring half of `edgeclf bench`: runners, the timing loop, memory, fingerprint.

A *job* (a JSON-able dict built by :func:`edgeclf.bench.build_jobs`) names one artifact,
one runner, one device and one thread count, and the batch sizes to sweep. :func:`run_job`
returns one row per batch size. ``python -m edgeclf.bench_runners JOB.json ROWS.json`` runs
a job in a fresh process (what ``edgeclf bench`` does by default).

Every runner takes the same input, a uint8 NHWC batch of pixels, and returns probabilities;
whatever conversion its caller would have to do is inside the timed call.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any, Callable

import numpy as np

from edgeclf.errors import ConfigError, EdgeclfError
from edgeclf.machine import cpu_info, package_version

#: Largest batch size accepted at all; memory is checked separately.
MAX_BATCH = 4096
#: The figures of a row (None in a failed row).
FIGURES = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "runs",
           "images_per_second", "cold_start_ms", "load_ms", "first_run_ms", "import_ms",
           "preprocess_ms", "preprocess_ms_per_image", "peak_rss_mb", "gpu_memory_mb")
PREPROCESS_REPEATS = 5
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


# --- rows ----------------------------------------------------------------------------------

def base_row(job: dict, batch: int) -> dict:
    return {"artifact": job["artifact"], "format": job["format"],
            "quantization": job["quantization"], "device": job["device"],
            "provider": None, "mode": job_mode(job["runner"]), "runner": job["runner"],
            "batch_size": batch, "threads": job["threads"], "bytes": job.get("bytes"),
            "status": "ok", "error": None, **{k: None for k in FIGURES},
            "speedup": None, "speedup_vs": None, "overhead": None, "overhead_vs": None}


def job_mode(runner: str) -> str:
    return runner if runner in ("iobinding", "cuda-graph") else "numpy"


def failed_rows(job: dict, error: str) -> list[dict]:
    rows = []
    for b in job["batch_sizes"]:
        r = base_row(job, b)
        r.update(status="failed", error=error)
        rows.append(r)
    return rows


# --- the job -------------------------------------------------------------------------------

def _opener(runner: str) -> Callable[[dict], Any]:
    """The function that opens a job's model: a CPU runner of :mod:`edgeclf.bench_models`, or
    a GPU mode of :mod:`edgeclf.bench_gpu_modes` (imported only when a GPU job asks for it)."""
    if runner in ("iobinding", "cuda-graph"):
        from edgeclf import bench_gpu_modes

        return {"iobinding": bench_gpu_modes.open_iobinding,
                "cuda-graph": bench_gpu_modes.open_cuda_graph}[runner]
    from edgeclf.bench_models import RUNNERS

    return RUNNERS[runner]


def run_job(job: dict) -> list[dict]:
    """Load the job's model (cold start), then sweep its batch sizes; one row per size.

    A model that cannot be loaded, or a batch size that fails, gives failed rows; the other
    batch sizes still run.
    """
    t0 = time.perf_counter()
    try:
        opened = _opener(job["runner"])(job)
        import_ms = (opened.imported_at - t0) * 1000
        load_ms = (time.perf_counter() - opened.imported_at) * 1000
        first = sample_batch(job["batch_sizes"][0], *opened.size)
        t1 = time.perf_counter()
        opened.infer(first)
        first_ms = (time.perf_counter() - t1) * 1000
    except EdgeclfError as e:
        return failed_rows(job, str(e))
    except Exception as e:  # noqa: BLE001 - any library failure is this artifact's row
        return failed_rows(job, f"{type(e).__name__}: {e}")
    rows = []
    for b in job["batch_sizes"]:
        row = base_row(job, b)
        row.update(provider=opened.provider, import_ms=round(import_ms, 2),
                   load_ms=round(load_ms, 2), first_run_ms=round(first_ms, 2),
                   cold_start_ms=round(load_ms + first_ms, 2))
        if row["quantization"] == "unknown" and opened.quantization:
            row["quantization"] = opened.quantization
        try:
            row.update(_measure(opened, job, b))
        except Exception as e:  # noqa: BLE001
            row.update(status="failed", error=f"batch {b}: {type(e).__name__}: {e}")
        rows.append(row)
    opened.close()
    return rows


def _measure(opened: Any, job: dict, batch: int) -> dict:
    check_batch_memory(batch, *opened.size)
    reset_peak_rss()
    x = sample_batch(batch, *opened.size)
    call = opened.bind(x)
    ms = time_calls(call, warmup=job["warmup"], runs=job["runs"], seconds=job["seconds"])
    out = summarize(ms, batch)
    out["peak_rss_mb"] = peak_rss_mb()
    out["gpu_memory_mb"] = opened.gpu_memory_mb()
    if opened.preprocess is not None:
        jpegs = sample_jpegs(batch)
        pre = time_calls(lambda: opened.preprocess(jpegs), warmup=1,
                         runs=min(PREPROCESS_REPEATS, job["runs"] or PREPROCESS_REPEATS),
                         seconds=None)
        out["preprocess_ms"] = round(float(np.median(pre)), 3)
        out["preprocess_ms_per_image"] = round(float(np.median(pre)) / batch, 3)
    return out


# --- fingerprint ---------------------------------------------------------------------------

VERSIONED = ("edgeclf", "numpy", "onnxruntime", "onnxruntime-gpu", "ai-edge-litert",
             "tensorflow", "tensorflow-cpu", "keras", "pillow")
def machine_info(threads: tuple[int, ...]) -> dict:
    from edgeclf.bench_gpu import gpu_names

    versions = {p: package_version(p) for p in VERSIONED}
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"hostname": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": cpu_info(), "memory_gib": mem,
            "gpus": gpu_names(), "versions": versions, "threads": list(threads),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str]) -> int:
    """``python -m edgeclf.bench_runners JOB.json ROWS.json``: run one job, write its rows."""
    import json

    from edgeclf.fsutil import write_json

    job = json.loads(open(argv[0]).read())
    write_json(argv[1], run_job(job))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
