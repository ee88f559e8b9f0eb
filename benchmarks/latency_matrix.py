"""The latency matrix of a trained, exported run: every artifact x batch size x threads, with
the baselines (Keras predict / direct call, SavedModel, bare TFLite + XNNPACK) measured in
the same run, top-1 accuracy of each ONNX/TFLite artifact on the run's test split, and the
goals of issue 7 checked against the figures.

    # CPU (any machine with the project installed, `pip install -e '.[train]'`):
    python benchmarks/latency_matrix.py models/flowers-mnv2
    # GPU (a machine with onnxruntime-gpu and an NVIDIA GPU): float32 + float16 ONNX,
    # numpy I/O vs IO binding (+ CUDA graphs), batch 1..256
    python benchmarks/latency_matrix.py models/flowers-mnv2 --device gpu --cuda-graph

Writes ``benchmarks/results/bench-<cpu|gpu>-<UTC date>.json`` and ``.md`` (date, machine,
load, command, figures) and appends the same entry to the run's ``bench.json``. A model
file (e.g. ``../shared/reference-models/coral/mobilenet_v2_1.0_224_quant.tflite --labels
imagenet_labels.txt``) gets ``bench-cpu-<stem>-<date>.*`` and no accuracy. Every job
runs in a fresh process (see edgeclf/bench/). Exit code 1 with ``Error: ...`` when the
run, the export or the GPU is missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

from edgeclf.bench import BenchConfig, run_bench, save_bench
from edgeclf.errors import EdgeclfError, RunError
from edgeclf.fsutil import write_json, write_text
from edgeclf.run import RunPaths

RESULTS = Path(__file__).resolve().parent / "results"
MAKE_RUN = ("edgeclf train /work/shared/data/flowers --backbone mobilenetv2 --weights "
            "/work/shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5 "
            "--strategy linear-probe --name flowers-mnv2 && edgeclf export models/flowers-mnv2 "
            "--format all --quantize none --quantize dynamic --quantize float16 "
            "--quantize int8")
GPU_BATCHES = (1, 8, 32, 64, 128, 256)
INT8_SPEEDUP_GOAL, INT8_DROP_GOAL = 1.5, 1.0
GPU_B1_GOAL_MS, GPU_B128_GOAL_IPS = 0.3, 25_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="run directory with export/manifest.json, or one "
                   "model file (.onnx/.tflite; e.g. a third-party model, with --labels)")
    p.add_argument("--labels", type=Path, default=None,
                   help="labels file for a model file without edgeclf metadata")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--batch-sizes", default=None, help="default 1,8,32 (cpu), 1..256 (gpu)")
    p.add_argument("--threads", default="1,2", help="CPU intra-op threads (default 1,2)")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--seconds", type=float, default=None,
                   help="time budget per row instead of --runs (bounds the total time)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--cuda-graph", action="store_true", help="GPU: also time CUDA graphs")
    p.add_argument("--accuracy-images", type=int, default=0,
                   help="test images for top-1 accuracy (0 = the whole test split, "
                        "-1 = skip)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def accuracy(run: Path, limit: int) -> dict[str, dict]:
    """Top-1 accuracy of every ONNX/TFLite artifact on the same preprocessed test images."""
    from edgeclf.data.split import Split
    from edgeclf.runtime import Predictor, preprocess_batch
    from edgeclf.runtime.manifest import load_manifest

    paths = RunPaths(run)
    if not paths.split.is_file():
        return {}
    split = Split.read(paths.split)
    files = [Path(split.root) / p for p in split.test]
    labels = np.asarray(split.labels("test"))
    if limit > 0:
        files, labels = files[:limit], labels[:limit]
    out: dict[str, dict] = {}
    pixels = None
    for entry in load_manifest(paths.export_dir)["artifacts"]:
        if entry["format"] not in ("onnx", "tflite"):
            continue
        with Predictor.from_path(run, format=entry["format"],
                                 quantization=entry["quantization"]) as pred:
            if pixels is None:
                batch = preprocess_batch(files, pred.contract)
                pixels, labels = batch.array, labels[batch.ok]
            pred_labels = np.concatenate([pred.run(pixels[i:i + 64]).argmax(1)
                                          for i in range(0, len(pixels), 64)])
        out[entry["file"]] = {"format": entry["format"],
                              "quantization": entry["quantization"],
                              "bytes": entry.get("bytes"), "images": int(len(labels)),
                              "top1": round(float((pred_labels == labels).mean()), 4)}
    return out


def interleaved_check(run: Path, threads: int = 2, rounds: int = 15, calls: int = 10) -> dict:
    """Batch 1, float32: onnxruntime under three spinning policies (its default: spinning,
    also ~50 ms after each run; spinning within runs only, what the predictor uses; never
    spinning), and a bare LiteRT/XNNPACK interpreter, taking turns in one process so that
    all see the same machine load."""
    import time

    import onnxruntime as ort

    from edgeclf.bench.models import open_tflite_xnnpack
    from edgeclf.bench.plan import Job
    from edgeclf.runtime.manifest import load_manifest

    manifest = load_manifest(RunPaths(run).export_dir)
    files = {(a["format"], a["quantization"]): a["file"] for a in manifest["artifacts"]}
    if ("onnx", "none") not in files or ("tflite", "none") not in files:
        return {}
    onnx_path = str(RunPaths(run).export_dir / files[("onnx", "none")])

    def session(spin: bool, stop: bool = False) -> object:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.add_session_config_entry("session.force_spinning_stop", "1" if stop else "0")
        return ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    x = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    spin, inrun, nospin = session(True), session(True, stop=True), session(False)
    name = spin.get_inputs()[0].name
    dtype = np.uint8 if spin.get_inputs()[0].type == "tensor(uint8)" else np.float32
    tflite = RunPaths(run).export_dir / files[("tflite", "none")]
    xnn = open_tflite_xnnpack(Job(artifact="tflite-xnnpack", runner="tflite-xnnpack",
                                  path=str(tflite), format="tflite", quantization="none",
                                  device="cpu", threads=threads, batch_sizes=(1,),
                                  warmup=0, runs=calls, seconds=None))
    fns = {"onnxruntime (spinning, its default)":
           lambda: spin.run(None, {name: x.astype(dtype)}),
           "onnxruntime (spinning within runs)":
           lambda: inrun.run(None, {name: x.astype(dtype)}),
           "onnxruntime (never spinning, as the predictor)":
           lambda: nospin.run(None, {name: x.astype(dtype)}),
           "LiteRT + XNNPACK (bare)": lambda: xnn.infer(x)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            time.sleep(0.1)     # let the previous session's spinning threads go idle
            fn()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
    return {k: round(float(np.median(v)), 2) for k, v in times.items()}


def pick(rows: list[dict], **match: object) -> dict | None:
    for r in rows:
        if r["status"] == "ok" and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def cpu_goals(rows: list[dict], acc: dict[str, dict], machine: dict) -> list[dict]:
    goals = []
    onnx = pick(rows, format="onnx", quantization="none", runner="predictor", batch_size=1,
                threads=2)
    xnn = pick(rows, runner="tflite-xnnpack", batch_size=1, threads=2)
    if onnx and xnn:
        goals.append({"goal": "ONNX float32 predictor, batch 1, 2 threads, no slower than "
                              "TFLite float32 + XNNPACK (p50)",
                      "figures": f"{onnx['p50_ms']:.2f} ms vs {xnn['p50_ms']:.2f} ms "
                                 f"(ratio {xnn['p50_ms'] / onnx['p50_ms']:.2f}x)",
                      "met": onnx["p50_ms"] <= xnn["p50_ms"]})
    for fmt in ("onnx", "tflite"):
        f32 = [r for r in rows if r["format"] == fmt and r["quantization"] == "none"
               and r["runner"] == "predictor" and r["status"] == "ok"]
        for r32 in f32:
            r8 = pick(rows, format=fmt, quantization="int8", runner="predictor",
                      batch_size=r32["batch_size"], threads=r32["threads"])
            if r8 is None:
                continue
            speed = r32["p50_ms"] / r8["p50_ms"]
            a32, a8 = acc.get(r32["artifact"], {}), acc.get(r8["artifact"], {})
            drop = (a32["top1"] - a8["top1"]) * 100 if a32 and a8 else None
            goals.append({
                "goal": f"{fmt} int8 >= {INT8_SPEEDUP_GOAL}x float32 with <= "
                        f"{INT8_DROP_GOAL} point drop (batch {r32['batch_size']}, "
                        f"{r32['threads']} threads)",
                "figures": f"{r32['p50_ms']:.2f} -> {r8['p50_ms']:.2f} ms ({speed:.2f}x), "
                           + (f"top-1 {a32['top1'] * 100:.2f}% -> {a8['top1'] * 100:.2f}% "
                              f"(drop {drop:.2f} points)" if drop is not None
                              else "accuracy not measured"),
                "met": speed >= INT8_SPEEDUP_GOAL and drop is not None
                and drop <= INT8_DROP_GOAL})
    if not machine["cpu"]["int8_dot_product"]:
        goals.append({"goal": "int8 hardware on this CPU", "met": None,
                      "figures": f"{machine['cpu']['model']}: flags {machine['cpu']['flags']}, "
                                 "no VNNI/AVX-VNNI/AMX: int8 convolutions use AVX2 "
                                 "multiply-add sequences (vpmaddubsw + vpmaddwd), so int8 "
                                 "gains come from memory traffic, not from faster arithmetic"})
    return goals


def gpu_goals(rows: list[dict]) -> list[dict]:
    goals = []
    b1 = [r for r in rows if r["batch_size"] == 1 and r["status"] == "ok"]
    b128 = [r for r in rows if r["batch_size"] == 128 and r["status"] == "ok"]
    if b1:
        best = min(b1, key=lambda r: r["p50_ms"])
        goals.append({"goal": f"batch 1 <= {GPU_B1_GOAL_MS} ms", "met": best["p50_ms"]
                      <= GPU_B1_GOAL_MS, "figures": f"{best['p50_ms']:.3f} ms "
                      f"({best['artifact']}, {best['mode']})"})
    if b128:
        best = max(b128, key=lambda r: r["images_per_second"])
        goals.append({"goal": f"batch 128 >= {GPU_B128_GOAL_IPS:,} images/s",
                      "met": best["images_per_second"] >= GPU_B128_GOAL_IPS,
                      "figures": f"{best['images_per_second']:,.0f} img/s "
                                 f"({best['artifact']}, {best['mode']})"})
    return goals


def markdown(report: dict) -> str:
    m, e = report["machine"], report["entry"]
    lines = [f"# edgeclf latency matrix, {report['device'].upper()}, {e['date']}", "",
             f"- Machine: {m['cpu']['model']}, {m['cpu']['usable_cores']} usable cores, "
             f"flags {', '.join(m['cpu']['flags']) or '-'}, {m['memory_gib']} GiB; GPUs: "
             f"{', '.join(g['name'] for g in m['gpus']) or 'none'}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"- Load average (1/5/15 min) at start {m['load_average_start']}, at end "
             f"{m['load_average_end']} (figures taken under load, e.g. when the load "
             "average nears the core count, are noisy)",
             f"- Command: `{report['command']}`",
             f"- Run: `{report['run']}`; "
             + (f"{e['config']['runs']} timed runs" if e['config']['runs'] else
                f"timed calls for {e['config']['seconds']} s (at least 3)")
             + f" after {e['config']['warmup']} warm-up calls per row; each job in a fresh "
             "process", "",
             "## Goals", ""]
    for g in report["goals"]:
        mark = {True: "met", False: "NOT met", None: "note"}[g["met"]]
        lines.append(f"- **{mark}** {g['goal']}: {g['figures']}")
    if report.get("interleaved_batch1_p50_ms"):
        lines += ["", "## Batch 1, 2 threads, float32, taking turns in one process (median ms)",
                  ""] + [f"- {k}: {v}" for k, v in report["interleaved_batch1_p50_ms"].items()]
    if report["accuracy"]:
        lines += ["", "## Top-1 accuracy on the test split (same preprocessed images)", "",
                  "| artifact | format | quantization | MiB | images | top-1 |",
                  "|---|---|---|---|---|---|"]
        for f, a in report["accuracy"].items():
            lines.append(f"| {f} | {a['format']} | {a['quantization']} | "
                         f"{(a['bytes'] or 0) / 2**20:.1f} | {a['images']} | "
                         f"{a['top1'] * 100:.2f}% |")
    lines += ["", "## Latency (ms per batch) and throughput", "",
              "| artifact | quant | provider | mode | threads | batch | p50 | p90 | p99 | "
              "img/s | cold start ms | preprocess ms/img | peak RSS MB | speedup |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failed: dict[tuple, str] = {}
    for r in e["results"]:
        if r["status"] != "ok":
            failed.setdefault((r["artifact"], r["runner"], r["device"]), r["error"])
            continue
        pre = r["preprocess_ms_per_image"]
        speed = f"{r['speedup']:.2f}x vs {r['speedup_vs']}" if r["speedup"] else "-"
        lines.append(f"| {r['artifact']} | {r['quantization']} | {r['provider']} | "
                     f"{r['mode']} | {r['threads']} | {r['batch_size']} | {r['p50_ms']:.2f} | "
                     f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['images_per_second']:,.1f} | "
                     f"{r['cold_start_ms']:.0f} | {'-' if pre is None else f'{pre:.2f}'} | "
                     f"{r['peak_rss_mb']:.0f} | {speed} |")
    if failed:
        lines += ["", "## Failed rows", ""]
        lines += [f"- {a} ({runner}, {dev}): {err}" for (a, runner, dev), err in failed.items()]
    lines += ["", "Re-run: see benchmarks/README.md.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    paths = RunPaths(args.run)
    single = args.run.is_file()
    if not single and not paths.manifest.is_file():
        raise RunError(f"{args.run} has no export/manifest.json; make the run with: {MAKE_RUN}")
    gpu = args.device == "gpu"
    cfg = BenchConfig(
        device=args.device, runs=None if args.seconds else args.runs, seconds=args.seconds,
        warmup=args.warmup,
        batch_sizes=ints(args.batch_sizes) if args.batch_sizes else
        (GPU_BATCHES if gpu else (1, 8, 32)),
        threads=None if gpu else ints(args.threads), formats=("onnx",) if gpu else None,
        baselines=not gpu, exhaustive=not gpu,    # the Keras baselines too
        labels=str(args.labels) if args.labels else None,
        gpu_modes=("numpy", "iobinding") + (("cuda-graph",) if args.cuda_graph else ()))
    entry = run_bench(paths.root, cfg, progress=lambda i, n, what: print(
        f"[{i}/{n}] {what}", file=sys.stderr, flush=True))
    if not single:           # a model file's history is the results file itself
        save_bench(entry, paths.root)
    acc = {} if args.accuracy_images < 0 or gpu or single else accuracy(paths.root,
                                                                        args.accuracy_images)
    report = {"device": args.device, "run": str(paths.root),
              "command": "python benchmarks/latency_matrix.py " + " ".join(argv),
              "machine": entry.machine, "accuracy": acc,
              "interleaved_batch1_p50_ms": {} if gpu or single else
              interleaved_check(paths.root),
              "goals": gpu_goals(entry.results) if gpu else
              cpu_goals(entry.results, acc, entry.machine), "entry": entry.to_entry()}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    base = args.out / (f"bench-{args.device}-{args.run.stem}-{stamp}" if single
                       else f"bench-{args.device}-{stamp}")
    write_json(f"{base}.json", report)          # not with_suffix: stems may hold dots
    write_text(f"{base}.md", markdown(report))
    print(markdown(report))
    print(f"Wrote {base}.json and {base}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except EdgeclfError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(1)
