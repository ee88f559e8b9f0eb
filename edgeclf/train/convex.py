"""The convex head: multinomial logistic regression on cached features, solved full-batch
with L-BFGS (scipy), its L2 strength chosen on the validation split.

Features are centred and scaled by one global factor for the solver (one grid of strengths
fits every backbone) and the scaling is folded back into the weights, so the result is an ordinary
``Dense`` kernel and bias on the raw pooled features: nothing is added at inference.
numpy + scipy only (no Keras), so it is tested on its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from edgeclf.metrics import selection_score

log = logging.getLogger(__name__)

#: L2 strengths tried (on standardised features, loss averaged over rows), strongest first
#: so that each fit warm-starts the next.
L2_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
#: Used when there is no validation split to choose on.
DEFAULT_L2 = 1e-3
MAX_ITER = 400
#: BLAS threads for the solver. Its products are small (rows x features x classes) and run
#: thousands of times: OpenBLAS's threads cost more than they give, badly so when the cores
#: are busy (9,000 x 1,280 x 10 classes at load 5 on 2 cores: 72 s threaded, 10.7 s with
#: one thread; 3,000 x 1,280 x 101: 322 s vs 48 s).
BLAS_THREADS = 1


@dataclass
class ConvexFit:
    """A fitted head: ``probs = softmax(x @ kernel + bias)`` on raw features."""

    kernel: np.ndarray            # (D, C) float32
    bias: np.ndarray              # (C,) float32
    l2: float
    val_accuracy: float | None
    val_loss: float | None
    train_accuracy: float
    seconds: float
    grid: list[dict] = field(default_factory=list)   # {"l2", "val_accuracy", "val_loss", "iterations"}
    #: what chose ``l2`` (:func:`edgeclf.metrics.selection_score`): the val accuracy, or
    #: with class weights the val mean recall (also in the grid rows, ``val_mean_recall``)
    val_score: float | None = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(x, np.float32) @ self.kernel + self.bias)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def balanced_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (C * n_c) per class (absent classes get the weight of a one-image class)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def _objective(theta: np.ndarray, x: np.ndarray, y1: np.ndarray, sw: np.ndarray,
               l2: float) -> tuple[float, np.ndarray]:
    d, c = x.shape[1], y1.shape[1]
    w = theta[:d * c].reshape(d, c).astype(np.float32)
    b = theta[d * c:].astype(np.float32)
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_p = logits - log_z
    loss = float(-(sw * (y1 * log_p).sum(axis=1)).sum()) + 0.5 * l2 * float((w * w).sum())
    delta = (np.exp(log_p) - y1) * sw[:, None]
    grad_w = x.T @ delta + l2 * w
    grad_b = delta.sum(axis=0)
    return loss, np.concatenate([grad_w.ravel(), grad_b]).astype(np.float64)


def _solve(x: np.ndarray, y1: np.ndarray, sw: np.ndarray, l2: float,
           theta0: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy.optimize import minimize

    res = minimize(_objective, theta0, args=(x, y1, sw, l2), jac=True, method="L-BFGS-B",
                   options={"maxiter": MAX_ITER, "gtol": 1e-6})
    return res.x, int(res.nit)


def _split_theta(theta: np.ndarray, d: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    return (theta[:d * c].reshape(d, c).astype(np.float32),
            theta[d * c:].astype(np.float32))


def _xent(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.log(p).mean())


def fit_convex_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                    y_val: np.ndarray, *, num_classes: int,
                    class_weight: np.ndarray | None = None,
                    grid: tuple[float, ...] = L2_GRID) -> ConvexFit:
    """Fit softmax regression for every L2 strength of ``grid`` (warm-started, strongest
    first) and keep the one with the best validation score (ties: lower validation loss):
    the accuracy, or with ``class_weight`` the mean recall
    (:func:`edgeclf.metrics.selection_score`). Without validation rows, :data:`DEFAULT_L2`
    is used."""
    t0 = time.perf_counter()
    x_train = np.asarray(x_train, np.float32)
    y_train = np.asarray(y_train, np.int64)
    if x_train.ndim != 2 or len(x_train) != len(y_train) or not len(x_train):
        raise ValueError(f"fit_convex_head needs (n, D) features and n labels, got "
                         f"{x_train.shape} and {y_train.shape}")
    mean = x_train.mean(axis=0)
    # one scale for every feature: the L2 penalty keeps the geometry of the raw features
    # (per-feature standardisation lifts near-constant, noisy features to the same weight)
    spread = float(x_train.std())
    scale = np.full(x_train.shape[1], spread if spread > 1e-6 else 1.0, np.float32)
    xs = (x_train - mean) / scale
    d, c = xs.shape[1], num_classes
    y1 = np.zeros((len(y_train), c), np.float32)
    y1[np.arange(len(y_train)), y_train] = 1.0
    sw = (class_weight[y_train] if class_weight is not None
          else np.ones(len(y_train), np.float32)).astype(np.float32)
    sw = sw / sw.sum()
    have_val = len(y_val) > 0
    balanced = class_weight is not None
    xv = (np.asarray(x_val, np.float32) - mean) / scale if have_val else None
    theta = np.zeros(d * c + c, np.float64)
    best: tuple | None = None
    rows = []
    for l2 in (grid if have_val else (DEFAULT_L2,)):
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            theta, nit = _solve(xs, y1, sw, l2, theta)
        row = {"l2": l2, "iterations": nit, "val_accuracy": None, "val_loss": None}
        if have_val:
            w, b = _split_theta(theta, d, c)
            pv = softmax(xv @ w + b)
            pred = pv.argmax(1)
            row["val_accuracy"] = round(float((pred == y_val).mean()), 4)
            row["val_loss"] = round(_xent(pv, np.asarray(y_val, np.int64)), 4)
            if balanced:
                row["val_mean_recall"] = round(selection_score(pred, y_val, balanced=True), 4)
            key = (row.get("val_mean_recall", row["val_accuracy"]), -row["val_loss"])
        else:
            key = (0.0, 0.0)
        rows.append(row)
        if best is None or key > best[0]:
            best = (key, theta.copy(), row)
    _, theta, row = best
    w, b = _split_theta(theta, d, c)
    kernel = (w / scale[:, None]).astype(np.float32)     # fold the standardisation back
    bias = (b - (mean / scale) @ w).astype(np.float32)
    train_acc = float((np.argmax(x_train @ kernel + bias, axis=1) == y_train).mean())
    fit = ConvexFit(kernel=kernel, bias=bias, l2=row["l2"],
                    val_accuracy=row["val_accuracy"], val_loss=row["val_loss"],
                    train_accuracy=round(train_acc, 4),
                    seconds=round(time.perf_counter() - t0, 2), grid=rows,
                    val_score=row.get("val_mean_recall", row["val_accuracy"]))
    log.info("convex head: L2 %g chosen on val (val acc %s%s) in %.1fs over %d strengths",
             fit.l2, fit.val_accuracy, f", mean recall {fit.val_score}" if balanced else "",
             fit.seconds, len(rows))
    return fit
