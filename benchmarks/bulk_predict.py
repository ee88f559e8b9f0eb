"""Bulk `edgeclf predict` on a folder of generated images (issue 17 item 5): images/s next
to the bare model's rate, and the command's memory over the run.

- bare model: ``Predictor.run`` on an already preprocessed batch, repeated (no decoding, no
  output): the ceiling. Measured before and after the bulk run (the machine is shared).
- bulk: ``edgeclf predict MODEL FOLDER --json`` in a subprocess; its JSON lines are read as
  they arrive and its resident memory (VmRSS) sampled every ``--every`` lines.

    python benchmarks/bulk_predict.py --n 100000 --work /tmp/edgeclf-bulk

Default model: the Coral ``mobilenet_v1_0.25_128_quant.tflite`` with its ImageNet labels
(../shared/reference-models/coral). Writes benchmarks/results/bulk-predict-<date>.md/.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data_scale import RESULTS, generate, machine  # noqa: E402

CORAL = HERE.parents[1] / "shared" / "reference-models" / "coral"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare_rate(model: Path, labels: Path | None, folder: Path, batch: int, seconds: float) -> float:
    from edgeclf.runtime import Predictor

    with Predictor.from_path(model, labels=labels) as pred:
        files = sorted(str(p) for p in next(folder.iterdir()).iterdir())[:batch]
        x = pred.preprocess(files).array
        pred.run(x)                                   # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            pred.run(x)
            n += len(x)
        return n / (time.perf_counter() - t0)


def bulk(model: Path, labels: Path | None, folder: Path, batch: int, every: int) -> dict:
    cmd = [sys.executable, "-m", "edgeclf", "predict", str(model), str(folder), "--json",
           "--batch-size", str(batch), "--top-k", "1"] + (["--labels", str(labels)] if labels else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples, n, first_at = [], 0, None
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        n += 1
        if n == 1:
            first_at = time.perf_counter() - t0
        if n % every == 0:
            samples.append({"lines": n, "seconds": round(time.perf_counter() - t0, 1),
                            "rss_mb": round(rss_mb(proc.pid), 1)})
            print(samples[-1], flush=True)
    err = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    total = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"predict failed ({proc.returncode}): {err[-2000:]}")
    steady = (n - 1) / (total - first_at) if first_at and n > 1 else float("nan")
    return {"images": n, "seconds": round(total, 1), "first_line_seconds": round(first_at or 0, 2),
            "images_per_second": n / total, "steady_images_per_second": steady,
            "rss_samples": samples, "command": " ".join(cmd[1:]), "stderr_tail": err[-300:]}


def interleaved(model: Path, labels: Path | None, folder: Path, batch: int, n: int,
                rounds: int) -> list[dict]:
    """Bare model and bulk stream alternated in one process over the same ``n`` files, wall
    and CPU time (all threads of the process) per round: CPU per image does not depend on
    what else the shared machine runs, and on a CPU-bound machine it sets the rate."""
    from edgeclf.runtime import Predictor
    from edgeclf.runtime.bulk import predict_stream

    files = sorted(str(p) for p in folder.rglob("*.jpg"))[:n]
    out = []
    with Predictor.from_path(model, labels=labels) as pred:
        x = pred.preprocess(files[:batch]).array
        pred.run(x)
        for r in range(rounds):
            w, c = time.perf_counter(), time.process_time()
            for _ in range(max(1, len(files) // batch)):
                pred.run(x)
            bare_n = max(1, len(files) // batch) * batch
            bare = (bare_n / (time.perf_counter() - w), (time.process_time() - c) / bare_n)
            w, c = time.perf_counter(), time.process_time()
            k = sum(1 for p in predict_stream(pred, files, top_k=1, batch_size=batch)
                    if json.dumps(p.to_dict()))
            stream = (k / (time.perf_counter() - w), (time.process_time() - c) / k)
            out.append({"round": r + 1, "bare_images_per_second": bare[0],
                        "bare_cpu_ms_per_image": bare[1] * 1e3,
                        "stream_images_per_second": stream[0],
                        "stream_cpu_ms_per_image": stream[1] * 1e3,
                        "cpu_ratio": bare[1] / stream[1], "wall_ratio": stream[0] / bare[0],
                        "load_average": round(os.getloadavg()[0], 2)})
            print(out[-1], flush=True)
    return out


def main_interleaved(args: argparse.Namespace) -> None:
    folder = args.work / "images"
    labels = args.labels if args.labels and args.labels.is_file() else None
    try:
        generate(folder, args.n, 2)
        rows = interleaved(args.model, labels, folder, args.batch, args.n, args.rounds)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
           "command": "python " + " ".join(sys.argv), "model": str(args.model), "rounds": rows,
           "cpu_ratio_mean": float(np.mean([r["cpu_ratio"] for r in rows])),
           "wall_ratio_mean": float(np.mean([r["wall_ratio"] for r in rows]))}
    stem = RESULTS / f"bulk-predict-interleaved{args.tag}-{out['date'][:10]}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    table = "\n".join(f"| {r['round']} | {r['bare_images_per_second']:.1f} | "
                      f"{r['stream_images_per_second']:.1f} | {r['bare_cpu_ms_per_image']:.2f} | "
                      f"{r['stream_cpu_ms_per_image']:.2f} | {r['cpu_ratio']:.2f} | "
                      f"{r['load_average']} |" for r in rows)
    stem.with_suffix(".md").write_text(
        f"# Bulk prediction vs the bare model, interleaved ({out['date']})\n\n"
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at the end "
        f"{m['load_average']} (shared)\n- command: `{out['command']}`\n"
        f"- model: `{args.model.name}`, batch {args.batch}, {args.n} generated 32x32 JPEGs per "
        f"round; bulk = `predict_stream` (what `edgeclf predict` runs) + one JSON line each\n\n"
        f"| round | bare img/s | bulk img/s | bare CPU ms/img | bulk CPU ms/img | "
        f"bare/bulk CPU per image | load |\n|---|---|---|---|---|---|---|\n{table}\n\n"
        f"On a CPU-bound machine the rate is set by CPU per image: bulk reaches "
        f"**{out['cpu_ratio_mean']:.2f}x** the bare model's rate by that measure (wall-time "
        f"ratio {out['wall_ratio_mean']:.2f}, at the load above).\n")
    print(f"wrote {stem.with_suffix('.md')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100000)
    p.add_argument("--work", type=Path, default=Path("/tmp/edgeclf-bulk"))
    p.add_argument("--model", type=Path, default=CORAL / "mobilenet_v1_0.25_128_quant.tflite")
    p.add_argument("--labels", type=Path, default=CORAL / "imagenet_labels.txt")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--every", type=int, default=10000)
    p.add_argument("--bare-seconds", type=float, default=20.0)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--tag", default="", help="appended to the results file name")
    p.add_argument("--interleaved", action="store_true", help="bare and bulk alternated in "
                   "one process, CPU time per image (no subprocess, no memory trace)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.interleaved:
        main_interleaved(args)
        return
    folder = args.work / "images"
    labels = args.labels if args.labels and args.labels.is_file() else None
    try:
        gen = generate(folder, args.n, 10)
        before = bare_rate(args.model, labels, folder, args.batch, args.bare_seconds)
        print(f"bare model before: {before:.1f} img/s", flush=True)
        res = bulk(args.model, labels, folder, args.batch, args.every)
        after = bare_rate(args.model, labels, folder, args.batch, args.bare_seconds)
        print(f"bare model after: {after:.1f} img/s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    bare = (before + after) / 2
    rss = [s["rss_mb"] for s in res["rss_samples"]]
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
           "command": "python " + " ".join(sys.argv), "model": str(args.model),
           "generated": {"images": args.n, "seconds": round(gen, 1)},
           "bare_images_per_second": {"before": before, "after": after, "mean": bare},
           "bulk": res, "ratio_total": res["images_per_second"] / bare,
           "ratio_steady": res["steady_images_per_second"] / bare,
           "rss_mb_first_last_max": [rss[0], rss[-1], max(rss)] if rss else []}
    day = out["date"][:10]
    stem = RESULTS / f"bulk-predict{args.tag}-{day}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    rows = "\n".join(f"| {s['lines']:,} | {s['seconds']} | {s['rss_mb']} |"
                     for s in res["rss_samples"])
    stem.with_suffix(".md").write_text(
        f"# Bulk `edgeclf predict` on {args.n:,} images ({out['date']})\n\n"
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at the end "
        f"{m['load_average']} (shared machine)\n- command: `{out['command']}`\n"
        f"- model: `{args.model.name}`, batch {args.batch}; images: generated 32x32 JPEGs\n\n"
        f"| | images/s |\n|---|---|\n"
        f"| bare model (`Predictor.run`, preprocessed batch), before / after | "
        f"{before:.1f} / {after:.1f} |\n"
        f"| `edgeclf predict --json` over the folder, whole run (process start included) | "
        f"{res['images_per_second']:.1f} |\n"
        f"| same, after the first line | {res['steady_images_per_second']:.1f} |\n\n"
        f"Bulk / bare: {out['ratio_total']:.2f} (whole run), {out['ratio_steady']:.2f} "
        f"(steady).\n\nResident memory of the predict process while it streams:\n\n"
        f"| lines out | seconds | RSS MB |\n|---|---|---|\n{rows}\n")
    print(f"wrote {stem.with_suffix('.md')}")
    print(json.dumps({k: out[k] for k in ("ratio_total", "ratio_steady", "rss_mb_first_last_max")}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
