"""Plots for the report, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import io
from typing import Any

from .readers import History, num


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _phase_bounds(phases: list[str]) -> list[tuple[int, str]]:
    """(first row index, phase name) of each phase after the first."""
    return [(i, p) for i, p in enumerate(phases) if i > 0 and p != phases[i - 1]]


def training_curves(history: History) -> bytes | None:
    """Loss and accuracy per epoch (train and validation), phase boundaries marked.

    ``None`` when the history holds no plottable column."""
    panels = [("loss", ("loss",), ("val_loss",)),
              ("accuracy", ("accuracy", "acc", "sparse_categorical_accuracy"),
               ("val_accuracy", "val_acc", "val_sparse_categorical_accuracy"))]
    panels = [p for p in panels if history.has(*p[1], *p[2])]
    if not panels or not history.rows:
        return None
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(5.2 * len(panels), 3.4, len(panels))
    x = list(range(1, len(history.rows) + 1))
    for ax, (title, train_cols, val_cols) in zip(axes, panels):
        for cols, label, style in ((train_cols, "train", "-"), (val_cols, "validation", "--")):
            ys = history.series(*cols)
            pts = [(xi, y) for xi, y in zip(x, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", markersize=3, label=label)
        for start, phase in _phase_bounds(history.phases):
            ax.axvline(start + 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"phase {phase}", (start + 0.6, 0.98), xycoords=("data", "axes fraction"),
                        va="top", fontsize=8, color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch (both phases)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _png(fig)


def confusion_matrix(matrix: list[list[Any]], classes: list[str]) -> bytes:
    """The evaluation stage's confusion-matrix figure (row-normalised, recall-sorted), drawn
    from a matrix read from JSON. Raises ValueError for a matrix that is not square."""
    import numpy as np

    from edgeclf.plotting.confusion import draw_confusion

    m = np.array([[num(v) or 0.0 for v in row] for row in matrix], dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    labels = classes if len(classes) == m.shape[0] else [str(i) for i in range(m.shape[0])]
    return _png(draw_confusion(m, labels))


def latency(results: list[dict]) -> bytes | None:
    """The bench's latency chart (when ``bench.png`` itself cannot be shown)."""
    from edgeclf.plotting import latency_panel

    fig, (ax,) = _figure(7.5, 4.2)
    return _png(fig) if latency_panel(ax, results) else None
