"""Parity of every exported artifact of a run on its held-out photos, recorded as a result.

    # a trained, exported MobileNetV2 run (see benchmarks/README.md), then:
    python benchmarks/parity_flowers.py models/flowers-mnv2

Runs `edgeclf parity` (library: edgeclf.parity.check_parity, which also writes the run's
parity.json and the manifest's parity summaries) and writes
``benchmarks/results/parity-<name>.md`` and ``.json``: date, machine, load, commands, the
reference accuracy and, per artifact, top-1 agreement, max/mean |Δp|, accuracy, its change
versus the Keras checkpoint, flips, batch 1 vs batch >1 and the budget verdict; plus the int8
TFLite accuracy versus float32 TFLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({model or platform.processor() or 'unknown'}), " \
           f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def _row(a: dict) -> str:
    verdict = "PASS" if a["passed"] else "FAIL: " + "; ".join(
        a["breaches"] + ([a["error"]] if a.get("error") else []))
    diff = "—" if a["max_abs_diff"] is None else f"{a['max_abs_diff']:.1e}"
    mean = "—" if a["mean_abs_diff"] is None else f"{a['mean_abs_diff']:.1e}"
    delta = "—" if a["accuracy_delta"] is None else f"{a['accuracy_delta']:+.2f}"
    batch = a.get("batch") or {}
    b = "—" if not batch else f"{batch['agreement']:.2%} (max {batch['max_abs_diff']:.1e})"
    return (f"| {a['file']} | {a['format']} | {a['quantization']} | {_pct(a['agreement'])} | "
            f"{diff} | {mean} | {_pct(a['accuracy'])} | {delta} | {a['n_flipped']} | {b} | "
            f"{verdict} |")


def int8_vs_float(artifacts: list[dict], fmt: str) -> str | None:
    by_q = {a["quantization"]: a for a in artifacts if a["format"] == fmt}
    f32, i8 = by_q.get("none"), by_q.get("int8")
    if not f32 or not i8 or f32["accuracy"] is None or i8["accuracy"] is None:
        return None
    return (f"{fmt} int8 accuracy {i8['accuracy']:.2%} vs float32 {f32['accuracy']:.2%}: "
            f"{(i8['accuracy'] - f32['accuracy']) * 100:+.2f} points "
            f"(top-1 agreement with the checkpoint {i8['agreement']:.2%})")


def render(data: dict, *, run: Path, seconds: float, argv: list[str]) -> str:
    ref = data["reference"]
    lines = [
        f"# Parity: {run.name}", "",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {machine()}; load average before: {data['_load']}",
        f"- command: `python benchmarks/parity_flowers.py {' '.join(argv)}` "
        f"(= `edgeclf parity {run}`), {seconds:.0f} s",
        f"- split: {data['split']}, {data['n_images']} images, {data['n_skipped']} skipped; "
        f"batch sizes {data['batch_sizes']}",
        f"- reference (Keras checkpoint `{Path(ref['file']).name}`): accuracy "
        f"{_pct(ref['accuracy'])}, top-5 {_pct(ref['top5'])}",
        f"- run: {data['_run']}",
        f"- verdict: **{'PASS' if data['passed'] else 'FAIL'}**", "",
        "| artifact | format | quant | top-1 agreement | max abs Δp | mean abs Δp | accuracy | "
        "Δacc (pt) | flips | batch 1 = batch N | budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[_row(a) for a in data["artifacts"]], ""]
    for fmt in ("tflite", "onnx"):
        line = int8_vs_float(data["artifacts"], fmt)
        if line:
            lines.append(f"- {line}")
    modes = sorted({f"{a['file']}: {a['batch']['mode']}" for a in data["artifacts"]
                    if a.get("batch")})
    lines += ["", "Batch handling per artifact:", *[f"- {m}" for m in modes]]
    if data["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in data["warnings"]]]
    return "\n".join(lines) + "\n"


def describe_run(run: Path) -> str:
    """Backbone, size, strategy and weights from run.json; artifact count from the manifest."""
    try:
        info = json.loads((run / "run.json").read_text())
        manifest = json.loads((run / "export" / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        return f"{run} ({e})"
    cfg = info.get("config") or {}
    keys = ("strategy", "weights", "epochs", "batch_size")
    extra = ", ".join(f"{k} {cfg[k]}" for k in keys if cfg.get(k) is not None)
    return (f"`{run}`: backbone {info.get('backbone')}, {info.get('image_size')} px, "
            f"{len(info.get('classes', []))} classes, created {info.get('created')}"
            + (f", {extra}" if extra else "")
            + f"; {len(manifest['artifacts'])} artifacts in export/manifest.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--name", default="flowers", help="results/parity-<name>.md|json")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from edgeclf.parity import check_parity

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = check_parity(args.run, split=args.split, max_images=args.max_images)
    seconds = time.perf_counter() - t0
    data = result.to_dict()
    data["_load"] = f"{load:.2f}"
    data["_run"] = describe_run(args.run)
    out = HERE / "results" / f"parity-{args.name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    md = render(data, run=args.run, seconds=seconds, argv=sys.argv[1:])
    out.with_suffix(".md").write_text(md)
    data["seconds"] = round(seconds, 1)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(md)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
