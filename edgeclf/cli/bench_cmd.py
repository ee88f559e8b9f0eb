"""`edgeclf bench`: latency and throughput of every artifact of a run, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgeclf.errors import ConfigError

from .common import console, err_console, handle_errors, next_step, refresh_report, print_json, table


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"1,8,32"`` -> ``(1, 8, 32)``; anything else is a ConfigError naming the option."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, e.g. 1,8,32; got "
                          f"{text!r}") from None
    if not values:
        raise ConfigError(f"{option} is empty")
    return values


def _fmt(v: object, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def result_table(rows: list[dict]) -> object:
    cols = ["artifact", "quant", "device", "provider", "mode", "threads", "batch", "p50 ms",
            "p90 ms", "p99 ms", "img/s", "cold ms", "pre ms/img", "RSS MB", "speedup", "overhead"]
    out = []
    for r in rows:
        if r["status"] != "ok":
            out.append([r["artifact"], r["quantization"], r["device"], "-", r["mode"],
                        r["threads"], r["batch_size"], "[red]failed[/]",
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
                                          "Default: all."),
    device: str = typer.Option("cpu", "--device", help="cpu, gpu or all. A GPU that cannot "
                               "be used is an error, never a CPU run."),
    batch_sizes: str = typer.Option("1,8,32", "--batch-sizes", help="Comma-separated."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Comma-separated intra-op "
                                          "thread counts. Default: the usable cores."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed calls before timing."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Timed calls per batch size "
                                       "(default 50)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Time budget per batch "
                                            "size instead of --runs."),
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
    as_json: bool = typer.Option(False, "--json", help="Print the entry as JSON."),
) -> None:
    """Benchmark every artifact of a run (or one model file) against Keras and TFLite."""
    from edgeclf.bench import BenchConfig, default_output, run_bench, save_bench

    fmts = tuple(f.strip() for f in formats.split(",") if f.strip()) if formats else None
    modes = ("numpy", "iobinding") + (("cuda-graph",) if cuda_graph else ())
    kwargs = dict(formats=fmts, device=device, batch_sizes=parse_ints(batch_sizes,
                  "--batch-sizes"), threads=parse_ints(threads, "--threads"), warmup=warmup,
                  runs=runs, seconds=seconds, baselines=baselines, gpu_modes=modes,
                  labels=str(labels) if labels else None, isolate=isolate)
    cfg = BenchConfig(**kwargs)
    from .common import progress_bar

    with progress_bar("bench", transient=True) as update:
        result = run_bench(target, cfg, progress=lambda i, n, _what: update(i, n))
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
            err_console.print(f"[red]failed[/] {artifact} ({runner}, {dev}): {error}",
                              highlight=False, soft_wrap=True)
        load = result.machine["load_average_start"]
        err_console.print(f"{result.machine['cpu']['model']}, "
                          f"{result.machine['cpu']['usable_cores']} cores, load {load[0]}")
    failed = sum(r["status"] != "ok" for r in result.results)
    console.print(f"Wrote {bench_json}" + (f" and {png}" if png else "")
                  + (f" ({failed} failed rows)" if failed else ""))
    if Path(target).is_dir():
        next_step(f"edgeclf report {target}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
