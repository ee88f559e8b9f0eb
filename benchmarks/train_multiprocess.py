"""Data-parallel training across processes (issue 17 item 4): 1 process vs 2 processes on
this machine (JAX, gloo collectives over localhost), the same global batch, epochs, seed
and data: val/test accuracy and time side by side. The goal: 2 processes reach the val
accuracy of 1 process within 1 point.

    python benchmarks/train_multiprocess.py --data ../shared/data/sign-language-digits \\
        --size 96 --batch 32 --epochs 4

Both are plain ``edgeclf train`` commands (printed in the result); the 2-process run is two
of them with ``--num-processes 2 --process-id 0|1 --coordinator 127.0.0.1:PORT``. Each
process gets one CPU device (XLA_FLAGS unset). Writes
benchmarks/results/train-multiprocess-<date>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data_scale import RESULTS, ROOT, machine

WEIGHTS = ROOT.parent / "shared" / "weights" / \
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(args: argparse.Namespace, out: Path, name: str) -> list[str]:
    return ["train", str(args.data), "--out", str(out), "--name", name, "--backend", "jax",
            "--backbone", "mobilenetv2_0.35", "--weights", args.weights,
            "--image-size", str(args.size), "--strategy", "fine-tune",
            "--epochs", str(args.epochs), "--fine-tune-epochs", str(args.fine_tune_epochs),
            "--batch-size", str(args.batch), "--seed", str(args.seed), "--patience", "0"]


def run(args: argparse.Namespace, out: Path, processes: int, env: dict) -> dict:
    """One run of ``processes`` processes; its metrics.json, wall time and commands."""
    name = f"p{processes}"
    base = [sys.executable, "-m", "edgeclf", *train_args(args, out, name)]
    if processes == 1:
        cmds = [base]
    else:
        coord = f"127.0.0.1:{free_port()}"
        cmds = [[*base, "--num-processes", str(processes), "--process-id", str(i),
                 "--coordinator", coord] for i in range(processes)]
    t0 = time.perf_counter()
    logs = [open(out / f"{name}-{i}.log", "w") for i in range(len(cmds))]  # noqa: SIM115
    procs = [subprocess.Popen(c, stdout=f, stderr=subprocess.STDOUT, env=env)
             for c, f in zip(cmds, logs)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    for f in logs:
        f.close()
    if any(codes):
        tail = (out / f"{name}-0.log").read_text()[-3000:]
        raise SystemExit(f"{name}: exit codes {codes}\n{tail}")
    metrics = json.loads((out / name / "metrics.json").read_text())
    return {"processes": processes, "wall_seconds": round(wall, 1),
            "train_seconds": metrics["train_seconds"],
            "images_per_second": metrics["images_per_second"],
            "val_accuracy": metrics["val"]["accuracy"],
            "test_accuracy": metrics["test"]["accuracy"],
            "val_n": metrics["val"]["n"], "best_epoch": metrics["best_epoch"],
            "commands": [" ".join(["edgeclf", *c[3:]]) for c in cmds]}


def write(result: dict, stem: Path) -> None:
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = result["runs"]
    m = result["machine"]
    lines = [f"# Training across processes: 1 vs 2 ({result['date']})", "",
             (f"Machine: {m['cpu']}, {m['cores']} cores, load average at start "
              f"{m['load_average']}, at end {result['load_average_end']}."), "",
             f"Data: `{result['data']}`; mobilenetv2_0.35, {result['settings']}.", "",
             "| processes | val accuracy | test accuracy | best epoch | train s | img/s | wall s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['processes']} | {100 * r['val_accuracy']:.2f} % | "
              f"{100 * r['test_accuracy']:.2f} % | {r['best_epoch']} | {r['train_seconds']} | "
              f"{r['images_per_second']} | {r['wall_seconds']} |" for r in rows]
    diff = 100 * abs(rows[0]["val_accuracy"] - rows[1]["val_accuracy"])
    lines += ["", (f"Val accuracy difference: {diff:.2f} points (goal: within 1 point; "
                   f"{rows[0]['val_n']} val images, one image = "
                   f"{100 / rows[0]['val_n']:.2f} points)."), "",
              ("train s and img/s are metrics.json's: the epochs' time, XLA compilation of "
               "the train step included; wall s is the whole command (start-up, decoding, "
               "evaluation, report), for 2 processes until both ended."), "", "Commands:", ""]
    lines += [f"    {c}" for r in rows for c in r["commands"]]
    lines += ["", f"Script: `python benchmarks/train_multiprocess.py {result['argv']}`", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" /
                   "sign-language-digits")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--fine-tune-epochs", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.is_file() else "imagenet")
    p.add_argument("--out", type=Path, default=None, help="Result stem (default: "
                   "benchmarks/results/train-multiprocess-<date>).")
    args = p.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no such dataset folder")
    started = machine()
    with tempfile.TemporaryDirectory(prefix="edgeclf-mp-") as tmp:
        out = Path(tmp)
        env = {**os.environ, "KERAS_BACKEND": "jax", "EDGECLF_CACHE_DIR": str(out / "cache"),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("XLA_FLAGS", None)
        runs = [run(args, out, n, env) for n in (1, 2)]
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": started, "load_average_end": [round(x, 2) for x in os.getloadavg()],
              "data": str(args.data),
              "settings": f"{args.size} px, global batch {args.batch}, {args.epochs} head "
                          f"epoch(s) + {args.fine_tune_epochs} fine-tune epoch(s), seed "
                          f"{args.seed}, weights {Path(args.weights).name}",
              "argv": " ".join(sys.argv[1:]), "runs": runs}
    write(result, args.out or RESULTS / f"train-multiprocess-{date}")
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
