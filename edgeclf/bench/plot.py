"""``bench.png``: latency vs batch size per artifact (log scale), and size vs accuracy.

The second panel is drawn only when accuracy per artifact is known, from ``parity.json`` or
the manifest's per-artifact ``parity`` block (whichever has it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgeclf.plotting import latency_panel

log = logging.getLogger(__name__)

ACCURACY_KEYS = ("accuracy", "top1", "top1_accuracy", "test_accuracy", "acc")


def _accuracy(d: Any) -> float | None:
    if not isinstance(d, dict):
        return None
    for k in ACCURACY_KEYS:
        if isinstance(d.get(k), (int, float)):
            return float(d[k])
    for k in ("test", "metrics", "parity"):     # nested: {"test": {"accuracy": ...}}
        acc = _accuracy(d.get(k))
        if acc is not None:
            return acc
    return None


def accuracy_by_artifact(parity_json: Path | None, manifest: Path | None) -> dict[str, dict]:
    """``{file: {"bytes", "accuracy"}}`` for every artifact whose accuracy is recorded."""
    out: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    if manifest is not None and manifest.is_file():
        for a in json.loads(manifest.read_text()).get("artifacts", []):
            sizes[a["file"]] = a.get("bytes")
            acc = _accuracy(a.get("parity"))
            if acc is not None:
                out[a["file"]] = {"bytes": a.get("bytes"), "accuracy": acc}
    if parity_json is not None and parity_json.is_file():
        data = json.loads(parity_json.read_text())
        entries = data.get("artifacts", data.get("results", [])) if isinstance(data, dict) else data
        if isinstance(entries, dict):
            entries = [{"file": k, **v} for k, v in entries.items() if isinstance(v, dict)]
        for e in entries if isinstance(entries, list) else []:
            name = e.get("file") or e.get("artifact") if isinstance(e, dict) else None
            acc = _accuracy(e)
            if name and acc is not None:
                out[name] = {"bytes": e.get("bytes") or sizes.get(name), "accuracy": acc}
    return {k: v for k, v in out.items() if v.get("bytes")}


def plot_bench(result: Any, png: str | Path, *, parity_json: Path | None = None,
               manifest: Path | None = None) -> Path | None:
    """Draw ``png`` from a :class:`edgeclf.bench.BenchResult`; None when nothing succeeded."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", png)
        return None
    rows = [r for r in result.results if r["status"] == "ok" and r["p50_ms"]]
    if not rows:
        return None
    acc = accuracy_by_artifact(parity_json, manifest)
    fig, axes = plt.subplots(1, 2 if acc else 1, figsize=(13 if acc else 7.5, 5),
                             squeeze=False)
    latency_panel(axes[0][0], rows)
    if acc:
        _accuracy_panel(axes[0][1], acc)
    fig.suptitle(f"edgeclf bench {result.date} on {result.machine['cpu']['model']}",
                 fontsize=10)
    fig.tight_layout()
    from edgeclf.fsutil import atomic_path

    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(png)


def _accuracy_panel(ax: Any, acc: dict[str, dict]) -> None:
    for name, d in sorted(acc.items()):
        mb = d["bytes"] / 2**20
        ax.scatter(mb, d["accuracy"] * (100 if d["accuracy"] <= 1 else 1))
        ax.annotate(name, (mb, d["accuracy"] * (100 if d["accuracy"] <= 1 else 1)),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("artifact size (MiB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("size vs accuracy (parity results)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
