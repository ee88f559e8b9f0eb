"""ONNX int8: edgeclf's U8U8 recipe vs U8S8 with 7-bit weights (``reduce_range``) and U8S8
with 8-bit weights, on speed and accuracy, against float32 (issue 15).

    python benchmarks/int8_recipes.py RUN --photos DIR --per-class 60 [--rounds 5]

RUN is an exported run whose ``export/model.onnx`` is the float graph (float32 or uint8
input). Both int8 variants are quantized here from it, with the calibration sample edgeclf
export uses (seed 0), and written next to it as ``model.int8-u8u8.onnx`` and
``model.int8-u8s8-rr.onnx``, ``model.int8-u8s8.onnx`` (not in the manifest). Accuracy: top-1 on photos of DIR (one
folder per class, the run's labels) that the run's split does not use; speed: bare sessions
(2 threads, the predictor's options) taking turns in one process, batch 1 and 8, median of
round medians. Writes ``benchmarks/results/int8-recipes-<UTC date>.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from predictor_levers import bare_call, interleave, session  # noqa: E402

from edgeclf.bench.timing import sample_batch  # noqa: E402
from edgeclf.machine import cpu_info  # noqa: E402
from edgeclf.fsutil import write_json, write_text  # noqa: E402

RECIPES = {
    "model.int8-u8u8.onnx": {},                                 # edgeclf's default options
    "model.int8-u8s8-rr.onnx": {"weight_type": "QInt8", "reduce_range": True},
    "model.int8-u8s8.onnx": {"weight_type": "QInt8"},           # exact only with VNNI / ARM
}


def float_input_graph(model):
    """``model`` (uint8 ``image`` cast to float32 as its first node, as edgeclf exports
    it) with float32 input and no cast: the graph the exporter quantizes."""
    import onnx

    graph = model.graph
    name = graph.input[0].name
    (cast,) = [n for n in graph.node if n.op_type == "Cast" and list(n.input) == [name]]
    for node in graph.node:
        node.input[:] = [name if i == cast.output[0] else i for i in node.input]
    graph.node.remove(cast)
    graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return model


def build(run: Path, work: Path) -> None:
    import onnx

    from edgeclf.data.split import Split
    from edgeclf.export.calibration import load_calibration
    from edgeclf.export.onnx import finish_onnx
    from edgeclf.export.onnx_quant import quantize_int8
    from edgeclf.runtime.contract import Contract
    from edgeclf.runtime.metadata import from_onnx_props

    export = run / "export"
    src = export / "model.onnx"
    model = onnx.load(str(src))
    meta = from_onnx_props({p.key: p.value for p in model.metadata_props})
    pixels_uint8 = model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    if pixels_uint8:
        src = work / "float32.onnx"
        onnx.save(float_input_graph(model), str(src))
    calib = load_calibration(Split.read(run / "split.json"),
                             Contract.from_dict(meta["preprocessing"]), size=300, seed=0)
    for name, options in RECIPES.items():
        if not (export / name).is_file():
            # the exporter's own steps: quantize the float graph, then the same input type
            # as model.onnx and the metadata (the predictor loads it as a model file)
            quantize_int8(src, work / name, calib, work, options=options)
            finish_onnx(work / name, export / name, meta, pixels_uint8=pixels_uint8)


def held_out(run: Path, photos: Path, per_class: int, labels: list[str]):
    from edgeclf.data.split import Split

    split = Split.read(run / "split.json")
    used = {Path(p).name for p in (*split.train, *split.val, *split.test)}
    files, y = [], []
    for i, label in enumerate(labels):
        pool = sorted(p for p in (photos / label).iterdir() if p.name not in used)
        files += pool[:per_class]
        y += [i] * len(pool[:per_class])
    return files, np.array(y)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--photos", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=15)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    import tempfile

    import onnxruntime as ort

    from edgeclf.runtime import Predictor

    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        build(args.run, Path(tmp))
    export = args.run / "export"
    names = ["model.onnx", *RECIPES]
    preds = {n: Predictor.from_path(export / n, threads=args.threads) for n in names}
    files, y = held_out(args.run, args.photos, args.per_class, preds["model.onnx"].labels)
    x = preds["model.onnx"].preprocess(files).array
    acc, agree = {}, {}
    ref = None
    for n in names:
        top = np.concatenate([preds[n].run(x[i:i + 32]) for i in range(0, len(x), 32)]).argmax(1)
        ref = top if ref is None else ref
        acc[n], agree[n] = float((top == y).mean()), float((top == ref).mean())
    speed = {}
    for b in (1, 8):
        xb = sample_batch(b, *preds["model.onnx"].contract.size)
        speed[f"batch {b}"] = interleave(
            {n: bare_call(session(ort, str(export / n), args.threads), xb) for n in names},
            rounds=args.rounds, calls=args.calls if b == 1 else max(3, args.calls // 4))
    res = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "cpu": cpu_info(), "onnxruntime": ort.__version__, "load_before": load_before,
           "load_after": [round(v, 2) for v in os.getloadavg()],
           "command": "python benchmarks/int8_recipes.py " + " ".join(argv),
           "images": len(y), "accuracy": acc, "agreement_with_float32": agree,
           "speed": speed}
    lines = [f"# ONNX int8 recipes vs float32 (issue 15), {res['date']}", "",
             f"- Machine: {res['cpu']['model']}, {res['cpu']['usable_cores']} usable cores, "
             f"flags {', '.join(res['cpu']['flags'])}; onnxruntime {res['onnxruntime']}",
             f"- Load average before {load_before}, after {res['load_after']} (shared machine)",
             f"- Command: `{res['command']}`",
             f"- Accuracy: {len(y)} held-out photos (not in the run's split); speed: bare "
             f"sessions, {args.threads} threads, taking turns, median of {args.rounds} round "
             "medians", "",
             "| artifact | top-1 | vs float32 (points) | agreement with float32 | "
             "batch 1 ms | x float32 | batch 8 ms | x float32 |", "|---|---|---|---|---|---|---|---|"]
    for n in names:
        s1, s8 = speed["batch 1"][n], speed["batch 8"][n]
        lines.append(f"| {n} | {acc[n]:.2%} | {100 * (acc[n] - acc['model.onnx']):+.2f} | "
                     f"{agree[n]:.2%} | {s1['median_ms']:.2f} | {s1['speedup_vs_first']:.2f}x | "
                     f"{s8['median_ms']:.2f} | {s8['speedup_vs_first']:.2f}x |")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    write_json(args.out / f"int8-recipes-{stamp}.json", res)
    write_text(args.out / f"int8-recipes-{stamp}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
