"""The classification metrics of a labelled prediction set (numpy only).

:func:`classification_metrics` is what training, parity and ``edgeclf eval`` report: accuracy,
top-k, per-class precision/recall/F1/support, macro F1 and the confusion matrix with its worst
cells. :func:`split_metrics` is its per-split block of ``metrics.json`` (with the loss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from edgeclf.errors import ModelError

#: How many of the largest off-diagonal confusion cells are reported.
WORST_CONFUSIONS = 10
TOP_K = 5
#: Above this many classes eval.json stores the confusion matrix as non-zero cells only.
DENSE_CONFUSION_MAX = 256
_EPS = 1e-7


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Confusion:
    true: str
    predicted: str
    count: int
    rate: float          # fraction of the true class's images predicted as ``predicted``


@dataclass(frozen=True)
class ClassificationMetrics:
    n: int
    accuracy: float
    top_k: int
    top_k_accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: list[ClassScore]
    confusion: np.ndarray                  # (C, C) int: rows true, columns predicted
    worst_confusions: list[Confusion]
    labels: list[str]

    @property
    def top5(self) -> float:
        return self.top_k_accuracy

    def split_summary(self, digits: int = 4) -> dict:
        """The per-split shape of ``metrics.json`` less its ``loss`` (see
        :func:`split_metrics`): accuracy, top5, n, macro_f1, min_recall, min_recall_class,
        mean_recall, per_class {label: {precision, recall, f1, support}}, rounded to
        ``digits``; recalls are over the classes with images."""
        r = lambda x: round(float(x), digits)  # noqa: E731
        recalls = {c.label: c.recall for c in self.per_class if c.support}
        return {"accuracy": r(self.accuracy) if self.n else None,
                "top5": r(self.top_k_accuracy) if self.n else None, "n": self.n,
                "macro_f1": r(self.macro_f1) if self.n else None,
                "min_recall": r(min(recalls.values())) if recalls else None,
                "min_recall_class": min(recalls, key=recalls.get) if recalls else None,
                "mean_recall": r(np.mean(list(recalls.values()))) if recalls else None,
                "per_class": {c.label: {"precision": r(c.precision), "recall": r(c.recall),
                                        "f1": r(c.f1), "support": c.support}
                              for c in self.per_class}}

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "top5": self.top_k_accuracy,
                "top_k": self.top_k, "macro_f1": self.macro_f1,
                "weighted_f1": self.weighted_f1,
                "per_class": [asdict(c) for c in self.per_class],
                "worst_confusions": [asdict(c) for c in self.worst_confusions],
                "labels": list(self.labels), **self._confusion_json()}

    def _confusion_json(self) -> dict:
        """Rows true, columns predicted; for many classes ``[[true, predicted, count]]``."""
        if len(self.labels) <= DENSE_CONFUSION_MAX:
            return {"confusion_matrix": self.confusion.tolist()}
        return {"confusion_cells": [[int(i), int(j), int(self.confusion[i, j])]
                                    for i, j in zip(*np.nonzero(self.confusion))]}


def classification_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                           labels: Sequence[str], *, k: int = TOP_K,
                           worst: int = WORST_CONFUSIONS) -> ClassificationMetrics:
    """Accuracy, top-k, per-class precision/recall/F1/support and the confusion matrix.

    ``probs`` is (N, C) scores (probabilities or logits: only their order matters);
    ``y_true`` holds class indices into ``labels``.
    """
    probs = np.asarray(probs)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    c = len(labels)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N, C) with N = len(y_true) = {y.shape[0]}; "
                         f"got shape {probs.shape}")
    if probs.shape[1] != c:
        raise ModelError(f"the model outputs {probs.shape[1]} classes but there are {c} "
                         "labels: the labels do not belong to this model")
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"y_true holds class indices outside 0..{c - 1}")
    n = int(y.size)
    pred = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    kk = max(1, min(k, c))
    topk = np.argpartition(-probs, kk - 1, axis=1)[:, :kk] if n else np.zeros((0, kk))
    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(c),
                   where=(precision + recall) > 0)
    present = support > 0
    return ClassificationMetrics(
        n=n, accuracy=float(tp.sum() / n) if n else 0.0, top_k=kk,
        top_k_accuracy=float((topk == y[:, None]).any(axis=1).mean()) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        weighted_f1=float((f1 * support).sum() / n) if n else 0.0,
        per_class=[ClassScore(str(labels[i]), float(precision[i]), float(recall[i]),
                              float(f1[i]), int(support[i])) for i in range(c)],
        confusion=cm, worst_confusions=_worst(cm, labels, worst), labels=list(labels))


def _worst(cm: np.ndarray, labels: Sequence[str], worst: int) -> list[Confusion]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    support = cm.sum(axis=1)
    cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
    cells.sort(key=lambda t: (-t[0], -t[0] / support[t[1]], t[1], t[2]))
    return [Confusion(str(labels[i]), str(labels[j]), cnt, float(cnt / support[i]))
            for cnt, i, j in cells[:worst]]


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (``probs`` must be probabilities);
    NaN for no images."""
    if len(labels) == 0:
        return float("nan")
    p = np.clip(probs[np.arange(len(labels)), labels], _EPS, 1.0)
    return float(-np.log(p).mean())


def split_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                  labels: Sequence[str], digits: int = 4) -> dict:
    """One split's block of ``metrics.json``: ``{"accuracy", "top5", "loss", "n", "macro_f1",
    "min_recall", "min_recall_class", "mean_recall", "per_class"}`` in that order (the order
    training has always written), from probabilities."""
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs)
    if probs.size == 0 and y.size == 0:     # an empty split (no batch predicted: shape (0, 0))
        probs = np.zeros((0, len(labels)), np.float32)
    summary = classification_metrics(y, probs, labels).split_summary(digits)
    loss = round(cross_entropy(probs, y), digits) if y.size else None
    out: dict = {}
    for key, value in summary.items():
        out[key] = value
        if key == "top5":
            out["loss"] = loss
    return out


def selection_score(predicted: np.ndarray, labels: np.ndarray, *, balanced: bool) -> float:
    """What picks the best epoch and the head's L2 strength on val: the accuracy, or with
    class weights on (``balanced``) the mean recall over the classes with images (balanced
    accuracy, what the class-weighted loss optimises: a small class counts as much as a
    large one). NaN for no images."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if not len(labels):
        return float("nan")
    if not balanced:
        return float((predicted == labels).mean())
    return float(np.mean([(predicted[labels == c] == c).mean() for c in np.unique(labels)]))
