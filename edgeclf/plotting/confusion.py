"""Confusion-matrix image that stays readable from 2 to 1000+ classes.

Rows are normalised (each row shows where the images of one true class went, so the diagonal
is the per-class recall); classes are sorted by recall, hardest first, so the classes that
need attention sit in the top-left corner. The figure grows with the class count up to a
cap; tick labels are shortened and sized to the cell, and when cells get too small for a
readable font only every k-th label is drawn. Cell values are printed for small matrices.
Classes with no image and no prediction (a large label set evaluated on a few classes) are
left out, and the title says how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.fsutil import atomic_path

#: Smallest font (points) drawn for tick labels; below it labels are thinned out.
MIN_FONT = 4.0
MAX_FONT = 10.0
#: Longest label drawn (characters); longer ones are shortened with an ellipsis.
MAX_LABEL_CHARS = 24
#: Largest matrix side (inches) and inches per class.
MAX_SIDE_IN = 32.0
MIN_SIDE_IN = 5.0
INCH_PER_CLASS = 0.28
#: Cell values are printed up to this many classes.
ANNOTATE_MAX = 25
DPI = 100


@dataclass(frozen=True)
class Layout:
    side_in: float       # matrix side in inches
    font: float          # tick label font size in points
    step: int            # draw every ``step``-th tick label
    annotate: bool


def layout_for(n_classes: int) -> Layout:
    """Figure size, label font and label thinning for ``n_classes``."""
    n = max(1, n_classes)
    side = min(MAX_SIDE_IN, max(MIN_SIDE_IN, INCH_PER_CLASS * n))
    cell_pt = side * 72.0 / n
    font = min(MAX_FONT, cell_pt * 0.75)
    step = 1 if font >= MIN_FONT else math.ceil(MIN_FONT / font)
    return Layout(side_in=side, font=max(font, MIN_FONT) if step > 1 else font, step=step,
                  annotate=n <= ANNOTATE_MAX)


def shorten(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "\u2026"


def sort_order(cm: np.ndarray) -> np.ndarray:
    """Class order for the plot: ascending recall, ties by descending support, then index."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.ones(len(cm)), where=support > 0)
    return np.lexsort((np.arange(len(cm)), -support, recall))


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str | Path, *,
                   title: str = "") -> Path:
    """Write the row-normalised, recall-sorted confusion matrix as a PNG (atomically)."""
    fig = draw_confusion(cm, labels, title=title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def draw_confusion(cm: np.ndarray, labels: Sequence[str], *, title: str = ""):
    """The matplotlib ``Figure`` (Agg canvas, no pyplot state); its first axes is the matrix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    if cm.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix shape {cm.shape} does not fit {len(labels)} labels")
    used = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1) > 0)
    if 0 < len(used) < len(labels):   # e.g. 3 test photos for a 1000-class model
        title += (f"\n({len(labels) - len(used)} classes with no image and no prediction "
                  "left out)")
        cm, labels = cm[np.ix_(used, used)], [labels[i] for i in used]
    n = len(labels)
    order = sort_order(cm)
    norm = normalise_rows(cm)[np.ix_(order, order)]
    names = [shorten(str(labels[i])) for i in order]
    lay = layout_for(n)
    label_in = max(1.0, 0.6 * lay.font / 72 * max((len(s) for s in names), default=1))
    fig = Figure(figsize=(lay.side_in + label_in + 1.9, lay.side_in + label_in + 1.2), dpi=DPI)
    FigureCanvasAgg(fig)
    w, h = fig.get_size_inches()
    left, bottom = label_in + 0.5, label_in + 0.5
    ax = fig.add_axes([left / w, bottom / h, lay.side_in / w, lay.side_in / h])
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                   aspect="auto")
    ticks = np.arange(0, n, lay.step)
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=lay.font)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=lay.font)
    ax.set_xlabel("predicted class", fontsize=MAX_FONT)
    ax.set_ylabel("true class (sorted by recall, hardest first)", fontsize=MAX_FONT)
    if lay.annotate:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center",
                            fontsize=min(lay.font, 8),
                            color="white" if norm[i, j] > 0.5 else "black")
    cax = fig.add_axes([(left + lay.side_in + 0.15) / w, bottom / h, 0.25 / w,
                        lay.side_in / h])
    fig.colorbar(im, cax=cax, label="fraction of the true class")
    if title:
        fig.suptitle(title, fontsize=MAX_FONT + 2, y=1 - 0.2 / h, va="top")
    return fig
