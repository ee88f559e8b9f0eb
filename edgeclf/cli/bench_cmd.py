"""`edgeclf bench`: latency and throughput of every artifact of a run, side by side."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from edgeclf.progress import Progress

if TYPE_CHECKING:
    from edgeclf.bench import BenchPlan

from .common import (JsonOption, comma_list, console, err_console, esc, fail, handle_errors,
                     next_step, note, parse_ints, print_json, progress_bar, refresh_report,
                     styled, table)


def _fmt(v: object, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _seconds(s: float | None) -> str:
    if s is None:
        return "unknown until a job finishes"
    return f"about {s:.0f} s" if s < 120 else f"about {s / 60:.1f} min"


@contextlib.contextmanager
def bench_progress(plan: BenchPlan) -> Iterator[Progress]:
    """The plan and its estimate first; then a bar on a terminal, else one line per job
    (a log file or CI shows what runs and how long is left)."""
    from edgeclf.bench.plan import remaining_seconds

    err_console.print(f"bench: {len(plan.jobs)} jobs, {plan.rows} rows, "
                      f"{_seconds(plan.estimate_s)} (--exhaustive: the full sweep)",
                      highlight=False)
    start = time.perf_counter()
    if err_console.is_terminal:
        with progress_bar("bench", transient=True) as update:
            yield lambda i, n, _what: update(i, n)
        return

    def line(i: int, n: int, what: str) -> None:
        elapsed = time.perf_counter() - start
        left = remaining_seconds(elapsed, i, n, plan.estimate_s)
        step = f"[{i + 1}/{n}] {esc(what)}" if i < n else f"[{n}/{n}] done"
        err_console.print(f"bench {step}: {elapsed:.0f} s elapsed, "
                          f"{_seconds(left) if i < n else 'finished'}"
                          + (" left" if i < n and left is not None else ""),
                          highlight=False, soft_wrap=True)
    yield line


def result_table(rows: list[dict]) -> object:
    cols = ["artifact", "quant", "device", "provider", "mode", "threads", "batch", "p50 ms",
            "p90 ms", "p99 ms", "img/s", "cold ms", "pre ms/img", "RSS MB", "speedup", "overhead"]
    out = []
    for r in rows:
        if r["status"] != "ok":
            out.append([r["artifact"], r["quantization"], r["device"], "-", r["mode"],
                        r["threads"], r["batch_size"], styled("failed", "red"),
                        *["" for _ in range(8)]])
            continue
        speed = f"{r['speedup']:.2f}x vs {r['speedup_vs']}" if r.get("speedup") else "-"
        out.append([r["artifact"], r["quantization"], r["device"], r["provider"], r["mode"],
                    r["threads"], r["batch_size"], _fmt(r["p50_ms"]), _fmt(r["p90_ms"]),
                    _fmt(r["p99_ms"]), _fmt(r["images_per_second"], 1),
                    _fmt(r["cold_start_ms"], 0), _fmt(r["preprocess_ms_per_image"]),
                    _fmt(r["peak_rss_mb"], 0), speed,
                    f"{r['overhead']:+.1%} vs {r['overhead_vs']}"
                    if r.get("overhead") is not None else "-"])
    return table("edgeclf bench", cols, out)


@handle_errors
def bench(
    target: Path = typer.Argument(..., help="A run directory (models/NAME) or one model "
                                  "file (.onnx, .tflite)."),
    formats: Optional[str] = typer.Option(None, "--formats", help="Comma-separated: onnx, "
                                          "tflite, savedmodel, keras (the Keras baselines). "
                                          "Default: every exported format (keras only with "
                                          "--exhaustive)."),
    device: str = typer.Option("cpu", "--device", help="cpu, gpu or all. A GPU that cannot "
                               "be used is an error, never a CPU run."),
    batch_sizes: str = typer.Option("1,8,32", "--batch-sizes", help="Comma-separated."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Comma-separated intra-op "
                                          "thread counts. Default: the usable cores (and 1 "
                                          "with --exhaustive)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed calls before "
                                         "timing (default 2; 5 with --exhaustive)."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Timed calls per batch size "
                                       "(default: a time budget; 50 with --exhaustive)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Time budget per batch "
                                            "size instead of --runs (default 1)."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="The full sweep: 50 runs "
                                    "per row, 1 thread and all cores, Keras baselines."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file, for a model "
                                          "file without edgeclf metadata."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Keras "
                                   "predict/call and a bare TFLite (XNNPACK) interpreter."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Also time CUDA graphs on "
                                    "GPU (fixed shapes)."),
    isolate: bool = typer.Option(True, "--isolate/--in-process", help="One fresh process per "
                                 "artifact (honest cold start and peak RSS)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for bench.json "
                                          "and bench.png. Default: the run, or "
                                          "./bench-<model> for a model file."),
    as_json: JsonOption = False,
) -> None:
    """Benchmark every artifact of a run (or one model file) against Keras and TFLite.

    Exits 1 when any row failed (bench.json keeps the failed rows with their errors)."""
    from edgeclf.bench import BenchConfig, default_output, plan_bench, run_bench, save_bench

    fmts = comma_list(formats)
    modes = ("numpy", "iobinding") + (("cuda-graph",) if cuda_graph else ())
    kwargs = dict(formats=fmts, device=device, batch_sizes=parse_ints(batch_sizes,
                  "--batch-sizes"), threads=parse_ints(threads, "--threads"), warmup=warmup,
                  runs=runs, seconds=seconds, baselines=baselines, gpu_modes=modes,
                  labels=str(labels) if labels else None, isolate=isolate,
                  exhaustive=exhaustive)
    cfg = BenchConfig(**kwargs)
    plan = plan_bench(target, cfg)
    with bench_progress(plan) as progress:
        result = run_bench(target, cfg, progress=progress, plan=plan)
    out_dir = output or default_output(target)
    bench_json, png = save_bench(result, out_dir)
    refresh_report(out_dir)
    if as_json:
        print_json(result.to_entry())
    else:
        console.print(result_table(result.results))
        errors = {(r["artifact"], r["runner"], r["device"]): r["error"]
                  for r in result.results if r["status"] != "ok"}
        for (artifact, runner, dev), error in errors.items():
            err_console.print(f"[red]failed[/] {esc(artifact)} ({esc(runner)}, {esc(dev)}): "
                              f"{esc(error)}", highlight=False, soft_wrap=True)
        load = result.machine["load_average_start"]
        err_console.print(f"{esc(result.machine['cpu']['model'])}, "
                          f"{result.machine['cpu']['usable_cores']} cores, load {load[0]}")
    failed = sum(r["status"] != "ok" for r in result.results)
    note(f"Wrote {esc(bench_json)}" + (f" and {esc(png)}" if png else "")
         + (f" ({failed} failed rows)" if failed else ""))
    if failed:
        fail(f"{failed} row(s) failed (their errors are in bench.json)")
    if Path(target).is_dir():
        next_step(f"edgeclf report {target}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
