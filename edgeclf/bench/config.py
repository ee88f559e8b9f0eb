"""What `edgeclf bench` is asked to measure: :class:`BenchConfig` and its checks.

The defaults that ``None`` stands for (the quick and the exhaustive plan) are
:mod:`edgeclf.bench.plan`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeclf.bench import plan
from edgeclf.bench.timing import MAX_BATCH
from edgeclf.errors import ConfigError

#: What bench runs besides the exported formats: the Keras baselines on the checkpoint.
BENCH_ONLY_FORMATS = ("keras",)
DEVICES = ("cpu", "gpu", "all")
MAX_THREADS = 256
GPU_MODES = ("numpy", "iobinding", "cuda-graph")


def exported_formats() -> tuple[str, ...]:
    """The formats of export's one table (:data:`edgeclf.export.FORMATS`) that bench times.

    Imported here, when a bench is planned, not with the package: a bench subprocess imports
    this package and must load nothing but its own model before the timing."""
    from edgeclf.export import FORMATS as EXPORT_FORMATS

    return tuple(name for name, spec in EXPORT_FORMATS.items() if spec.benched)


def bench_formats() -> tuple[str, ...]:
    """Every format ``--formats`` accepts: the exported ones, then the Keras baselines."""
    return exported_formats() + BENCH_ONLY_FORMATS


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to measure. ``None`` means the default noted beside the field; the quick and
    exhaustive defaults are :mod:`edgeclf.bench.plan`'s."""

    formats: tuple[str, ...] | None = None       # None: every format found (keras: exhaustive)
    device: str = "cpu"                          # cpu | gpu | all
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int, ...] | None = None       # None: usable cores (exhaustive: 1 too)
    warmup: int | None = None                    # None: 2 (exhaustive: 5)
    runs: int | None = None                      # None: a time budget (exhaustive: 50 runs)
    seconds: float | None = None                 # None: 1 s per row unless runs are given
    exhaustive: bool = False                     # the full sweep, Keras baselines included
    baselines: bool = True                       # Keras predict/call + bare TFLite (XNNPACK)
    gpu_modes: tuple[str, ...] = ("numpy", "iobinding")  # + "cuda-graph"
    labels: str | None = None                    # labels file for a model without metadata
    isolate: bool = True                         # one fresh process per job
    timeout_s: float = 1800.0                    # per job, when isolated

    def resolved_threads(self) -> tuple[int, ...]:
        return plan.resolve_threads(self.threads, self.exhaustive,
                                    len(os.sched_getaffinity(0)))

    def resolved_runs(self) -> int | None:
        return self._timing()[0]

    def resolved_seconds(self) -> float | None:
        return self._timing()[1]

    def resolved_warmup(self) -> int:
        return self._timing()[2]

    def _timing(self) -> tuple[int | None, float | None, int]:
        return plan.resolve_timing(self.runs, self.seconds, self.warmup, self.exhaustive)


def validate_config(cfg: BenchConfig) -> None:
    """Refuse nonsense before anything is loaded (ConfigError says what and why)."""
    if cfg.device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}; got {cfg.device!r}")
    formats = bench_formats()
    for f in cfg.formats or ():
        if f not in formats:
            raise ConfigError(f"unknown format {f!r}; formats are {', '.join(formats)}")
    if not cfg.batch_sizes:
        raise ConfigError("--batch-sizes is empty: give at least one batch size, e.g. 1,8,32")
    for b in cfg.batch_sizes:
        if b < 1 or b > MAX_BATCH:
            raise ConfigError(f"batch size {b} is out of range: use 1..{MAX_BATCH}")
    for t in cfg.threads or ():
        if t < 1 or t > MAX_THREADS:
            raise ConfigError(f"threads {t} is out of range: use 1..{MAX_THREADS} "
                              f"(this machine has {os.cpu_count()} cores)")
    if cfg.runs is not None and cfg.seconds is not None:
        raise ConfigError("give --runs or --seconds, not both")
    if cfg.runs is not None and cfg.runs < 1:
        raise ConfigError(f"--runs must be at least 1 (got {cfg.runs}): a benchmark with no "
                          "timed run has no figures")
    if cfg.seconds is not None and not 0 < cfg.seconds <= 3600:
        raise ConfigError(f"--seconds must be in (0, 3600]; got {cfg.seconds}")
    if cfg.warmup is not None and cfg.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more; got {cfg.warmup}")
    for m in cfg.gpu_modes:
        if m not in GPU_MODES:
            raise ConfigError(f"unknown GPU mode {m!r}; modes are {', '.join(GPU_MODES)}")
