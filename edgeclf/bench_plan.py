"""How much `edgeclf bench` measures by default, and how long a plan should take.

Two plans share one code path:

- *quick* (the default): every exported artifact, a time budget of :data:`ROW_SECONDS` per
  row (one artifact at one batch size and thread count) instead of a fixed number of calls,
  :data:`QUICK_WARMUP` untimed calls, the cores this process may use, no Keras baselines.
  A 101-class MobileNetV2 224 run (8 artifacts, 3 batch sizes) finishes in about a minute
  on 2 cores instead of the ~11 minutes the full sweep takes there.
- *exhaustive* (``--exhaustive``): :data:`EXHAUSTIVE_RUNS` timed calls per row,
  :data:`EXHAUSTIVE_WARMUP` warmup calls, 1 thread and all usable cores, and the Keras
  baselines (``keras-predict``, ``keras-call``).

Anything given explicitly (runs, seconds, warmup, threads, formats) wins over both plans.
The estimate is a priori (startup per runtime + budget per row); it is only given for
time-budgeted plans, since a fixed number of calls takes as long as the model is slow.
"""

from __future__ import annotations

#: Time budget per row of the quick plan (seconds of timed calls, at least 3 calls).
ROW_SECONDS = 1.0
QUICK_WARMUP = 2
EXHAUSTIVE_RUNS = 50
EXHAUSTIVE_WARMUP = 5
#: Formats measured when none are asked for; ``keras`` (the baselines) only when exhaustive.
QUICK_FORMATS = ("onnx", "tflite", "savedmodel")
#: Seconds a fresh benchmark process needs before its first timed call: interpreter start,
#: the runtime's import, session creation (TensorFlow-backed runners import TensorFlow).
STARTUP_SECONDS = {"onnx": 2.0, "tflite": 2.0, "savedmodel": 10.0, "keras": 12.0}
#: Per row on top of the budget: warmup calls, preprocessing timed on JPEGs, the first call.
ROW_OVERHEAD_SECONDS = 0.6


def resolve_threads(threads: tuple[int, ...] | None, exhaustive: bool,
                    usable: int) -> tuple[int, ...]:
    """Explicit thread counts as given; else the usable cores (and 1 too when exhaustive)."""
    if threads:
        return tuple(threads)
    return tuple(sorted({1, usable})) if exhaustive else (usable,)


def resolve_timing(runs: int | None, seconds: float | None, warmup: int | None,
                   exhaustive: bool) -> tuple[int | None, float | None, int]:
    """``(runs, seconds, warmup)`` of a plan: exactly one of runs/seconds is not None."""
    if warmup is None:
        warmup = EXHAUSTIVE_WARMUP if exhaustive else QUICK_WARMUP
    if runs is not None or seconds is not None:
        return runs, seconds, warmup
    return (EXHAUSTIVE_RUNS, None, warmup) if exhaustive else (None, ROW_SECONDS, warmup)


def resolve_formats(formats: tuple[str, ...] | None, exhaustive: bool,
                    all_formats: tuple[str, ...]) -> set[str]:
    if formats:
        return set(formats)
    return set(all_formats) if exhaustive else set(QUICK_FORMATS)


def estimate_job_seconds(job: dict) -> float | None:
    """A priori seconds for one job (one process, all its batch sizes); None when the job
    runs a fixed number of calls (its length is the model's latency, unknown before)."""
    if job.get("error"):
        return 0.0
    if job.get("seconds") is None:
        return None
    rows = len(job["batch_sizes"])
    return STARTUP_SECONDS.get(job["format"], 5.0) + rows * (job["seconds"]
                                                              + ROW_OVERHEAD_SECONDS)


def estimate_seconds(jobs: list[dict]) -> float | None:
    """A priori seconds for the whole plan; None if any job's length cannot be known."""
    each = [estimate_job_seconds(j) for j in jobs]
    return None if any(e is None for e in each) else round(sum(each), 1)


def remaining_seconds(elapsed: float, done: int, total: int,
                      planned: float | None) -> float | None:
    """Seconds left after ``done`` of ``total`` jobs: measured pace once a job has finished
    (it includes this machine's real speed), the a priori estimate before."""
    if done >= total:
        return 0.0
    if done > 0:
        return elapsed / done * (total - done)
    return planned
