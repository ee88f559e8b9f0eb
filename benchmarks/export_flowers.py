"""Acceptance of `edgeclf export` on a real run, recorded under benchmarks/results/.

    edgeclf train /work/shared/data/flowers --backbone mobilenetv2 \
        --weights /work/shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5 \
        --strategy linear-probe
    python benchmarks/export_flowers.py models/flowers-mobilenetv2

Runs ``edgeclf export RUN --format all --quantize none --quantize dynamic --quantize
float16 --quantize int8`` (timed), then checks every manifest entry: its sha256, that it
loads and runs in its own runtime (TensorFlow for SavedModel, onnxruntime for ONNX,
ai-edge-litert for TFLite), and its top-1 agreement, max |Δp| and accuracy versus the Keras
checkpoint on the run's test split. Writes ``results/export-<run>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUANTS = ("none", "dynamic", "float16", "int8")


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "unknown")
    return f"{os.cpu_count()}-core CPU ({model})"


def run_export(run: Path) -> tuple[list[str], float, str]:
    cmd = [sys.executable, "-m", "edgeclf", "export", str(run), "--format", "all"]
    for q in QUANTS:
        cmd += ["--quantize", q]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                    "COLUMNS": "140"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"export failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return cmd, seconds, proc.stdout


def run_savedmodel(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return serve(image=tf.constant(x.astype("float32")))["probabilities"].numpy()


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = "uint8" if sess.get_inputs()[0].type == "tensor(uint8)" else "float32"
    return np.concatenate([sess.run(None, {"image": x[i:i + 32].astype(dtype)})[0]
                           for i in range(0, len(x), 32)])


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    scale, zero = inp["quantization"]
    if np.issubdtype(inp["dtype"], np.integer):
        data = np.round(x / scale + zero).astype(inp["dtype"])
    else:
        data = x.astype(inp["dtype"])
    interp.set_tensor(inp["index"], data)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    oscale, ozero = out["quantization"]
    return (y.astype("float32") - ozero) * oscale if oscale else y.astype("float32")


RUNNERS = {"savedmodel": run_savedmodel, "onnx": run_onnx, "tflite": run_tflite}


def verify(run: Path, max_images: int) -> tuple[dict, list[dict]]:
    from edgeclf.data.split import Split
    from edgeclf.export.utils import import_keras
    from edgeclf.runtime.contract import Contract
    from edgeclf.runtime.manifest import load_manifest, verify_artifact
    from edgeclf.runtime.preprocess import preprocess_batch

    keras = import_keras()
    split = Split.read(run / "split.json")
    contract = Contract.from_dict(json.loads((run / "run.json").read_text())["preprocessing"])
    files = split.test[:max_images]
    batch = preprocess_batch([split.root / f for f in files], contract)
    x = batch.array
    y = np.array(split.labels("test")[:max_images])[batch.ok]
    model = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True,
                                    compile=False)
    ref = model.predict(x.astype("float32"), batch_size=32, verbose=0)
    reference = {"n_images": len(x), "accuracy": float((ref.argmax(1) == y).mean())}
    rows = []
    manifest = load_manifest(run / "export")
    for entry in manifest["artifacts"]:
        path = verify_artifact(run / "export", entry)          # raises on a bad hash
        t0 = time.perf_counter()
        probs = RUNNERS[entry["format"]](path, x)
        rows.append({"file": entry["file"], "format": entry["format"],
                     "quantization": entry["quantization"], "bytes": entry["bytes"],
                     "export_seconds": entry["export_seconds"], "sha256_ok": True,
                     "loads": True, "run_seconds": round(time.perf_counter() - t0, 2),
                     "agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
                     "max_abs_diff": float(np.abs(probs - ref).max()),
                     "accuracy": float((probs.argmax(1) == y).mean()),
                     "inputs": entry["inputs"]})
    floats = {r["format"]: r["bytes"] for r in rows if r["quantization"] == "none"}
    for r in rows:
        r["size_vs_float32"] = r["bytes"] / floats[r["format"]]
    return reference, rows


def write_results(run: Path, cmd: list[str], seconds: float, table: str, reference: dict,
                  rows: list[dict]) -> Path:
    now = dt.datetime.now(dt.timezone.utc)
    int8 = next(r for r in rows if (r["format"], r["quantization"]) == ("tflite", "int8"))
    record = {"date": now.isoformat(timespec="seconds"), "machine": machine(),
              "load_average": os.getloadavg(), "run": str(run),
              "command": " ".join(["edgeclf", *cmd[3:]]), "export_wall_seconds": seconds,
              "reference": reference, "artifacts": rows,
              "int8_tflite_size_vs_float32": int8["size_vs_float32"],
              "int8_tflite_within_0_3x": int8["size_vs_float32"] <= 0.3}
    out = HERE / "results" / f"export-{run.name}"
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# edgeclf export acceptance: {run.name}", "",
             f"- date: {record['date']}", f"- machine: {record['machine']} (2-core CPU, "
             f"load average {', '.join(f'{v:.1f}' for v in record['load_average'])}, shared "
             "with other jobs)", f"- command: `{record['command']}` "
             f"({seconds:.0f} s wall, including TensorFlow start-up)",
             f"- reference (Keras checkpoint) on {reference['n_images']} test images: "
             f"accuracy {reference['accuracy']:.2%}",
             f"- int8 TFLite size vs float32 TFLite: {int8['size_vs_float32']:.3f}x "
             f"({'within' if record['int8_tflite_within_0_3x'] else 'OVER'} the 0.3x goal)",
             "", "| file | format | quant | MB | export s | vs float32 | sha256 | loads | "
             "agreement | max abs diff | accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['file']} | {r['format']} | {r['quantization']} | "
                     f"{r['bytes'] / 1e6:.2f} | {r['export_seconds']:.1f} | "
                     f"{r['size_vs_float32']:.2f}x | ok | ok | {r['agreement']:.2%} | "
                     f"{r['max_abs_diff']:.1e} | {r['accuracy']:.2%} |")
    lines += ["", "CLI output:", "", "```", table.rstrip(), "```", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained run directory")
    ap.add_argument("--max-images", type=int, default=1000, help="test images to check")
    ap.add_argument("--skip-export", action="store_true", help="verify the existing export")
    args = ap.parse_args()
    cmd, seconds, table = (run_export(args.run) if not args.skip_export else
                           (["python", "-m", "edgeclf", "export", str(args.run)], 0.0, ""))
    reference, rows = verify(args.run, args.max_images)
    out = write_results(args.run, cmd, seconds, table, reference, rows)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
