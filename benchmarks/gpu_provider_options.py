"""Which onnxruntime CUDA execution-provider options make an exported run fastest on the GPU?

Times each ONNX artifact (float32 and float16) with IO binding (input and output in device
memory) at batch 1 and 128 under several CUDA EP option sets: the defaults,
``prefer_nhwc`` (NHWC kernels: no layout transposes around each conv), heuristic cuDNN
algorithm search, and CUDA graphs with and without NHWC. Needs onnxruntime-gpu and an
NVIDIA GPU (nothing from edgeclf beyond the files of a run):

    python benchmarks/gpu_provider_options.py models/flowers-mnv2 \
        --out benchmarks/results/gpu-provider-options-<date>.json

Results: benchmarks/results/gpu-provider-options-2026-11-22.json (H100), summarised in
benchmarks/results/train-gpu-2026-11-22.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    "default": {},
    "nhwc": {"prefer_nhwc": "1"},
    "heuristic": {"cudnn_conv_algo_search": "HEURISTIC"},
    "nhwc+graph": {"prefer_nhwc": "1", "enable_cuda_graph": "1"},
    "graph": {"enable_cuda_graph": "1"},
}
MODELS = ("model.onnx", "model.float16.onnx")


def time_one(path: Path, opts: dict, batch: int) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=[
        ("CUDAExecutionProvider", {"device_id": "0", **opts})])
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    size = [d if isinstance(d, int) else batch for d in inp.shape]
    size[0] = batch
    x = np.random.default_rng(0).uniform(0, 255, size).astype(
        np.float16 if "float16" in inp.type else np.float32)
    n_out = [d if isinstance(d, int) else batch for d in out.shape]
    n_out[0] = batch
    xv = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
    yv = ort.OrtValue.ortvalue_from_shape_and_type(
        n_out, np.float16 if "float16" in out.type else np.float32, "cuda", 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(inp.name, xv)
    binding.bind_ortvalue_output(out.name, yv)
    for _ in range(10):
        sess.run_with_iobinding(binding)
    times = []
    for _ in range(300 if batch == 1 else 60):
        t0 = time.perf_counter()
        sess.run_with_iobinding(binding)
        times.append(time.perf_counter() - t0)
    p50 = float(np.median(times)) * 1e3
    return {"p50_ms": round(p50, 3), "images_per_second": round(batch / p50 * 1e3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run directory with export/model*.onnx")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args()
    results = []
    for model in MODELS:
        for name, opts in CONFIGS.items():
            for batch in (1, 128):
                row = {"model": model, "config": name, "batch": batch}
                try:
                    row |= time_one(args.run / "export" / model, opts, batch)
                except Exception as e:  # noqa: BLE001 - a failed option set is a result
                    row["error"] = str(e)[:300]
                print(json.dumps(row), flush=True)
                results.append(row)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
