"""Kill `edgeclf train` with SIGKILL at random moments, resume it each time, check the run.

    python benchmarks/faults.py                       # generated shapes, up to 4 kills, 64 px
    python benchmarks/faults.py --data ../shared/data/flowers --image-size 96 --epochs 6

Each trial kills the training process (``kill -9``) once a random number of epochs is saved
plus a random fraction of an epoch (so mid-epoch or mid-checkpoint-save), then checks what
a killed run must look like: every finished file complete (``.keras`` checkpoints are valid
zip archives, ``state.json`` and ``history.csv`` agree on the number of completed epochs),
only ``.partial`` temporaries half-written, the lock free. The next trial restarts with ``--resume`` (or ``--overwrite`` if no epoch was
saved yet). After the last kill the run is resumed to the end and must reach every epoch
with a ``best.keras`` that loads in safe mode. Results go to ``--results`` (markdown).
The deterministic version of this (kill mid-epoch 2, always) is tests/e2e/test_faults.py.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK_BEST = ("import sys, numpy as np; from edgeclf.train.model import load_checkpoint; "
              "m = load_checkpoint(sys.argv[1]); s = int(sys.argv[2]); "
              "p = np.asarray(m.predict(np.zeros((2, s, s, 3), np.float32), verbose=0)); "
              "print(p.shape, bool(np.allclose(p.sum(1), 1, atol=1e-4)))")


def edgeclf_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "edgeclf", *map(str, args)]


def inspect_run(run: Path) -> dict:
    """What a killed run holds, and whether it is consistent."""
    ck = run / "checkpoints"
    state = json.loads((ck / "state.json").read_text()) if (ck / "state.json").is_file() else {}
    rows = []
    if (run / "history.csv").is_file():
        with open(run / "history.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    problems = []
    for name in ("best.keras", "last.keras"):
        path = ck / name
        if path.is_file():
            try:
                with zipfile.ZipFile(path) as z:
                    if z.testzip() is not None:
                        problems.append(f"{name}: corrupt member")
            except zipfile.BadZipFile as e:
                problems.append(f"{name}: {e}")
    epoch = state.get("global_epoch", 0)
    if rows and int(rows[-1]["epoch"]) < epoch:
        problems.append(f"history.csv ends at epoch {rows[-1]['epoch']}, state.json says {epoch}")
    if epoch and not (ck / "last.keras").is_file():
        problems.append("state.json without last.keras")
    partials = sorted(p.name for p in run.rglob("*") if ".partial" in p.name)
    return {"epoch": epoch, "history_rows": len(rows), "partials": partials,
            "files": sorted(p.name for p in ck.glob("*.keras")) if ck.is_dir() else [],
            "problems": problems}


def train_args(args: argparse.Namespace, work: Path, *, resume: bool) -> list[str]:
    if resume:
        return edgeclf_cmd("train", "--name", "faults", "--out", work, "--resume",
                           "--workers", 1)
    return edgeclf_cmd("train", args.data, "--name", "faults", "--out", work, "--backbone",
                       args.backbone, "--weights", "none", "--image-size", args.image_size,
                       "--epochs", args.epochs, "--patience", 0, "--no-augment",
                       "--workers", 1, "--overwrite")


def _epochs_saved(run: Path) -> int:
    """Completed epochs, cheaply (state.json is rewritten atomically after each epoch)."""
    state = run / "checkpoints" / "state.json"
    try:
        return json.loads(state.read_text()).get("global_epoch", 0) if state.is_file() else 0
    except (OSError, ValueError):
        return 0


def kill_after_epoch(cmd: list[str], run: Path, epoch: int, fraction: float,
                     timeout: float) -> tuple[subprocess.Popen, float | None]:
    """Start ``cmd``; once ``epoch`` epochs are saved, wait ``fraction`` of the wall time the
    last epoch took (training + validation + checkpoint saves) and SIGKILL it: mid-epoch or
    mid-save. Returns the process and when it was killed (``None``: it finished first)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[tuple[int, float]] = []
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        done = _epochs_saved(run)
        if not seen or done != seen[-1][0]:
            seen.append((done, time.perf_counter()))
        if done >= epoch and len(seen) >= 3:     # two saves observed: an epoch's duration
            time.sleep(fraction * (seen[-1][1] - seen[-2][1]))
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return proc, None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc, time.perf_counter() - t0


def run_trials(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    rng = random.Random(args.seed)
    run, trials = work / "faults", []
    for i in range(args.trials):
        resume = (run / "checkpoints" / "state.json").is_file()
        done = _epochs_saved(run) if resume else 0
        if done + 2 >= args.epochs:
            break                       # too close to the end to kill inside an epoch
        target = min(args.epochs - 1, done + rng.randint(2, 3))
        fraction = rng.random()
        proc, killed = kill_after_epoch(train_args(args, work, resume=resume), run, target,
                                        fraction, args.timeout)
        info = inspect_run(run)
        trials.append({"trial": i + 1, "start": "--resume" if resume else "fresh",
                       "kill_point": f"epoch {target} + {fraction:.2f} of an epoch",
                       "killed_after_s": None if killed is None else round(killed, 1),
                       "exit": proc.returncode, **info})
        print(json.dumps(trials[-1]), flush=True)
        if killed is None:
            break
    t0 = time.perf_counter()
    final = subprocess.run(train_args(args, work, resume=(run / "checkpoints" /
                                                          "state.json").is_file()),
                           capture_output=True, text=True)
    end = {"exit": final.returncode, "seconds": round(time.perf_counter() - t0, 1),
           **inspect_run(run), "stderr_tail": final.stderr[-1500:] if final.returncode else ""}
    if (run / "checkpoints" / "best.keras").is_file():
        check = subprocess.run([sys.executable, "-c", CHECK_BEST,
                                str(run / "checkpoints" / "best.keras"), str(args.image_size)],
                               capture_output=True, text=True)
        end["best_keras"] = check.stdout.strip() or check.stderr[-500:]
    end["metrics"] = (run / "metrics.json").is_file()
    return trials, end


def write_markdown(path: Path, args: argparse.Namespace, trials: list[dict], end: dict) -> None:
    ok = (end["exit"] == 0 and end["epoch"] == args.epochs and end["metrics"]
          and not end["problems"] and "True" in str(end.get("best_keras"))
          and all(not t["problems"] for t in trials))
    lines = [f"# Fault injection: `edgeclf train` killed with SIGKILL ({dt.date.today()})", "",
             f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}.",
             f"Command: `python benchmarks/faults.py {' '.join(sys.argv[1:])}`", "",
             f"Data `{args.data}`, backbone {args.backbone} (weights none) at "
             f"{args.image_size} px, {args.epochs} epochs, seed {args.seed}. Each kill waits "
             "for a random number of saved epochs, then a random fraction of an epoch.", "",
             "| trial | started | kill point | killed after (s) | epochs saved | history rows | "
             "checkpoints | temporaries left | problems |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in trials:
        lines.append(f"| {t['trial']} | {t['start']} | {t['kill_point']} | "
                     f"{'finished' if t['killed_after_s'] is None else t['killed_after_s']} | "
                     f"{t['epoch']} | {t['history_rows']} | {', '.join(t['files']) or '-'} | "
                     f"{len(t['partials'])} | {'; '.join(t['problems']) or 'none'} |")
    lines += ["", f"Final `--resume`: exit {end['exit']} in {end['seconds']} s, "
              f"{end['epoch']}/{args.epochs} epochs, history rows {end['history_rows']}, "
              f"metrics.json {'written' if end['metrics'] else 'MISSING'}, "
              f"best.keras (safe-mode load + predict): {end.get('best_keras', 'MISSING')}, "
              f"temporaries left {len(end['partials'])}.", "",
              f"**Result: {'PASS' if ok else 'FAIL'}**", ""]
    if end.get("stderr_tail"):
        lines += ["```", end["stderr_tail"], "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="dataset (default: generated)")
    ap.add_argument("--backbone", default="mobilenetv2_0.35")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=900.0, help="per trial, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "faults")
    ap.add_argument("--results", type=Path,
                    default=ROOT / "benchmarks" / "results" / "faults-train.md")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        from edgeclf.data.synthetic import make_shapes_dataset

        args.data = args.work / "shapes"
        if not args.data.is_dir():
            make_shapes_dataset(args.data, per_class=60, size=96)
    shutil.rmtree(args.work / "faults", ignore_errors=True)     # start from nothing
    trials, end = run_trials(args, args.work)
    write_markdown(args.results, args, trials, end)
    print(args.results.read_text())
    return 0 if "**Result: PASS**" in args.results.read_text() else 1


if __name__ == "__main__":
    sys.exit(main())
