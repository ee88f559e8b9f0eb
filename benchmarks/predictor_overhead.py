"""The predictor's own per-call cost, in microseconds: ``Predictor.run`` against a bare
onnxruntime session with the very same session options, on a 224x224 model that does almost
nothing (mean colour -> dense -> softmax), so the model's own time cannot hide it (issue 15).

    python benchmarks/predictor_overhead.py [--rounds 9]

Float32-input and uint8-input graphs, batch 1 and 32; 9 rounds taking turns, each the median
of 200 (batch 32: 20) calls; the overhead is the median of the paired round differences.
Prints a markdown table (results are pasted into benchmarks/results/ with the load average).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeclf.runtime import Contract, Predictor  # noqa: E402
from edgeclf.runtime.metadata import build_metadata, onnx_props  # noqa: E402


def tiny(path: Path, dtype: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, x = [], "image"
    if dtype == "uint8":
        nodes.append(helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    nodes += [helper.make_node("ReduceMean", [x], ["m"], axes=[1, 2], keepdims=0),
              helper.make_node("MatMul", ["m", "W"], ["l"]),
              helper.make_node("Softmax", ["l"], ["probs"], axis=1)]
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32) / 50, "W")
    elem = TensorProto.UINT8 if dtype == "uint8" else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("image", elem, ["N", 224, 224, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT,
                                                             ["N", 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, onnx_props(build_metadata(
        ["r", "g", "b"], Contract(size=(224, 224)), version="bench")))
    onnx.save(model, path)
    return path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import onnxruntime as ort

    from edgeclf.runtime._onnx import _session_options

    print(f"load average before {[round(v, 2) for v in os.getloadavg()]}\n")
    print("| input | batch | bare session us | Predictor.run us | overhead us (paired) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "uint8"):
            path = tiny(Path(tmp) / f"{dtype}.onnx", dtype)
            pred = Predictor.from_path(path, threads=args.threads)
            sess = ort.InferenceSession(str(path), _session_options(ort, args.threads),
                                        providers=["CPUExecutionProvider"])
            for b in (1, 32):
                x = np.random.default_rng(0).integers(0, 256, (b, 224, 224, 3), np.uint8)
                npdt = np.uint8 if dtype == "uint8" else np.float32
                fns = {"bare": lambda: sess.run(None, {"image": x.astype(npdt, copy=False)}),
                       "predictor": lambda: pred.run(x)}
                res: dict[str, list[float]] = {k: [] for k in fns}
                n = 200 if b == 1 else 20
                for r in range(args.rounds):
                    for k in (list(fns) if r % 2 else list(fns)[::-1]):
                        fns[k]()
                        ts = []
                        for _ in range(n):
                            t = time.perf_counter_ns()
                            fns[k]()
                            ts.append((time.perf_counter_ns() - t) / 1e3)
                        res[k].append(float(np.median(ts)))
                diff = np.median(np.array(res["predictor"]) - np.array(res["bare"]))
                print(f"| {dtype} | {b} | {np.median(res['bare']):.1f} | "
                      f"{np.median(res['predictor']):.1f} | {diff:+.1f} |")
    print(f"\nload average after {[round(v, 2) for v in os.getloadavg()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
