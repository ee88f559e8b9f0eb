"""int8 recipes side by side on a run's test split: what edgeclf does against the defaults.

    # an exported run (export/saved_model and export/model.onnx present), then:
    python benchmarks/int8_calibration.py models/flowers-mnv2 --seeds 0,1,2

For each calibration seed (the same stratified training sample edgeclf export uses) it
builds, in memory:
- TFLite int8 with the converter's own activation ranges (``converter.convert()``);
- TFLite int8 with ranges re-measured without buffer reuse, inner activations clipped to
  the 99.999th percentile, then also with empirical bias correction (what edgeclf exports:
  ``edgeclf.export.tflite_int8``);
- ONNX int8 QDQ U8S8 with 7-bit weights (onnxruntime's advice for CPUs without VNNI);
- ONNX int8 QDQ U8U8 with 8-bit weights (what edgeclf exports);
and reports each one's test accuracy, its change versus the float32 artifact of the same
format, and top-1 agreement with it. Writes ``benchmarks/results/int8-calibration-<date>.md``
and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from parity_flowers import machine  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def test_images(run: Path):
    from edgeclf.data.split import Split
    from edgeclf.runtime.contract import Contract
    from edgeclf.runtime.preprocess import preprocess_batch

    split = Split.read(run / "split.json")
    contract = Contract.from_dict(json.loads((run / "run.json").read_text())["preprocessing"])
    batch = preprocess_batch([split.root / f for f in split.test], contract)
    return split, contract, batch.array, np.asarray(split.labels("test"))[batch.ok]


def tflite_probs(model: bytes, x: np.ndarray) -> np.ndarray:
    from edgeclf.export.tflite import interpreter_class

    interp = interpreter_class()(model_content=model)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [16, *x.shape[1:]])
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    probs = []
    for i in range(0, len(x), 16):
        chunk = x[i:i + 16]
        pad = np.concatenate([chunk, np.zeros((16 - len(chunk), *x.shape[1:]), x.dtype)])
        if inp["dtype"] == np.int8:
            pad = (pad.astype(np.int16) - 128).astype(np.int8)
        interp.set_tensor(inp["index"], pad.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        scale, zero = out["quantization"]
        probs.append(((y - zero) * scale if scale else y)[:len(chunk)])
    return np.concatenate(probs)


def onnx_probs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    dtype = np.uint8 if session.get_inputs()[0].type == "tensor(uint8)" else np.float32
    return np.concatenate([session.run(None, {name: x[i:i + 32].astype(dtype)})[0]
                           for i in range(0, len(x), 32)])


def tflite_variants(saved_model: Path, calibration, seed: int) -> dict[str, bytes]:
    import tensorflow as tf

    from edgeclf.export.tflite_int8 import quantize_int8

    def converter():
        c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model),
                                                     signature_keys=["serving_default"])
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([b] for b in calibration.batches(1))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = c.inference_output_type = tf.uint8
        return c

    plain = converter().convert()
    ranges, _ = quantize_int8(converter(), calibration.images, tf.uint8, seed=seed,
                              bias_correction=False)
    edgeclf, _ = quantize_int8(converter(), calibration.images, tf.uint8, seed=seed)
    return {"tflite int8, converter ranges": plain,
            "tflite int8, edgeclf ranges": ranges,
            "tflite int8, edgeclf ranges + bias correction": edgeclf}


def onnx_variants(model: Path, calibration, work: Path) -> dict[str, Path]:
    from edgeclf.export.onnx_quant import quantize_int8

    out = {}
    for label, options in (("onnx int8, U8S8 7-bit weights",
                            {"weight_type": "QInt8", "reduce_range": True}),
                           ("onnx int8, U8U8 8-bit weights", {})):   # edgeclf's recipe
        dst = work / f"{len(out)}.onnx"
        quantize_int8(model, dst, calibration, work, options=options)
        out[label] = dst
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--calibration-size", type=int, default=300)
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)

    from edgeclf.export.calibration import load_calibration

    started = time.time()
    export = args.run / "export"
    split, contract, x, y = test_images(args.run)
    floats = {"tflite": tflite_probs((export / "model.tflite").read_bytes(), x),
              "onnx": onnx_probs(export / "model.onnx", x)}
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        calibration = load_calibration(split, contract, size=args.calibration_size, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            probs = {k: tflite_probs(m, x) for k, m in
                     tflite_variants(export / "saved_model", calibration, seed).items()}
            probs |= {k: onnx_probs(m, x) for k, m in
                      onnx_variants(export / "model.onnx", calibration, Path(tmp)).items()}
        for label, pr in probs.items():
            ref = floats[label.split()[0]]
            acc, ref_acc = float((pr.argmax(1) == y).mean()), float((ref.argmax(1) == y).mean())
            rows.append({"seed": seed, "variant": label, "accuracy": round(acc, 4),
                         "float32_accuracy": round(ref_acc, 4),
                         "drop_points": round((ref_acc - acc) * 100, 2),
                         "agreement": round(float((pr.argmax(1) == ref.argmax(1)).mean()), 4),
                         "max_abs_diff": round(float(np.abs(pr - ref).max()), 4)})
            print(f"seed {seed} {label:34s} acc {acc:.2%} drop {rows[-1]['drop_points']:+.2f} "
                  f"agree {rows[-1]['agreement']:.2%}", flush=True)
    now = dt.datetime.now(dt.timezone.utc)
    command = "python benchmarks/int8_calibration.py " + " ".join(argv or sys.argv[1:])
    record = {"date": now.isoformat(timespec="seconds"), "machine": machine(),
              "command": command, "run": str(args.run), "test_images": int(len(y)),
              "calibration_size": args.calibration_size,
              "seconds": round(time.time() - started), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"int8-calibration-{now:%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# int8 recipes side by side: {args.run.name}", "",
             f"- date: {record['date']}", f"- machine: {record['machine']}",
             f"- command: `{command}` ({record['seconds']} s)",
             f"- test split: {len(y)} images; calibration: {args.calibration_size} training "
             "images per seed (stratified, as `edgeclf export`)", "",
             "| seed | variant | accuracy | float32 | drop (pt) | top-1 agreement | max abs Δp |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['variant']} | {r['accuracy']:.2%} | "
              f"{r['float32_accuracy']:.2%} | {r['drop_points']:+.2f} | {r['agreement']:.2%} | "
              f"{r['max_abs_diff']:.3f} |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.md/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
