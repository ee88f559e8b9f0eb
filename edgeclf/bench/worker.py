"""The measuring half of `edgeclf bench`: open a job's model, time each batch size, and the
machine fingerprint of a bench entry.

A :class:`~edgeclf.bench.plan.Job` names one artifact, one runner, one device and one thread
count, and the batch sizes to sweep. :func:`run_job` returns one row per batch size.
``python -m edgeclf.bench.worker JOB.json ROWS.json`` runs a job in a fresh process (what
``edgeclf bench`` does by default).

Every runner takes the same input, a uint8 NHWC batch of pixels, and returns probabilities;
whatever conversion its caller would have to do is inside the timed call.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeclf.bench.plan import Job
from edgeclf.bench.timing import (
    check_batch_memory,
    peak_rss_mb,
    reset_peak_rss,
    sample_batch,
    sample_jpegs,
    summarize,
    time_calls,
)
from edgeclf.errors import EdgeclfError
from edgeclf.machine import cpu_info, package_version

PREPROCESS_REPEATS = 5


# --- the job -------------------------------------------------------------------------------

def _opener(runner: str) -> Callable[[Job], Any]:
    """The function that opens a job's model: a CPU runner of :mod:`edgeclf.bench.models`, or
    a GPU mode of :mod:`edgeclf.bench.gpu_modes` (imported only when a GPU job asks for it)."""
    if runner in ("iobinding", "cuda-graph"):
        from edgeclf.bench import gpu_modes

        return {"iobinding": gpu_modes.open_iobinding,
                "cuda-graph": gpu_modes.open_cuda_graph}[runner]
    from edgeclf.bench.models import RUNNERS

    return RUNNERS[runner]


def run_job(job: Job) -> list[dict]:
    """Load the job's model (cold start), then sweep its batch sizes; one row per size.

    A model that cannot be loaded, or a batch size that fails, gives failed rows; the other
    batch sizes still run.
    """
    t0 = time.perf_counter()
    try:
        opened = _opener(job.runner)(job)
        import_ms = (opened.imported_at - t0) * 1000
        load_ms = (time.perf_counter() - opened.imported_at) * 1000
        first = sample_batch(job.batch_sizes[0], *opened.size)
        t1 = time.perf_counter()
        opened.infer(first)
        first_ms = (time.perf_counter() - t1) * 1000
    except EdgeclfError as e:
        return job.failed_rows(str(e))
    except Exception as e:  # noqa: BLE001 - any library failure is this artifact's row
        return job.failed_rows(f"{type(e).__name__}: {e}")
    rows = []
    for b in job.batch_sizes:
        row = job.row(b)
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


def _measure(opened: Any, job: Job, batch: int) -> dict:
    check_batch_memory(batch, *opened.size)
    reset_peak_rss()
    x = sample_batch(batch, *opened.size)
    call = opened.bind(x)
    ms = time_calls(call, warmup=job.warmup, runs=job.runs, seconds=job.seconds)
    out = summarize(ms, batch)
    out["peak_rss_mb"] = peak_rss_mb()
    out["gpu_memory_mb"] = opened.gpu_memory_mb()
    if opened.preprocess is not None:
        jpegs = sample_jpegs(batch)
        pre = time_calls(lambda: opened.preprocess(jpegs), warmup=1,
                         runs=min(PREPROCESS_REPEATS, job.runs or PREPROCESS_REPEATS),
                         seconds=None)
        out["preprocess_ms"] = round(float(np.median(pre)), 3)
        out["preprocess_ms_per_image"] = round(float(np.median(pre)) / batch, 3)
    return out


# --- fingerprint ---------------------------------------------------------------------------

VERSIONED = ("edgeclf", "numpy", "onnxruntime", "onnxruntime-gpu", "ai-edge-litert",
             "tensorflow", "tensorflow-cpu", "keras", "pillow")


def machine_info(threads: tuple[int, ...]) -> dict:
    from edgeclf.bench.gpu import gpu_names

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
    """``python -m edgeclf.bench.worker JOB.json ROWS.json``: run one job, write its rows."""
    from pathlib import Path

    from edgeclf.fsutil import write_json

    job = Job.from_json(Path(argv[0]).read_text())
    write_json(argv[1], run_job(job))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
