"""`edgeclf bench`: latency, throughput, cold start and memory of every artifact, side by side.

What it measures, per artifact (from ``RUN/export/manifest.json``, hashes checked, or one
model file), device, thread count and batch size: p50/p90/p99, mean and std of the inference
latency, images/s, cold start (session creation + first run, and the library import before
it), preprocessing time (decode + resize of in-memory JPEGs through the predictor's own
``preprocess``, measured apart from inference), peak resident memory and, on GPU, device
memory, and the execution provider that really ran.

Artifacts run through :class:`edgeclf.runtime.Predictor` (what users embed). Baselines run
in the same session: Keras ``model.predict`` and a direct ``model(x)`` call on the
checkpoint, the SavedModel through TensorFlow, and the float32 TFLite file through a bare
LiteRT interpreter with its default XNNPACK delegate, and the float32 ONNX file through a
bare onnxruntime session (``onnx-bare``); ``speedup`` in each row is the ratio to a reference
row measured in the same run (the direct Keras call when present), and ``overhead`` in a
predictor row is its p50 over the bare runtime's on the same file, minus 1.

Isolation: each (artifact, device, threads) job runs in a fresh Python process
(``python -m edgeclf.bench.worker``) so cold start includes loading the libraries, peak RSS
is that artifact's own, thread settings cannot leak between jobs (TensorFlow fixes them once
per process) and an artifact that crashes the interpreter is a failed row, not a failed bench.
``isolate=False`` runs in-process (fast, for tests; cold start and RSS are then not honest,
and the entry says so).

The package: :mod:`~edgeclf.bench.config` (what to measure), :mod:`~edgeclf.bench.plan`
(default plans, the typed :class:`Job`, estimates), this module (targets, jobs, running them,
speedups), :mod:`~edgeclf.bench.worker` and :mod:`~edgeclf.bench.timing` (one job, timed),
:mod:`~edgeclf.bench.models` (CPU runners), :mod:`~edgeclf.bench.gpu` and
:mod:`~edgeclf.bench.gpu_modes` (GPU probes and modes), :mod:`~edgeclf.bench.history`
(``bench.json``), :mod:`~edgeclf.bench.plot` (``bench.png``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeclf.bench import plan as _plan
from edgeclf.bench.config import (
    BENCH_ONLY_FORMATS,
    BenchConfig,
    bench_formats,
    exported_formats,
    validate_config,
)
from edgeclf.bench.history import (
    BenchResult,
    append_history,
    default_output,
    load_history,
    save_bench,
)
from edgeclf.bench.plan import FIGURES, Job
from edgeclf.bench.timing import check_batch_memory
from edgeclf.errors import DeviceError, ModelError, RunError
from edgeclf.progress import Progress
from edgeclf.run import RunPaths
from edgeclf.runtime.manifest import load_manifest, verify_artifact

log = logging.getLogger(__name__)

MODEL_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}
#: bare-runtime baselines: the predictor's overhead is measured against them (same file)
BARE_RUNNERS = ("onnx-bare", "tflite-xnnpack")


@dataclass
class Target:
    """One thing to benchmark: an artifact through the predictor, or a baseline."""

    artifact: str
    runner: str            # see edgeclf.bench.models.RUNNERS
    path: str
    format: str
    quantization: str
    bytes: int | None = None
    source: str | None = None  # the export dir the predictor resolves it from (manifest)
    error: str | None = None   # set when the artifact cannot be used (hash mismatch...)


def plan_targets(target: str | Path, cfg: BenchConfig) -> tuple[list[Target], dict]:
    """The artifacts (and baselines) to run for ``target`` and the contract size if known."""
    target = Path(target)
    if not target.exists():
        raise ModelError(f"{target} does not exist: give a run directory or a model file "
                         "(.onnx, .tflite)")
    wanted = _plan.resolve_formats(cfg.formats, cfg.exhaustive, exported_formats(),
                                   BENCH_ONLY_FORMATS)
    if target.is_file():
        fmt = MODEL_SUFFIXES.get(target.suffix.lower())
        if fmt is None:
            raise ModelError(f"{target}: not a model file edgeclf can benchmark (expected "
                             f"{', '.join(MODEL_SUFFIXES)}) or a run directory")
        out = [Target(artifact=target.name, runner="predictor", path=str(target), format=fmt,
                      quantization="unknown", bytes=target.stat().st_size)]
        if cfg.baselines:
            bare = {"tflite": "tflite-xnnpack", "onnx": "onnx-bare"}[fmt]
            out.append(Target(artifact=bare, runner=bare, path=str(target), format=fmt,
                              quantization="unknown", bytes=target.stat().st_size))
        return out, {}
    return _plan_run(RunPaths(target), wanted, cfg.baselines)


def _plan_run(paths: RunPaths, wanted: set[str], baselines: bool) -> tuple[list[Target], dict]:
    paths.require()
    info = json.loads(paths.run_json.read_text())
    out: list[Target] = []
    manifest = load_manifest(paths.export_dir) if paths.manifest.is_file() else None
    if manifest is None and wanted - set(BENCH_ONLY_FORMATS):
        log.warning("%s has no export/manifest.json: only the Keras baselines can run "
                    "(run `edgeclf export` first)", paths.root)
    float_tflite: Target | None = None
    float_onnx: Target | None = None
    for entry in (manifest or {}).get("artifacts", []):
        fmt, quant = entry.get("format"), entry.get("quantization", "none")
        if fmt not in wanted:
            continue
        t = Target(artifact=entry["file"], runner="savedmodel" if fmt == "savedmodel"
                   else "predictor", path=str(paths.export_dir / entry["file"]), format=fmt,
                   quantization=quant, bytes=entry.get("bytes"),
                   source=str(paths.export_dir))
        try:
            verify_artifact(paths.export_dir, entry)
        except ModelError as e:
            t.error = str(e)
        out.append(t)
        if fmt == "tflite" and quant == "none" and t.error is None:
            float_tflite = t
        if fmt == "onnx" and quant == "none" and t.error is None:
            float_onnx = t
    if baselines and float_onnx is not None:
        out.append(Target(artifact="onnx-bare", runner="onnx-bare", path=float_onnx.path,
                          format="onnx", quantization="none", bytes=float_onnx.bytes))
    if baselines and "tflite" in wanted and float_tflite is not None:
        out.append(Target(artifact="tflite-xnnpack", runner="tflite-xnnpack",
                          path=float_tflite.path, format="tflite", quantization="none",
                          bytes=float_tflite.bytes))
    if baselines and "keras" in wanted:
        ckpt = paths.best if paths.best.is_file() else paths.last
        for runner in ("keras-predict", "keras-call"):
            t = Target(artifact=runner, runner=runner, path=str(ckpt), format="keras",
                       quantization="none", bytes=ckpt.stat().st_size if ckpt.is_file() else None)
            if not ckpt.is_file():
                t.error = f"{paths.root} has no checkpoint for the Keras baseline"
            out.append(t)
    if not out:
        raise RunError(f"nothing to benchmark in {paths.root} for formats "
                       f"{', '.join(sorted(wanted))}: run `edgeclf export` first")
    size = info.get("preprocessing", {}).get("size")
    return out, {"image_size": size}


def devices_for(cfg: BenchConfig) -> list[str]:
    """The devices to run; a GPU that cannot be used is a DeviceError, never a CPU run."""
    if cfg.device in ("gpu", "all"):
        from edgeclf.bench.gpu import require_gpu

        require_gpu()
    return {"cpu": ["cpu"], "gpu": ["gpu"], "all": ["cpu", "gpu"]}[cfg.device]


def build_jobs(targets: list[Target], cfg: BenchConfig, devices: list[str],
               image_size: list[int] | None) -> list[Job]:
    jobs = []
    for device in devices:
        for t in targets:
            runners = [t.runner]
            if device == "gpu":
                if t.format != "onnx":
                    log.info("%s: %s has no GPU path in edgeclf bench; skipped on gpu",
                             t.artifact, t.format)
                    continue
                runners = [{"numpy": "predictor", "iobinding": "iobinding",
                            "cuda-graph": "cuda-graph"}[m] for m in cfg.gpu_modes]
            for runner in runners:
                for threads in cfg.resolved_threads():
                    jobs.append(Job(**{**asdict(t), "runner": runner}, device=device,
                                    threads=threads, batch_sizes=tuple(cfg.batch_sizes),
                                    warmup=cfg.resolved_warmup(), runs=cfg.resolved_runs(),
                                    seconds=cfg.resolved_seconds(), labels=cfg.labels,
                                    image_size=image_size))
    return jobs


def run_isolated(job: Job, timeout_s: float) -> list[dict]:
    """Run one job in a fresh interpreter; any crash or timeout becomes failed rows."""
    with tempfile.TemporaryDirectory(prefix="edgeclf-bench-") as tmp:
        spec, out = Path(tmp) / "job.json", Path(tmp) / "rows.json"
        spec.write_text(job.to_json())
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run([sys.executable, "-m", "edgeclf.bench.worker", str(spec),
                                   str(out)], capture_output=True, text=True, env=env, check=False,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return job.failed_rows(f"timed out after {timeout_s:.0f} s")
        if out.is_file():
            return json.loads(out.read_text())
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        return job.failed_rows(f"benchmark process exited with code {proc.returncode}: "
                               + " | ".join(tail))


def add_speedups(rows: list[dict]) -> None:
    """``speedup`` = reference p50 / row p50 at the same device, threads and batch size.

    The reference is the direct Keras call when it ran, else the float32 ONNX predictor,
    else the bare TFLite interpreter.
    """
    def key(r: dict) -> tuple:
        return r["device"], r["threads"], r["batch_size"]

    refs: dict[tuple, dict] = {}
    for name in ("keras-call", "onnx-none", "tflite-xnnpack"):
        for r in rows:
            label = (r["artifact"] if r["format"] == "keras" or r["runner"] in BARE_RUNNERS
                     else f"{r['format']}-{r['quantization']}")
            if (label == name and r.get("mode", "numpy") == "numpy" and r.get("p50_ms")
                    and key(r) not in refs):
                refs[key(r)] = r
    for r in rows:
        ref = refs.get(key(r))
        if ref is not None and r.get("p50_ms"):
            r["speedup"] = round(ref["p50_ms"] / r["p50_ms"], 3)
            r["speedup_vs"] = ref["artifact"]


def add_overheads(rows: list[dict]) -> None:
    """``overhead`` = predictor p50 / bare-runtime p50 - 1 on the same file, device,
    threads and batch size (0.05: the predictor costs 5% more than a bare session)."""
    bare = {(r["format"], r["quantization"], r["device"], r["threads"], r["batch_size"]): r
            for r in rows if r["runner"] in BARE_RUNNERS and r.get("p50_ms")}
    for r in rows:
        b = bare.get((r["format"], r["quantization"], r["device"], r["threads"],
                      r["batch_size"]))
        if r["runner"] == "predictor" and b is not None and r.get("p50_ms"):
            r["overhead"] = round(r["p50_ms"] / b["p50_ms"] - 1.0, 4)
            r["overhead_vs"] = b["artifact"]


@dataclass
class BenchPlan:
    """The jobs :func:`run_bench` will run, and how long they should take (None: unknown)."""

    jobs: list[Job]
    estimate_s: float | None

    @property
    def rows(self) -> int:
        return sum(len(j.batch_sizes) for j in self.jobs)


def plan_bench(target: str | Path, cfg: BenchConfig) -> BenchPlan:
    """Check ``cfg`` and ``target`` and list the jobs (nothing is loaded or timed)."""
    validate_config(cfg)
    devices = devices_for(cfg)
    targets, info = plan_targets(target, cfg)
    if info.get("image_size"):
        check_batch_memory(max(cfg.batch_sizes), *info["image_size"])
    jobs = build_jobs(targets, cfg, devices, info.get("image_size"))
    return BenchPlan(jobs=jobs, estimate_s=_plan.estimate_seconds(jobs))


def run_bench(target: str | Path, cfg: BenchConfig,
              progress: Progress | None = None,
              plan: BenchPlan | None = None) -> BenchResult:
    """Benchmark ``target`` (a run directory or a model file) and return one dated entry.

    ``plan`` is :func:`plan_bench`'s answer for the same target and config, when the caller
    already has it (to show the estimate first)."""
    plan = plan or plan_bench(target, cfg)
    jobs = plan.jobs
    from edgeclf.bench.worker import machine_info, run_job

    started = machine_info(cfg.resolved_threads())
    rows: list[dict] = []
    for i, job in enumerate(jobs):
        if progress:
            progress(i, len(jobs), f"{job.artifact} {job.runner} {job.device} "
                                   f"{job.threads} threads")
        if job.error:
            rows += job.failed_rows(job.error)
        elif cfg.isolate:
            rows += run_isolated(job, cfg.timeout_s)
        else:
            rows += run_job(job)
        failed = [r for r in rows[-len(job.batch_sizes):] if r["status"] != "ok"]
        if failed:
            log.warning("%s (%s, %s): %s", job.artifact, job.runner, job.device,
                        failed[0]["error"])
    if progress:
        progress(len(jobs), len(jobs), "done")
    add_speedups(rows)
    add_overheads(rows)
    _check_gpu_rows(rows)
    started["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    conf = {k: v for k, v in asdict(cfg).items() if k != "timeout_s"}
    conf.update(threads=list(cfg.resolved_threads()), runs=cfg.resolved_runs(),
                seconds=cfg.resolved_seconds(), warmup=cfg.resolved_warmup(),
                estimate_s=plan.estimate_s)
    return BenchResult(date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       machine=started, config=conf, target=str(target), results=rows)


def _check_gpu_rows(rows: list[dict]) -> None:
    from edgeclf.bench.gpu import is_gpu_provider

    for r in rows:
        if r["device"] == "gpu" and r["status"] == "ok" and not is_gpu_provider(r["provider"]):
            raise DeviceError(f"{r['artifact']}: a GPU run was requested but it ran on "
                              f"{r['provider']}; refusing to record it as a GPU figure")


def __getattr__(name: str) -> object:
    """``FORMATS``: every format ``--formats`` accepts, derived from export's table when asked
    (not at import: a bench subprocess imports this package before timing its model)."""
    if name == "FORMATS":
        return bench_formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FIGURES",
    "FORMATS",
    "BenchConfig",
    "BenchPlan",
    "BenchResult",
    "Job",
    "Target",
    "append_history",
    "build_jobs",
    "default_output",
    "load_history",
    "plan_bench",
    "plan_targets",
    "run_bench",
    "run_isolated",
    "save_bench",
    "validate_config",
]
