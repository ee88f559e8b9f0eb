"""Classification metrics from predicted probabilities (numpy only)."""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    p = np.clip(probs[np.arange(len(labels)), labels], _EPS, 1.0)
    return float(-np.log(p).mean())


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           classes: list[str]) -> dict:
    """``{"accuracy", "top5", "loss", "n", "per_class": {name: {precision, recall, f1,
    support}}, "macro_f1", "min_recall", "min_recall_class", "mean_recall"}`` — the shape
    ``metrics.json`` publishes per split (recalls over the classes present)."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    per_class = {}
    f1s = []
    recalls: dict[str, float] = {}
    for c, name in enumerate(classes):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(precision, 4), "recall": round(recall, 4),
                           "f1": round(f1, 4), "support": tp + fn}
        if tp + fn:
            f1s.append(f1)
            recalls[name] = recall
    return {"accuracy": round(float((pred == labels).mean()), 4) if len(labels) else None,
            "top5": round(top_k_accuracy(probs, labels, 5), 4) if len(labels) else None,
            "loss": round(cross_entropy(probs, labels), 4) if len(labels) else None,
            "n": int(len(labels)),
            "macro_f1": round(float(np.mean(f1s)), 4) if f1s else None,
            "min_recall": round(min(recalls.values()), 4) if recalls else None,
            "min_recall_class": min(recalls, key=recalls.get) if recalls else None,
            "mean_recall": round(float(np.mean(list(recalls.values()))), 4) if recalls else None,
            "per_class": per_class}
