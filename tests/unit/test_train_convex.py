"""The convex head (numpy + scipy, no Keras): L2 chosen on val, standardisation folded
into a plain kernel/bias, class weighting that lifts a rare class."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.train.convex import balanced_weights, fit_convex_head, softmax


def _blobs(n_per_class, d=16, sep=2.0, seed=0, offset=5.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (len(n_per_class), d))
    x = np.concatenate([rng.normal(c, 1.0, (n, d)) for c, n in zip(centres, n_per_class)])
    y = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    # features on a raw, badly scaled range (like pooled activations): offset + scales
    scales = np.linspace(0.05, 20, d)
    return (x * scales + offset).astype(np.float32), y.astype(np.int64)


def test_fit_is_a_plain_dense_head_on_raw_features_and_beats_chance():
    x, y = _blobs([60, 60, 60])
    xv, yv = _blobs([30, 30, 30], seed=0)
    fit = fit_convex_head(x, y, xv[::2], yv[::2], num_classes=3)
    assert fit.kernel.shape == (16, 3) and fit.bias.shape == (3,)
    probs = softmax(xv @ fit.kernel + fit.bias)
    np.testing.assert_allclose(probs, fit.predict_proba(xv), rtol=1e-5, atol=1e-6)
    assert (probs.argmax(1) == yv).mean() > 0.9
    assert fit.l2 in [r["l2"] for r in fit.grid] and len(fit.grid) > 1
    chosen = [r for r in fit.grid if r["l2"] == fit.l2][0]
    assert chosen["val_accuracy"] == max(r["val_accuracy"] for r in fit.grid)


def test_l2_is_chosen_on_val_not_fixed():
    # many noisy dimensions, few rows: weak regularisation overfits, val picks a strong one
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (40, 200)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    xv = rng.normal(0, 1, (400, 200)).astype(np.float32)
    yv = (xv[:, 0] > 0).astype(np.int64)
    fit = fit_convex_head(x, y, xv, yv, num_classes=2)
    weakest = min(r["l2"] for r in fit.grid)
    assert fit.l2 > weakest


def test_without_val_uses_the_default_strength():
    x, y = _blobs([20, 20])
    fit = fit_convex_head(x, y, x[:0], y[:0], num_classes=2)
    assert fit.val_accuracy is None and len(fit.grid) == 1


def test_class_weighting_lifts_the_rare_class_recall():
    x, y = _blobs([400, 12], d=8, sep=0.6, seed=3)
    xv, yv = _blobs([400, 400], d=8, sep=0.6, seed=3)
    plain = fit_convex_head(x, y, xv[:0], yv[:0], num_classes=2)
    weighted = fit_convex_head(x, y, xv[:0], yv[:0], num_classes=2,
                               class_weight=balanced_weights(y, 2))
    def rare_recall(fit):
        return (fit.predict_proba(xv[yv == 1]).argmax(1) == 1).mean()
    assert rare_recall(weighted) > rare_recall(plain) + 0.1


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="features"):
        fit_convex_head(np.zeros((3, 2)), np.zeros(2, np.int64), np.zeros((0, 2)),
                        np.zeros(0), num_classes=2)


def test_with_class_weights_the_strength_is_chosen_by_val_mean_recall():
    x, y = _blobs([300, 15], d=8, sep=0.8, seed=4)
    xv, yv = _blobs([300, 15], d=8, sep=0.8, seed=5)
    plain = fit_convex_head(x, y, xv, yv, num_classes=2)
    assert plain.val_score == plain.val_accuracy
    assert all("val_mean_recall" not in r for r in plain.grid)
    weighted = fit_convex_head(x, y, xv, yv, num_classes=2,
                               class_weight=balanced_weights(y, 2))
    chosen = [r for r in weighted.grid if r["l2"] == weighted.l2][0]
    assert weighted.val_score == chosen["val_mean_recall"]
    assert chosen["val_mean_recall"] == max(r["val_mean_recall"] for r in weighted.grid)
    recalls = [(weighted.predict_proba(xv[yv == k]).argmax(1) == k).mean() for k in (0, 1)]
    assert weighted.val_score == pytest.approx(np.mean(recalls), abs=1e-4)
