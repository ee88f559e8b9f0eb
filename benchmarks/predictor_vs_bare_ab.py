"""A/B in fresh processes, alternating: the predictor vs the bare runtime on the same file,
through `edgeclf bench`'s own job runner (issue 15: is the gap between the two bench rows the
predictor's, or the load changing between two sequential jobs?).

    python benchmarks/predictor_vs_bare_ab.py EXPORT_DIR [--format tflite|onnx] [--pairs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeclf.bench import Job, run_isolated  # noqa: E402


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", type=Path)
    p.add_argument("--format", choices=("tflite", "onnx"), default="tflite")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    model = args.export / f"model.{args.format}"
    base = dict(format=args.format, quantization="none", device="cpu", threads=args.threads,
                batch_sizes=(1,), warmup=3, runs=args.runs, seconds=None, path=str(model))
    bare = "tflite-xnnpack" if args.format == "tflite" else "onnx-bare"
    jobs = {"predictor": Job(**base, artifact=model.name, runner="predictor",
                             source=str(args.export)),
            "bare": Job(**base, artifact=bare, runner=bare)}
    print(f"load average before {[round(v, 2) for v in os.getloadavg()]}")
    print("| pair | predictor p50 ms | bare p50 ms | predictor / bare |\n|---|---|---|---|")
    for i in range(args.pairs):
        got = {k: run_isolated(j, 900)[0] for k, j in jobs.items()}
        a, b = got["predictor"]["p50_ms"], got["bare"]["p50_ms"]
        print(f"| {i + 1} | {a} | {b} | {a / b:.3f} |" if a and b else
              f"| {i + 1} | failed: {got['predictor']['error'] or got['bare']['error']} |")
    print(f"load average after {[round(v, 2) for v in os.getloadavg()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
