"""Report sections after training: export table, parity table, latency table and plot."""

from __future__ import annotations

from typing import Any

from . import plots
from .context import Context, Section
from .images import data_uri, png_file_uri, thumbnail_uri
from .markup import Raw, badge, details, img, join, kv_table, not_run, note, problem, table
from .readers import (as_dict, as_list, fmt, fmt_bytes, fmt_pct, fmt_points, num, pick,
                      read_json_object)

#: Flipped images listed (and thumbnails shown) per artifact.
MAX_FLIPPED = 20
MAX_FLIPPED_THUMBS = 6


def export(ctx: Context) -> Section:
    manifest = read_json_object(ctx.paths.manifest)
    if manifest is None:
        return Section("export", "Export", "not-run", not_run("edgeclf", "export", ctx.run_arg))
    artifacts = [a for a in as_list(pick(manifest, "artifacts")) if isinstance(a, dict)]
    if not artifacts:
        return Section("export", "Export", "problem",
                       problem("export/manifest.json lists no artifacts"))
    rows = []
    for a in artifacts:
        base = _float_size(artifacts, a)
        size = num(pick(a, "bytes"))
        present = (ctx.paths.export_dir / str(pick(a, "file", default=""))).exists()
        rows.append([pick(a, "file", default="?"), pick(a, "format", default="?"),
                     pick(a, "quantization", default="?"), fmt_bytes(size),
                     f"{size / base:.2f}×" if size and base else "—",
                     f"{fmt(pick(a, 'export_seconds'), 3)} s",
                     str(pick(a, "sha256", default=""))[:12],
                     "present" if present else "MISSING"])
    ckpt = as_dict(pick(manifest, "checkpoint"))
    body = [table(["file", "format", "quantization", "size", "vs float32", "export time",
                   "sha256", "on disk"], rows)]
    if ckpt:
        body.append(note(f"from checkpoint {pick(ckpt, 'file', default='?')} "
                         f"(sha256 {str(pick(ckpt, 'sha256', default=''))[:12]})"))
    return Section("export", "Export", "done", join(body))


def _float_size(artifacts: list[dict], a: dict) -> float | None:
    """Size of the unquantized artifact of the same format (else of any format)."""
    floats = [x for x in artifacts if pick(x, "quantization") == "none" and num(pick(x, "bytes"))]
    same = [x for x in floats if pick(x, "format") == pick(a, "format")]
    ref = (same or floats or [None])[0]
    return num(pick(ref, "bytes")) if ref else None


def parity(ctx: Context) -> Section:
    data = read_json_object(ctx.paths.parity)
    if data is None:
        return Section("parity", "Parity", "not-run", not_run("edgeclf", "parity", ctx.run_arg))
    ref = as_dict(pick(data, "reference"))
    ref_acc = num(pick(ref, "accuracy"))
    passed = pick(data, "passed")
    pairs = [("result", badge(passed if isinstance(passed, bool) else None)),
             ("split", pick(data, "split", default="?")), ("images", fmt(pick(data, "n_images"))),
             ("reference (Keras) accuracy", fmt_pct(ref_acc))]
    if num(pick(data, "n_skipped")):
        pairs.append(("skipped images", f"{fmt(pick(data, 'n_skipped'))} (missing or changed "
                                        "since the split was made)"))
    body = [kv_table(pairs)] + [note(f"warning: {w}") for w in as_list(pick(data, "warnings"))]
    artifacts = [a for a in as_list(pick(data, "artifacts")) if isinstance(a, dict)]
    if not artifacts:
        body.append(problem("parity.json lists no artifacts"))
        return Section("parity", "Parity", "problem", join(body))
    rows = [_parity_row(a, ref_acc) for a in artifacts]
    body.append(table(["file", "format", "quantization", "top-1 agreement", "max |Δp|",
                       "mean |Δp|", "accuracy", "accuracy change", "flipped", "result"], rows))
    roots = ctx.image_roots()
    for a in artifacts:
        flipped = [f for f in as_list(pick(a, "flipped")) if isinstance(f, (dict, str))]
        if flipped:
            total = int(num(pick(a, "n_flipped")) or len(flipped))   # the list may be capped
            body.append(_flipped(str(pick(a, "file", default="?")), flipped, roots,
                                 max(total, len(flipped))))
    return Section("parity", "Parity", "done" if passed is not False else "problem", join(body))


def _parity_row(a: dict, ref_acc: float | None) -> list[Any]:
    acc = num(pick(a, "accuracy"))
    if acc is not None and ref_acc is not None:
        change = fmt_points(acc - ref_acc)
    else:  # parity.py writes accuracy_delta in percentage points
        delta = num(pick(a, "accuracy_delta", "accuracy_change"))
        change = "—" if delta is None else f"{delta:+.2f} pt"
    ok = pick(a, "passed")
    why = [str(w) for w in as_list(pick(a, "breaches"))] + (
        [f"error: {pick(a, 'error')}"] if pick(a, "error") else [])
    why = "; ".join(why)
    result = badge(ok if isinstance(ok, bool) else None)
    if why and ok is False:
        result = join([result, " ", str(why)])
    return [pick(a, "file", default="?"), pick(a, "format", default="?"),
            pick(a, "quantization", default="?"), fmt_pct(pick(a, "agreement")),
            fmt(pick(a, "max_abs_diff"), 3), fmt(pick(a, "mean_abs_diff"), 3),
            fmt_pct(acc), change,
            fmt(pick(a, "n_flipped", default=len(as_list(pick(a, "flipped"))))),
            result]


def _flipped(file: str, flipped: list, roots: list, total: int) -> Raw:
    rows, thumbs = [], []
    for f in flipped[:MAX_FLIPPED]:
        d = f if isinstance(f, dict) else {"file": f}
        name = str(pick(d, "file", "path", "image", default=""))
        rows.append([name, pick(d, "true", default="?"),
                     pick(d, "reference", "reference_class", "expected", default="?"),
                     fmt(pick(d, "reference_confidence", "reference_prob"), 3),
                     pick(d, "artifact", "artifact_class", "predicted", default="?"),
                     fmt(pick(d, "artifact_confidence", "artifact_prob"), 3)])
        uri = thumbnail_uri(roots, name) if name and len(thumbs) < MAX_FLIPPED_THUMBS else None
        if uri:
            thumbs.append(img(uri, name, cls="thumb", title=name))
    shown = min(len(flipped), MAX_FLIPPED)
    more = f" (first {shown} shown)" if total > shown else ""
    body = join([Raw('<div class="gallery">' + "".join(thumbs) + "</div>") if thumbs else "",
                 table(["image", "true class", "reference", "confidence", "artifact", "confidence"],
                       rows)])
    return details(f"{file}: {total} flipped image(s){more}", body)


def bench(ctx: Context) -> Section:
    data = read_json_object(ctx.paths.bench_json)
    if data is None:
        return Section("bench", "Latency", "not-run", not_run("edgeclf", "bench", ctx.run_arg))
    runs = [r for r in as_list(pick(data, "runs")) if isinstance(r, dict)]
    if not runs:
        return Section("bench", "Latency", "problem", problem("bench.json holds no runs"))
    last = runs[-1]
    results = [r for r in as_list(pick(last, "results")) if isinstance(r, dict)]
    body = [kv_table([("measured", pick(last, "date", default="?")),
                      ("machine", _machine(as_dict(pick(last, "machine")))),
                      ("earlier runs in bench.json", len(runs) - 1)])]
    if results:
        body.append(_bench_table(results))
    else:
        body.append(problem("the latest bench run has no results"))
    body.append(_bench_plot(ctx, results))
    return Section("bench", "Latency", "done" if results else "problem", join(body))


def _machine(m: dict) -> str:
    """One line: CPU model and cores, GPUs, the runtime versions (bench.worker.machine_info;
    flat keys of other writers accepted too)."""
    cpu = pick(m, "cpu")
    if isinstance(cpu, dict):
        cores = pick(cpu, "usable_cores", "logical_cores", "cores")
        cpu = f"{pick(cpu, 'model', default='?')}" + (f" ({cores} cores)" if cores else "")
    elif pick(m, "cores", "cpu_count"):
        cpu = f"{cpu or '?'} ({pick(m, 'cores', 'cpu_count')} cores)"
    gpus = pick(m, "gpus", "gpu")
    gpus = ", ".join(map(str, gpus)) if isinstance(gpus, list) else gpus
    versions = as_dict(pick(m, "versions")) or {k: m.get(k) for k in
                                                ("onnxruntime", "tensorflow", "litert")}
    vers = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    parts = [str(p) for p in (cpu, f"GPU: {gpus}" if gpus else None, vers) if p]
    return "; ".join(parts) or "—"


#: (header, key, digits) of the latency table; a column appears when any row has a value.
BENCH_COLUMNS = [("artifact", "artifact", 0), ("quantization", "quantization", 0),
                 ("device", "device", 0),
                 ("provider", "provider", 0), ("mode", "mode", 0), ("batch", "batch_size", 0),
                 ("threads", "threads", 0), ("p50 ms", "p50_ms", 3), ("p90 ms", "p90_ms", 3),
                 ("p99 ms", "p99_ms", 3), ("images/s", "images_per_second", 4),
                 ("cold start ms", "cold_start_ms", 4), ("peak RSS MB", "peak_rss_mb", 4),
                 ("speedup", "speedup", 3), ("error", "error", 0)]


def _bench_table(results: list[dict]) -> Raw:
    cols = [c for c in BENCH_COLUMNS if c[1] in ("artifact", "p50_ms")
            or any(pick(r, c[1]) not in (None, "") for r in results)]
    if all(pick(r, "mode") in (None, "numpy") for r in results):
        cols = [c for c in cols if c[1] != "mode"]
    rows = []
    for r in results:
        row: list[Any] = [fmt(pick(r, key), d) if d else pick(r, key, default="—")
                          for _, key, d in cols]
        for i, (_, key, _d) in enumerate(cols):
            if key == "provider" and isinstance(row[i], str):    # CPUExecutionProvider -> CPU
                row[i] = row[i].removesuffix("ExecutionProvider") or row[i]
            elif key == "speedup" and row[i] != "—":
                row[i] = f"{row[i]}×"
        if pick(r, "status") == "failed" or pick(r, "error"):
            row[0] = join([str(row[0]), " ", badge(False, "failed")])
        rows.append(row)
    return table([c[0] for c in cols], rows, cls="bench")


def _bench_plot(ctx: Context, results: list[dict]) -> Raw:
    try:
        uri = png_file_uri(ctx.paths.bench_png)
    except (OSError, ValueError) as exc:
        uri = None
        warn = problem(f"bench.png not shown: {exc}")
    else:
        warn = Raw("")
    if uri is None:
        png = plots.latency(results)
        uri = data_uri(png, "image/png") if png else None
    if uri is None:
        return join([warn, note("no latency plot (no p50/batch-size figures)")])
    return join([warn, img(uri, "latency plot")])
