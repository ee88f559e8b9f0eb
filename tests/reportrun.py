"""Hand-written run directories for report tests: every file a stage writes, following the
contracts of DESIGN.md and the stage issues (small values, written by hand, no training)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

#: One class name needs escaping: names come from users' folder names.
CLASSES = ["daisy", "rose", "<b>tulip</b> & co"]
EPOCHS = (3, 2)  # phase 1 (head) then phase 2 (fine-tune)


def _images(root: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    files: dict[str, list[str]] = {}
    for k, cls in enumerate(CLASSES):
        for i in range(4):
            rel = f"{cls}/img {i}.jpg"
            (root / cls).mkdir(parents=True, exist_ok=True)
            arr = np.full((40, 48, 3), (60 + 80 * k, 120, 200 - 60 * k), np.uint8)
            arr = np.clip(arr + rng.integers(-30, 30, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / rel)
            files.setdefault(cls, []).append(rel)
    return files


def _dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def make_run_json(run: Path, data: Path, name: str = "demo-run") -> None:
    contract = {"size": [32, 32], "resize": "crop", "interpolation": "bilinear",
                "color": "RGB", "dtype": "uint8", "layout": "NHWC", "value_range": [0, 255],
                "version": 1}
    _dump(run / "run.json", {
        "name": name, "edgeclf_version": "0.1.0", "created": "2026-11-22T18:00:00+00:00",
        "backend": "tensorflow", "backbone": "mobilenetv2", "image_size": [32, 32],
        "preprocessing": contract, "classes": CLASSES,
        "dataset": {"root": str(data), "fingerprint": "abc123"},
        "config": {"epochs": EPOCHS[0], "fine_tune_epochs": EPOCHS[1], "lr": 0.001},
        "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"}})
    (run / "labels.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")


def _history(run: Path) -> None:
    """As edgeclf.train writes it: global epoch numbers, a phase column, lr nan in phase 1
    (linear probe on cached features)."""
    rows = [(e + 1, 1, 1.2 - 0.2 * e, 0.5 + 0.1 * e, 1.3 - 0.2 * e, 0.45 + 0.1 * e, "nan", 2.0)
            for e in range(EPOCHS[0])]
    rows += [(EPOCHS[0] + e + 1, 2, 0.5 - 0.1 * e, 0.85 + 0.05 * e, 0.6 - 0.1 * e,
              0.8 + 0.04 * e, 1e-4, 9.5) for e in range(EPOCHS[1])]
    with open(run / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                    "seconds"])
        w.writerows(rows)


def _evaluation(run: Path) -> None:
    """metrics.json (train) and eval.json (edgeclf.evaluate's EvalResult.to_dict shape)."""
    per_class = {c: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 4}
                 for c in CLASSES}
    test = {"accuracy": 0.8333, "top5": 1.0, "n": 12, "per_class": per_class}
    _dump(run / "metrics.json", {"test": test, "val": {"accuracy": 0.84, "n": 12},
                                 "train_seconds": 12.5, "images_per_second": 310.0,
                                 "best_epoch": 5, "best_phase": 2, "phase1_val_accuracy": 0.65,
                                 "phase2_val_accuracy": 0.84})
    rose, tulip = CLASSES[1], CLASSES[2]
    _dump(run / "eval.json", {
        "model": "checkpoints/best.keras", "format": "keras", "quantization": "none",
        "source": "split:test", "n_images": 12, "n_skipped": 1,
        "skipped": [{"file": "rose/gone.jpg", "reason": "missing"}],
        "warnings": ["1 image(s) of the split are missing"],
        "n": 12, "accuracy": 0.8333, "top5": 1.0, "top_k": 5, "macro_f1": 0.83,
        "weighted_f1": 0.83,
        "per_class": [dict(label=c, **v) for c, v in per_class.items()],
        "worst_confusions": [{"true": rose, "predicted": tulip, "count": 1, "rate": 0.25},
                             {"true": tulip, "predicted": rose, "count": 1, "rate": 0.25}],
        "labels": CLASSES, "confusion_matrix": [[4, 0, 0], [0, 3, 1], [0, 1, 3]]})


def _deploy(run: Path, files: dict[str, list[str]]) -> None:
    export = run / "export"
    export.mkdir(parents=True, exist_ok=True)
    arts = [("model.onnx", "onnx", "none", 9000), ("model.int8.onnx", "onnx", "int8", 2500),
            ("model.tflite", "tflite", "none", 8800)]
    for f, _, _, n in arts:
        (export / f).write_bytes(b"\0" * n)
    _dump(export / "manifest.json", {
        "labels": CLASSES, "preprocessing": {"size": [32, 32]},
        "checkpoint": {"file": "checkpoints/best.keras", "sha256": "f" * 64},
        "artifacts": [{"file": f, "format": fmt, "quantization": q, "bytes": n,
                       "sha256": "a" * 64, "export_seconds": 1.5} for f, fmt, q, n in arts]})
    flipped = [{"file": files[CLASSES[1]][0], "true": CLASSES[1], "reference": CLASSES[1],
                "artifact": CLASSES[2], "reference_confidence": 0.52,
                "artifact_confidence": 0.49},
               {"file": files[CLASSES[2]][0], "true": CLASSES[2], "reference": CLASSES[1],
                "artifact": CLASSES[2], "reference_confidence": 0.51,
                "artifact_confidence": 0.6}]
    _dump(run / "parity.json", {
        "passed": False, "split": "test", "n_images": 12, "reference": {"accuracy": 0.8333},
        "artifacts": [
            {"file": "model.onnx", "format": "onnx", "quantization": "none", "agreement": 1.0,
             "max_abs_diff": 2e-6, "mean_abs_diff": 1e-7, "accuracy": 0.8333, "passed": True,
             "flipped": []},
            {"file": "model.int8.onnx", "format": "onnx", "quantization": "int8",
             "agreement": 0.9167, "max_abs_diff": 0.08, "mean_abs_diff": 0.01,
             "accuracy": 0.75, "accuracy_delta": -8.33, "passed": False,
             "breaches": ["accuracy drop 8.33 pt > 1.0 pt"], "n_flipped": 2,
             "flipped": flipped}]})
    result = {"format": "onnx", "quantization": "none", "device": "cpu",
              "provider": "CPUExecutionProvider", "threads": 2, "cold_start_ms": 40.0}
    results = [dict(result, artifact=a, batch_size=b, p50_ms=p * b, p90_ms=1.1 * p * b,
                    p99_ms=1.3 * p * b, images_per_second=1000 / p)
               for a, p in (("model.onnx", 3.0), ("keras-predict", 30.0)) for b in (1, 8)]
    machine = {"cpu": "Test CPU", "cores": 2, "onnxruntime": "1.23"}
    _dump(run / "bench.json", {"runs": [{"date": "2026-11-21", "machine": machine,
                                         "results": results[:1]},
                                        {"date": "2026-11-22", "machine": machine,
                                         "results": results}]})


def make_full_run(tmp: Path, name: str = "demo-run") -> Path:
    """A run with every stage's files present; returns the run directory."""
    data, run = tmp / "data", tmp / "models" / name
    files = _images(data)
    make_run_json(run, data, name)
    split = {"root": str(data), "classes": CLASSES, "seed": 0,
             "train": [f for fs in files.values() for f in fs[2:]],
             "val": [fs[1] for fs in files.values()], "test": [fs[0] for fs in files.values()]}
    _dump(run / "split.json", split)
    _dump(run / "data_report.json", {
        "root": str(data), "fingerprint": "abc123", "classes": CLASSES,
        "counts": {c: 4 for c in CLASSES}, "n_files": 13, "n_usable": 12,
        "problems": [{"file": "rose/broken.jpg", "kind": "corrupt", "message": "truncated"}],
        "duplicates": [], "cross_class_duplicates": [], "empty_classes": [], "imbalance": 1.0,
        "warnings": ["1 file(s) skipped: rose/broken.jpg"]})
    _history(run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.keras").write_bytes(b"PK" + b"\0" * 100)
    _evaluation(run)
    _deploy(run, files)
    return run
