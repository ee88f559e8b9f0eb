"""Issue 15's levers for the embedded predictor, measured side by side in one process.

    python benchmarks/predictor_levers.py RUN [--threads 2] [--rounds 7] [--calls 30]

RUN is an exported run (``export/model.onnx``, ``model.tflite``; ``model.int8.onnx`` if
present). Every variant is loaded up front; each round times every variant in turn
(``--calls`` calls after 3 warm-up calls, 0.1 s pause between variants so a spinning thread
pool has stopped), rotating the order, and a variant's figure is the median of its round
medians. Ratios are to the first variant of each table, measured in the same rounds. The
machine is shared: the load average is recorded before and after.

Tables: onnxruntime session options (threads 0 vs explicit, thread affinity,
``session.dynamic_block_base``, spinning policies), spinning policies against bare XNNPACK
on the host as it is and beside ``--busy`` CPU-bound processes (``--only spin``), the ONNX
input (float32 vs uint8 with the cast inside the graph), and the predictor against a bare session / interpreter on the
same file (its per-call overhead). Writes ``benchmarks/results/predictor-levers-<UTC
date>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgeclf.bench.timing import sample_batch  # noqa: E402
from edgeclf.machine import cpu_info  # noqa: E402
from edgeclf.fsutil import write_json, write_text  # noqa: E402

Fn = Callable[[], object]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=30, help="timed calls per round, batch 1")
    p.add_argument("--big-batch", type=int, default=32)
    p.add_argument("--big-calls", type=int, default=3, help="timed calls per round, big batch")
    p.add_argument("--only", default="options,input,overhead,int8",
                   help="tables: options,input,overhead,int8,spin")
    p.add_argument("--busy", type=int, default=1,
                   help="spin table: CPU-bound processes beside for its second half (0: none)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def interleave(variants: dict[str, Fn], *, rounds: int, calls: int) -> dict[str, dict]:
    """Median of round medians (ms) per variant, all variants taking turns."""
    names = list(variants)
    per: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = variants[name]
            time.sleep(0.1)
            for _ in range(3):
                fn()
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                fn()
                ts.append((time.perf_counter_ns() - t0) / 1e6)
            per[name].append(float(np.median(ts)))
    base = float(np.median(per[names[0]]))
    out = {}
    for n in names:
        med = float(np.median(per[n]))
        out[n] = {"median_ms": round(med, 3), "rounds_ms": [round(v, 3) for v in per[n]],
                  "speedup_vs_first": round(base / med, 3)}
    return out


def session(ort, path: str, threads: int, entries: dict[str, str] | None = None, *,
            spinning: str | None = "within-run", block_base: int | None = None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if spinning == "within-run":
        so.add_session_config_entry("session.intra_op.allow_spinning", "1")
        so.add_session_config_entry("session.force_spinning_stop", "1")
    elif spinning == "never":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if block_base is not None:
        so.add_session_config_entry("session.dynamic_block_base", str(block_base))
    for k, v in (entries or {}).items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def bare_call(sess, x: np.ndarray) -> Fn:
    """What a caller of the bare session does per call: convert to its dtype, run."""
    inp = sess.get_inputs()[0]
    dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
    name = inp.name
    return lambda: sess.run(None, {name: x.astype(dtype, copy=False)})


def options_table(ort, onnx: str, t: int, args) -> dict:
    x = sample_batch(1, 224, 224)
    variants = {
        f"threads={t}, spin within run (predictor before)": session(ort, onnx, t),
        "threads=0 (pool sized by ORT, affinity on), spin within run": session(ort, onnx, 0),
        f"threads={t}, affinity pinned by hand": session(
            ort, onnx, t, {"session.intra_op_thread_affinities":
                           ";".join(str(i + 2) for i in range(t - 1))}),
        f"threads={t}, dynamic_block_base=4": session(ort, onnx, t, block_base=4),
        f"threads={t}, dynamic_block_base=1": session(ort, onnx, t, block_base=1),
        f"threads={t}, spin at most 100 us then block": session(
            ort, onnx, t, {"session.intra_op.spin_duration_us": "100"}),
        f"threads={t}, spin at most 500 us, backoff 8": session(
            ort, onnx, t, {"session.intra_op.spin_duration_us": "500",
                           "session.intra_op.spin_backoff_max": "8"}),
        f"threads={t}, spinning kept (ORT default)": session(ort, onnx, t, spinning=None),
        f"threads={t}, never spinning": session(ort, onnx, t, spinning="never"),
        "threads=0, never spinning": session(ort, onnx, 0, spinning="never"),
        f"threads={t}, never spinning, dynamic_block_base=4": session(
            ort, onnx, t, spinning="never", block_base=4),
    }
    calls = {k: bare_call(s, x) for k, s in variants.items()}
    ov = openvino_call(onnx, t, x)
    if ov is not None:       # only where the openvino package is importable
        calls[f"OpenVINO runtime (CPU plugin, LATENCY hint) on model.onnx, {t} threads"] = ov
    tflite = Path(onnx).with_suffix(".tflite")
    if tflite.is_file():   # the yardstick, measured in the same rounds
        calls[f"bare LiteRT + XNNPACK on {tflite.name}, {t} threads"] = tflite_bare(tflite, t, x)
    return {"batch 1": interleave(calls, rounds=args.rounds, calls=args.calls)}


SPIN_US = (50, 100, 200)


def spin_table(ort, onnx: str, t: int, args) -> dict:
    """Spinning policies of the intra-op pool against bare XNNPACK, batch 1 and the big
    batch, on the host as it is and with ``--busy`` CPU-bound processes beside (what an
    embedded predictor meets on a shared machine). Bounded spinning
    (``session.intra_op.spin_duration_us``, onnxruntime >= 1.26) spins a while between
    the kernels of a run, then blocks; ``force_spinning_stop`` ends it when a run returns."""
    import subprocess

    tflite = Path(onnx).with_suffix(".tflite")
    sessions = {"never spinning": session(ort, onnx, t, spinning="never"),
                "spin within run, unbounded": session(ort, onnx, t)}
    for us in SPIN_US:
        sessions[f"spin at most {us} us, then block"] = session(
            ort, onnx, t, {"session.intra_op.spin_duration_us": str(us)})
    out = {}
    for busy in (0, args.busy):
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   for _ in range(busy)]
        try:
            time.sleep(1.0 if busy else 0.0)
            for b, calls in ((1, args.calls), (args.big_batch, args.big_calls)):
                x = sample_batch(b, 224, 224)
                calls_ = {k: bare_call(s, x) for k, s in sessions.items()}
                ov = openvino_call(onnx, t, x)
                if ov is not None:       # only where the openvino package is importable
                    calls_["OpenVINO runtime (CPU, LATENCY hint, f32) on model.onnx"] = ov
                if tflite.is_file():
                    calls_[f"bare LiteRT + XNNPACK on {tflite.name}"] = tflite_bare(tflite, t, x)
                host = f"{busy} CPU-bound process(es) beside" if busy else "host as it is"
                out[f"batch {b}, {t} threads, {host}"] = interleave(
                    calls_, rounds=args.rounds, calls=calls)
        finally:
            for proc in burners:
                proc.kill()
                proc.wait()
        if not args.busy:
            break
    return out


def input_table(ort, onnx: str, t: int, args, tmp: Path) -> dict:
    import onnx as onnx_lib

    from edgeclf.export.onnx import uint8_input

    model = onnx_lib.load(onnx)
    uint8_input(model)
    u8 = tmp / "model.uint8.onnx"
    onnx_lib.save(model, str(u8))
    out = {}
    for b, calls in ((1, args.calls), (args.big_batch, args.big_calls)):
        x = sample_batch(b, 224, 224)
        f32, u = session(ort, onnx, t), session(ort, str(u8), t)
        out[f"batch {b}"] = interleave({
            "float32 input (uint8 -> float32 in numpy, per call)": bare_call(f32, x),
            "uint8 input, Cast inside the graph": bare_call(u, x)},
            rounds=args.rounds, calls=calls)
        y1 = f32.run(None, {f32.get_inputs()[0].name: x.astype(np.float32)})[0]
        y2 = u.run(None, {u.get_inputs()[0].name: x})[0]
        out[f"batch {b}"]["max_abs_diff"] = float(np.abs(y1 - y2).max())
    return out


def overhead_table(ort, export: Path, t: int, args) -> dict:
    from edgeclf.runtime import Predictor

    out = {}
    for fname in ("model.onnx", "model.tflite", "model.int8.onnx"):
        path = export / fname
        if not path.is_file():
            continue
        pred = Predictor.from_path(path, threads=t)
        for b, calls in ((1, args.calls), (args.big_batch, args.big_calls)):
            x = sample_batch(b, 224, 224)
            if pred.format == "onnx":   # the very session options the predictor uses
                from edgeclf.runtime._onnx import _session_options

                bare = bare_call(ort.InferenceSession(str(path), _session_options(ort, t),
                                                      providers=["CPUExecutionProvider"]), x)
            else:
                bare = tflite_bare(path, t, x)
            out[f"{fname} batch {b}"] = interleave(
                {"bare runtime": bare, "Predictor.run": lambda x=x, p=pred: p.run(x)},
                rounds=args.rounds, calls=calls)
    return out


def openvino_call(path: str, t: int, x: np.ndarray) -> Fn | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    compiled = core.compile_model(path, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                "INFERENCE_NUM_THREADS": t,
                                                # its default is bf16 where the CPU has it
                                                "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    dtype = np.uint8 if compiled.input(0).get_element_type() == ov.Type.u8 else np.float32
    return lambda: request.infer({0: x.astype(dtype, copy=False)})


def tflite_bare(path: Path, t: int, x: np.ndarray) -> Fn:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=t)
    inp, outd = interp.get_input_details()[0], interp.get_output_details()[0]
    if tuple(inp["shape"]) != x.shape:
        interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
    interp.allocate_tensors()
    dtype = inp["dtype"]

    def call():
        interp.set_tensor(inp["index"], x.astype(dtype, copy=False))
        interp.invoke()
        return interp.get_tensor(outd["index"])
    return call


def int8_table(ort, export: Path, t: int, args) -> dict:
    files = [f for f in ("model.onnx", "model.int8.onnx", "model.int8-u8s8.onnx")
             if (export / f).is_file()]
    out = {}
    for b, calls in ((1, args.calls), (args.big_batch, args.big_calls)):
        x = sample_batch(b, 224, 224)
        out[f"batch {b}"] = interleave({f: bare_call(session(ort, str(export / f), t), x)
                                        for f in files}, rounds=args.rounds, calls=calls)
    return out


def render(res: dict) -> str:
    lines = [f"# Predictor levers (issue 15), {res['date']}", "",
             f"- Machine: {res['cpu']['model']}, {res['cpu']['usable_cores']} usable cores, "
             f"flags {', '.join(res['cpu']['flags'])}; onnxruntime {res['ort']}",
             f"- Load average (1/5/15 min) before {res['load_before']}, after "
             f"{res['load_after']} (2 cores shared with other agents' jobs)",
             f"- Command: `{res['command']}`",
             "- Method: all variants loaded in one process; each round times every variant in "
             "turn (rotating order, 0.1 s pause between variants), figure = median of round "
             "medians; ratio = first row's median / this row's (>1: faster)", ""]
    for title, table in res["tables"].items():
        for sub, rows in table.items():
            lines += [f"## {title} - {sub}", "",
                      "| variant | median ms | vs first | round medians |", "|---|---|---|---|"]
            for name, r in rows.items():
                if not isinstance(r, dict):
                    lines.append(f"| ({name}: {r:.3g}) | | | |")
                    continue
                lines.append(f"| {name} | {r['median_ms']:.2f} | {r['speedup_vs_first']:.3f}x"
                             f" | {', '.join(f'{v:.2f}' for v in r['rounds_ms'])} |")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import onnxruntime as ort

    export = args.run / "export"
    onnx = str(export / "model.onnx")
    only = set(args.only.split(","))
    res = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "cpu": cpu_info(), "ort": ort.__version__,
           "load_before": [round(v, 2) for v in os.getloadavg()],
           "command": "python benchmarks/predictor_levers.py " + " ".join(argv),
           "tables": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if "options" in only:
            res["tables"]["onnxruntime session options, model.onnx, batch 1"] = \
                options_table(ort, onnx, args.threads, args)
        if "spin" in only:
            res["tables"]["Spinning policies vs bare XNNPACK (bare sessions)"] = \
                spin_table(ort, onnx, args.threads, args)
        if "input" in only:
            res["tables"]["ONNX input dtype (bare sessions, same options)"] = \
                input_table(ort, onnx, args.threads, args, Path(tmp))
        if "overhead" in only:
            res["tables"]["Predictor vs bare runtime on the same file"] = \
                overhead_table(ort, export, args.threads, args)
        if "int8" in only:
            res["tables"]["ONNX int8 recipes vs float32 (bare sessions)"] = \
                int8_table(ort, export, args.threads, args)
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"predictor-levers-{stamp}.json", res)
    text = render(res)
    write_text(args.out / f"predictor-levers-{stamp}.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
