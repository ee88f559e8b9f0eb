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

A :class:`Job` is one (artifact, runner, device, thread count) with the batch sizes to sweep:
what :func:`edgeclf.bench.build_jobs` lists, what a bench subprocess reads back from JSON
(:meth:`Job.to_json`, :meth:`Job.from_json`) and what every row of ``bench.json`` starts
from (:meth:`Job.row`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

#: Time budget per row of the quick plan (seconds of timed calls, at least 3 calls).
ROW_SECONDS = 1.0
QUICK_WARMUP = 2
EXHAUSTIVE_RUNS = 50
EXHAUSTIVE_WARMUP = 5
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
                    exported: tuple[str, ...], bench_only: tuple[str, ...]) -> set[str]:
    """Formats measured: as given; else every exported format, and ``bench_only`` (the Keras
    baselines) too when exhaustive."""
    if formats:
        return set(formats)
    return set(exported) | (set(bench_only) if exhaustive else set())


#: The figures of a row (None in a failed row).
FIGURES = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "runs",
           "images_per_second", "cold_start_ms", "load_ms", "first_run_ms", "import_ms",
           "preprocess_ms", "preprocess_ms_per_image", "peak_rss_mb", "gpu_memory_mb")
#: Runners that are GPU modes of the ONNX predictor (a row's ``mode``); any other: "numpy".
GPU_MODE_RUNNERS = ("iobinding", "cuda-graph")


@dataclass(frozen=True, kw_only=True)
class Job:
    """One bench job: one model, one runner (see :data:`edgeclf.bench.models.RUNNERS`), one
    device and thread count, every batch size of the sweep. Sent to a fresh process as JSON."""

    artifact: str                  # the row's name: artifact file or baseline name
    runner: str
    path: str                      # the model file (or SavedModel folder, checkpoint)
    format: str
    quantization: str
    device: str
    threads: int
    batch_sizes: tuple[int, ...]
    warmup: int
    runs: int | None               # exactly one of runs / seconds is not None
    seconds: float | None
    bytes: int | None = None
    source: str | None = None      # the export dir the predictor resolves it from (manifest)
    error: str | None = None       # set when the artifact cannot be used (hash mismatch...)
    labels: str | None = None      # labels file for a model without metadata
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:   # JSON gives lists back: keep the frozen job hashable
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))

    @property
    def mode(self) -> str:
        return self.runner if self.runner in GPU_MODE_RUNNERS else "numpy"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch_sizes"] = list(self.batch_sizes)
        d["image_size"] = list(self.image_size) if self.image_size is not None else None
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls.from_dict(json.loads(text))

    def row(self, batch: int) -> dict:
        """A row of ``bench.json`` for ``batch``: the job's identity, figures still None."""
        return {"artifact": self.artifact, "format": self.format,
                "quantization": self.quantization, "device": self.device,
                "provider": None, "mode": self.mode, "runner": self.runner,
                "batch_size": batch, "threads": self.threads, "bytes": self.bytes,
                "status": "ok", "error": None, **{k: None for k in FIGURES},
                "speedup": None, "speedup_vs": None, "overhead": None, "overhead_vs": None}

    def failed_rows(self, error: str) -> list[dict]:
        """One failed row per batch size, all with ``error``."""
        return [{**self.row(b), "status": "failed", "error": error} for b in self.batch_sizes]


def estimate_job_seconds(job: Job) -> float | None:
    """A priori seconds for one job (one process, all its batch sizes); None when the job
    runs a fixed number of calls (its length is the model's latency, unknown before)."""
    if job.error:
        return 0.0
    if job.seconds is None:
        return None
    rows = len(job.batch_sizes)
    return STARTUP_SECONDS.get(job.format, 5.0) + rows * (job.seconds + ROW_OVERHEAD_SECONDS)


def estimate_seconds(jobs: list[Job]) -> float | None:
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
