"""Batch-1 latency of the browser predictor (headless Chromium, onnxruntime-web wasm) next
to the Python predictor (onnxruntime CPU) on the same model and photos, side by side in
one run, plus their agreement.

    python benchmarks/web_latency.py --out benchmarks/results/web-latency-DATE
    python benchmarks/web_latency.py --run models/flowers        # an existing run

Without ``--run`` a MobileNetV2 (alpha 0.35, as tests/fixtures/runs.py builds it) at 224 px (``weights=None``, trained one epoch on a few
flower photos: latency does not depend on the weights) is built in a temporary folder.
The page runs onnxruntime-web on one thread (a static server sends no cross-origin
isolation headers, so wasm threads are off); the Python predictor is timed with 1 thread
and with onnxruntime's default. Needs Chromium and onnxruntime-web (see
``edgeclf.export.ort_web``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {"median_ms": round(float(np.median(a)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2), "n": int(a.size)}


def python_latency(model: Path, photos: list[Path], threads: int | None, repeats: int) -> dict:
    from edgeclf.runtime import Predictor

    predictor = Predictor.from_path(model, threads=threads)
    x = predictor.preprocess(photos).array
    predictor.run(x[:1])                                           # warm-up
    run_ms, total_ms = [], []
    for _ in range(repeats):
        for i, photo in enumerate(photos):
            t0 = time.perf_counter()
            predictor.run(x[i:i + 1])
            run_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            predictor.predict_proba([photo])
            total_ms.append((time.perf_counter() - t0) * 1e3)
    probs = predictor.predict_proba(photos)
    return {"run": _stats(run_ms), "decode_preprocess_run": _stats(total_ms)}, probs


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.processor())
    chromium = subprocess.run(["chromium", "--version"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": cpu, "loadavg": list(os.getloadavg()),
            "chromium": chromium.stdout.strip(), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="an exported run (default: build one)")
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" /
                    "flowers")
    ap.add_argument("--images", type=int, default=30, help="photos (spread over classes)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes (after a warm-up)")
    ap.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = ap.parse_args()

    from edgeclf.export import ExportConfig, export_run
    from tests.fixtures.webharness import run_page

    per_class = max(1, args.images // len(CLASSES))
    photos = [p for c in CLASSES for p in sorted((args.data / c).glob("*.jpg"))[-per_class:]]
    with tempfile.TemporaryDirectory(prefix="edgeclf-web-bench-") as tmp:
        run = args.run
        if run is None:
            from tests.fixtures.runs import make_trained_run

            run = make_trained_run(tmp, backbone="mobilenetv2", image_size=224,
                                   data_dir=args.data, per_class=4, epochs=1).root
        export = export_run(run, ExportConfig(formats=("onnx", "web"), quantizations=("none",)))
        assert export.ok, [a.message for a in export.artifacts]
        folder = Path(run) / "export" / "web"
        load0 = list(os.getloadavg())
        t0 = time.perf_counter()
        report = run_page(folder, photos, repeats=args.repeats + 1, timeout=900)
        browser_s = time.perf_counter() - t0
        if "fatal" in report:
            raise SystemExit(f"the page failed: {report['fatal']}")
        browser = np.array([r["probs"] for r in report["results"]])
        py1, probs = python_latency(folder / "model.onnx", photos, 1, args.repeats)
        pydef, _ = python_latency(folder / "model.onnx", photos, None, args.repeats)
        model_bytes = (folder / "model.onnx").stat().st_size
    results = [r for r in report["results"] if "ms" in r]
    data = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {**machine(), "loadavg_before_browser": load0},
        "model": {"run": str(args.run or "built: MobileNetV2 alpha 0.35 (tests/fixtures/runs.py), 224 px, weights=None"),
                  "onnx_bytes": model_bytes},
        "photos": len(photos),
        "browser": {"model_load_ms": round(report["load_ms"], 1),
                    "run": _stats([r["ms"]["run"] for r in results]),
                    "decode_preprocess": _stats([r["ms"]["prepare"] for r in results]),
                    "decode_preprocess_run": _stats([r["ms"]["run"] + r["ms"]["prepare"]
                                                     for r in results]),
                    "threads": 1, "wall_s": round(browser_s, 1)},
        "python_1_thread": py1, "python_default_threads": pydef,
        "agreement": {"top1": float((browser.argmax(1) == probs.argmax(1)).mean()),
                      "max_abs_diff": float(np.abs(browser - probs).max())},
    }
    text = json.dumps(data, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(text + "\n")
        args.out.with_suffix(".md").write_text(render(data))


def render(d: dict) -> str:
    b, p1, pd = d["browser"], d["python_1_thread"], d["python_default_threads"]
    m = d["machine"]
    rows = [("model only (session.run)", b["run"], p1["run"], pd["run"]),
            ("decode + preprocess + run", b["decode_preprocess_run"],
             p1["decode_preprocess_run"], pd["decode_preprocess_run"])]
    lines = [
        "# Browser predictor latency (batch 1) next to the Python predictor", "",
        f"- date: {d['date']}", f"- command: `{d['command']}`",
        f"- machine: {m['nproc']} cores, {m['cpu']}; {m['chromium']}; Python {m['python']}",
        f"- load average: {m['loadavg_before_browser']} before the browser run, "
        f"{m['loadavg']} at the end (the machine is shared: compare the columns, which "
        "ran side by side, not absolute figures)",
        f"- model: {d['model']['run']}, ONNX {d['model']['onnx_bytes'] / 1e6:.1f} MB, "
        f"float32; {d['photos']} flower photos",
        f"- browser: onnxruntime-web 1.30.0 wasm, 1 thread, headless Chromium; model load "
        f"{b['model_load_ms']:.0f} ms",
        f"- agreement browser vs Python: top-1 {d['agreement']['top1']:.0%}, max |dp| "
        f"{d['agreement']['max_abs_diff']:.1e}", "",
        "| median (p90) ms | browser (wasm, 1 thread) | Python onnxruntime, 1 thread | "
        "Python onnxruntime, default threads |", "|---|---|---|---|"]
    for name, *cols in rows:
        lines.append(f"| {name} | " + " | ".join(
            f"{c['median_ms']:.1f} ({c['p90_ms']:.1f})" for c in cols) + " |")
    lines += ["", f"Browser decode + preprocess alone: {b['decode_preprocess']['median_ms']:.1f}"
              f" ms median (createImageBitmap + Pillow-exact resampling in JavaScript).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
