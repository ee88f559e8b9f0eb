"""Which artifact ``Predictor.from_path(RUN)`` loads when the caller names none.

Among the run's artifacts that passed ``edgeclf parity`` (the manifest entry's ``"parity"``
summary), the one with the lowest batch-1 p50 through the predictor in the latest
``RUN/bench.json`` figure measured on this machine (same CPU model and usable cores) for the
requested device, at the requested thread count (else the nearest one measured). A bench
older than the artifact, or of another file size, does not count. Anything missing: the
float32 ONNX, as before. An explicit file, ``format=`` or ``quantization=`` is always
honoured (the choice is never made then). Stdlib only.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

RUNTIME_FORMATS = ("onnx", "tflite")
DEFAULT = ("onnx", "none")


def machine() -> tuple[str, int]:
    """(CPU model, usable cores): what a bench.json entry must match to count here (read
    as ``edgeclf.machine.cpu_info`` records it; stdlib only, as the runtime must be)."""
    import platform

    model = platform.processor() or platform.machine()
    if model in ("", platform.machine()):
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key.strip() in ("model name", "Model", "Hardware"):
                        model = value.strip()
                        break
        except OSError:
            pass
    return model, len(os.sched_getaffinity(0))


def _bench_entries(export_dir: Path) -> tuple[Path, list[dict]]:
    bench = export_dir.parent / "bench.json"
    try:
        runs = json.loads(bench.read_text()).get("runs", [])
    except (OSError, ValueError, AttributeError):
        return bench, []
    return bench, [r for r in runs if isinstance(r, dict)]


def _on_this_machine(entry: dict, here: tuple[str, int]) -> bool:
    cpu = (entry.get("machine") or {}).get("cpu") or {}
    return (cpu.get("model"), cpu.get("usable_cores")) == here


def _runnable(fmt: str) -> bool:
    if fmt == "tflite":
        return (importlib.util.find_spec("ai_edge_litert") is not None
                or importlib.util.find_spec("tensorflow") is not None)
    return True


def choose(export_dir: Path, manifest: dict, *, device: str,
           threads: int | None) -> tuple[dict | None, str]:
    """The manifest entry to load (None: the default float32 ONNX) and why, in words."""
    passed = {a["file"]: a for a in manifest.get("artifacts", [])
              if isinstance(a, dict) and a.get("format") in RUNTIME_FORMATS
              and (a.get("parity") or {}).get("passed") is True and _runnable(a["format"])}
    default = "the float32 ONNX artifact (the default)"
    if not passed:
        return None, f"{default}: no artifact of the run has passed `edgeclf parity`"
    bench, entries = _bench_entries(export_dir)
    here = machine()
    entries = [e for e in entries if _on_this_machine(e, here)]
    if not entries:
        return None, f"{default}: {bench} has no benchmark of this machine ({here[0]})"
    wanted = threads or here[1]
    latest: dict[tuple[str, int], tuple[dict, str]] = {}
    for entry in entries:                    # oldest first: a later figure replaces it
        for r in _rows(entry, passed, device):
            latest[(r["artifact"], r["threads"])] = (r, str(entry.get("date", "?")))
    if not latest:
        return None, (f"{default}: {bench} has no batch-1 predictor figure, on {device}, of "
                      "a parity-passing artifact as it is now")
    nearest = min({t for _, t in latest}, key=lambda t: (abs(t - wanted), -t))
    best, date = min((v for (_, t), v in latest.items() if t == nearest),
                     key=lambda v: v[0]["p50_ms"])
    why = (f"{best['artifact']}: the fastest parity-passing artifact on this machine "
           f"({best['p50_ms']:.2f} ms p50, batch 1, {nearest} threads, {best['device']}; "
           f"{bench.name} of {date})")
    return passed[best["artifact"]], why


def _rows(entry: dict, passed: dict[str, dict], device: str) -> list[dict]:
    rows = [r for r in entry.get("results", []) if isinstance(r, dict)
            and r.get("runner") == "predictor" and r.get("status") == "ok"
            and r.get("batch_size") == 1 and r.get("p50_ms") and r.get("artifact") in passed
            and _same_file(r, passed[r["artifact"]], entry)]
    devices = {r.get("device") for r in rows}
    dev = device if device != "auto" else ("gpu" if "gpu" in devices else "cpu")
    return [r for r in rows if r.get("device") == dev and isinstance(r.get("threads"), int)]


def _same_file(row: dict, artifact: dict, entry: dict) -> bool:
    """The bench measured this very export: same size, and not older than the artifact."""
    if row.get("bytes") is not None and row.get("bytes") != artifact.get("bytes"):
        return False
    created, measured = artifact.get("created"), entry.get("date")
    return not (created and measured and str(measured) < str(created))
