"""Time to a good model: the default ``edgeclf train DATA`` (``--strategy auto``) from cold
caches, per dataset, next to the previous linear probe and scikit-learn's
LogisticRegression (best C on val) on the same frozen features and the same split, in one run.

For each dataset:
1. ``edgeclf train DATA --weights W --name N --out TMP`` as a subprocess (nice), with a fresh
   ``EDGECLF_CACHE_DIR`` (cold decode, feature and cut caches): wall time, test accuracy,
   macro F1, smallest-class recall (and its ratio to the mean recall), the strategy chosen
   and its reason, the caching engine and its max |difference| to Keras.
2. The baselines, in this process, on the pooled features of the frozen pretrained backbone
   for the run's own split.json (computed once, onnxruntime engine checked against Keras):
   ``previous probe`` = the Keras head trained with mini-batch Adam (edgeclf's linear probe
   before the convex head: dropout 0.2, label smoothing 0.1, lr 1e-3, <= 100 epochs, best
   val epoch); ``LogisticRegression`` = scikit-learn lbfgs, C in a log grid chosen on val.

    nice -n 5 python benchmarks/time_to_model.py \\
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5

Writes ``benchmarks/results/time-to-model-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(os.environ.get("EDGECLF_SHARED", ROOT.parent / "shared"))
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=f"{SHARED}/data/sign-language-digits,"
                                     f"{SHARED}/data/flowers", help="comma-separated folders")
    p.add_argument("--weights", default=str(SHARED / "weights" / "mobilenet_v2_weights_tf_"
                                            "dim_ordering_tf_kernels_1.0_224.h5"))
    p.add_argument("--extra", default="", help="more `edgeclf train` flags, space-separated")
    p.add_argument("--date", default=datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--work", type=Path, default=None, help="runs + caches (default: a temp dir)")
    return p.parse_args()


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(),
            "python": platform.python_version()}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_default(data: Path, args: argparse.Namespace, work: Path) -> dict:
    name = data.name
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "edgeclf", "train", str(data), "--weights", args.weights,
           "--name", name, "--out", str(work / "models"), "--overwrite",
           *args.extra.split()]
    env = {**os.environ, "EDGECLF_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    load0 = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = work / f"train-{name}.log"
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"edgeclf train failed on {data} (see {log}):\n{proc.stderr[-3000:]}")
    metrics = json.loads((work / "models" / name / "metrics.json").read_text())
    test = metrics["test"]
    return {"command": "edgeclf train " + " ".join(cmd[4:]), "wall_seconds": round(wall, 1),
            "load_before": load0, "load_after": loadavg(), "cache_dir": str(cache),
            "test_accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
            "min_recall": test["min_recall"], "mean_recall": test["mean_recall"],
            "min_recall_class": test["min_recall_class"],
            "val_accuracy": metrics["val"]["accuracy"], "strategy": metrics.get("strategy"),
            "strategy_reason": metrics.get("strategy_reason"), "cut": metrics.get("cut"),
            "views": metrics.get("views"), "engines": metrics.get("engines"),
            "best_phase": metrics.get("best_phase"),
            "convex_l2": (metrics.get("convex_head") or {}).get("l2")}


def frozen_features(data: Path, args: argparse.Namespace, work: Path) -> dict:
    """Pooled features of the pretrained backbone for the run's split (clean images)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ["EDGECLF_CACHE_DIR"] = str(work / f"cache-{data.name}")
    from edgeclf.runtime.contract import Contract
    from edgeclf.train import TrainConfig
    from edgeclf.train import features as feats
    from edgeclf.train.engine import fastest_engine
    from edgeclf.train.model import build_model, feature_model
    from edgeclf.train.setup import prepare
    from edgeclf.weights import weights_id

    cfg = TrainConfig(data_dir=str(data), weights=args.weights).resolve()
    run = work / "models" / data.name
    contract = Contract(size=(cfg.image_size, cfg.image_size))
    rd = prepare(cfg, contract, run / "split.json")
    model = build_model(cfg.members(), len(rd.classes), image_size=cfg.image_size,
                        weights=cfg.weights)
    fmodel = feature_model(model)
    sample = np.asarray(rd.cache.images[np.sort(rd.rows["train"][:8])], np.float32)
    engine = fastest_engine(fmodel, sample)
    key = feats.features_key(rd.cache, [m.name for m in cfg.members()],
                             weights_id(cfg.weights), None, "engine-checked")
    rows = np.concatenate([rd.rows[s] for s in ("train", "val", "test")])
    t0 = time.perf_counter()
    every = feats.cached_features(engine.run, rd.cache, rows, key, batch_size=32,
                                  engine_record=engine.record)
    n_tr, n_va = len(rd.rows["train"]), len(rd.rows["val"])
    return {"x": {"train": every[:n_tr], "val": every[n_tr:n_tr + n_va],
                  "test": every[n_tr + n_va:]},
            "y": rd.labels, "classes": rd.classes, "seconds": time.perf_counter() - t0,
            "engine": engine.record()}


def scores(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    from edgeclf.metrics import split_metrics

    m = split_metrics(labels, probs, classes)
    return {k: m[k] for k in ("accuracy", "macro_f1", "min_recall", "mean_recall")}


def previous_probe(f: dict) -> dict:
    from edgeclf.train.features import PROBE_PATIENCE, train_probe
    from edgeclf.train.model import build_head_model
    from edgeclf.train.optim import compile_model, make_optimizer, make_schedule

    x, y, n_c = f["x"], f["y"], len(f["classes"])
    t0 = time.perf_counter()
    head = build_head_model(x["train"].shape[1], n_c, head="linear", dropout=0.2)
    steps = -(-len(y["train"]) // 64)
    compile_model(head, make_optimizer("adam", make_schedule(
        1e-3, total_steps=steps * 100, kind="cosine", warmup_steps=steps), weight_decay=1e-4),
        label_smoothing=0.1)
    train_probe(head, (x["train"], y["train"]), (x["val"], y["val"]), epochs=100,
                num_classes=n_c, sample_weight=None, patience=PROBE_PATIENCE, seed=0)
    probs = np.asarray(head.predict_on_batch(x["test"]), np.float32)
    return {**scores(probs, y["test"], f["classes"]),
            "seconds": round(time.perf_counter() - t0, 1)}


def logistic_regression(f: dict) -> dict:
    from sklearn.linear_model import LogisticRegression

    x, y = f["x"], f["y"]
    t0 = time.perf_counter()
    best = None
    for c in C_GRID:
        lr = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        val = float((lr.predict(x["val"]) == y["val"]).mean())
        if best is None or val > best[0]:
            best = (val, c, lr)
    val, c, lr = best
    probs = lr.predict_proba(x["test"]).astype(np.float32)
    return {**scores(probs, y["test"], f["classes"]), "C": c, "val_accuracy": round(val, 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def write(results: dict, args: argparse.Namespace) -> Path:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"time-to-model-{args.date}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1))
    m = results["machine"]
    lines = [f"# Time to model: default `edgeclf train` vs the previous probe and "
             f"LogisticRegression ({args.date})", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}; load average (1/5/15 min) at start "
             f"{results['load_start']}, at end {results['load_end']}.", "",
             f"Command: `{results['command']}`", "",
             "| dataset | path | wall | test acc | macro F1 | smallest recall (x mean) "
             "| previous probe test acc / F1 | LogisticRegression test acc / F1 (C) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results["datasets"].items():
        d, p, lr = r["default"], r["previous_probe"], r["logistic_regression"]
        ratio = (d["min_recall"] / d["mean_recall"]) if d["mean_recall"] else None
        lines.append(f"| {name} | {d['strategy']}{' @ ' + d['cut'] if d['cut'] else ''} "
                     f"| {d['wall_seconds']:.0f} s | {pct(d['test_accuracy'])} | "
                     f"{pct(d['macro_f1'])} | {pct(d['min_recall'])} "
                     f"({ratio:.2f}x) | {pct(p['accuracy'])} / {pct(p['macro_f1'])} | "
                     f"{pct(lr['accuracy'])} / {pct(lr['macro_f1'])} (C={lr['C']}) |")
    lines += ["", "Per dataset: the strategy's reason as printed, the engine check, the load."]
    for name, r in results["datasets"].items():
        d = r["default"]
        lines += ["", f"## {name}", "", f"- strategy: {d['strategy_reason']}",
                  f"- caching engine(s): {json.dumps(d['engines'])}",
                  f"- load average before/after the run: {d['load_before']} / "
                  f"{d['load_after']}",
                  f"- best checkpoint from phase {d['best_phase']}; convex head L2 "
                  f"{d['convex_l2']}; val accuracy {pct(d['val_accuracy'])}",
                  f"- baselines' features: {r['features_seconds']:.0f} s to compute "
                  f"(not part of the default run's wall), engine {json.dumps(r['engine'])}"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".md")


def main() -> None:
    args = parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeclf-ttm-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {"date": args.date, "machine": machine(), "load_start": loadavg(),
               "command": f"edgeclf train DATA --weights {args.weights} {args.extra}".strip(),
               "datasets": {}}
    for data in [Path(d) for d in args.data.split(",") if d]:
        print(f"== {data.name}: default edgeclf train (cold caches)", flush=True)
        default = run_default(data, args, work)
        print(json.dumps(default, indent=1), flush=True)
        f = frozen_features(data, args, work)
        results["datasets"][data.name] = {
            "default": default, "previous_probe": previous_probe(f),
            "logistic_regression": logistic_regression(f),
            "features_seconds": round(f["seconds"], 1), "engine": f["engine"]}
        print(json.dumps(results["datasets"][data.name], indent=1, default=str), flush=True)
        results["load_end"] = loadavg()
        print("wrote", write(results, args), flush=True)


if __name__ == "__main__":
    main()
