"""The latency chart that ``bench.png`` and ``report.html`` both draw (matplotlib, on an
Axes the caller owns, so bench can use pyplot and the report a bare Agg canvas)."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """A finite float, or ``None`` for anything else (strings like "0.9" are accepted;
    booleans are not numbers here). Charts and the report read JSON files with it."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _number(value: Any) -> float | None:
    f = finite_number(value)
    return f if f is not None and f > 0 else None


def latency_series(rows: list[dict]) -> tuple[dict[str, list[tuple[float, float]]], int | None]:
    """``{label: [(batch size, p50 ms), ...]}`` of bench rows that succeeded, CPU rows at the
    largest thread count only (one line per artifact, runner mode and device), and that
    thread count. Rows written by any edgeclf version are accepted; odd ones are skipped."""
    ok = [r for r in rows if isinstance(r, dict) and r.get("status", "ok") == "ok"
          and _number(r.get("batch_size")) and _number(r.get("p50_ms"))]
    threads = max((int(t) for r in ok if (t := _number(r.get("threads")))), default=None)
    series: dict[str, list[tuple[float, float]]] = {}
    for r in ok:
        device = r.get("device", "cpu")
        if device == "cpu" and threads is not None and _number(r.get("threads")) != threads:
            continue
        mode = r.get("mode") or "numpy"
        label = f"{r.get('artifact', '?')} ({device}{'' if mode == 'numpy' else ', ' + mode})"
        series.setdefault(label, []).append((_number(r["batch_size"]), _number(r["p50_ms"])))
    return series, threads


def latency_panel(ax: Any, rows: list[dict]) -> bool:
    """Draw p50 latency against batch size (log-log) on ``ax``; False when no row fits."""
    series, threads = latency_series(rows)
    if not series:
        return False
    import matplotlib
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    colors = matplotlib.colormaps["tab20"]
    for i, (label, pts) in enumerate(sorted(series.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^D"[i // 10 % 4],
                linestyle="-" if i % 2 == 0 else "--", color=colors(i % 20), label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({b for pts in series.values() for b, _ in pts})
    ax.set_xticks(sizes, [f"{b:g}" for b in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("batch size")
    ax.set_ylabel("p50 latency per batch (ms)")
    at = f" (CPU rows at {threads} threads)" if threads else ""
    ax.set_title(f"latency vs batch size{at}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return True
