"""classification_metrics and the confusion-matrix image (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.errors import ModelError
from edgeclf.evaluate import classification_metrics
from edgeclf.metrics import split_metrics
from edgeclf.plotting.confusion import (MIN_FONT, draw_confusion, layout_for, normalise_rows,
                                      plot_confusion, shorten, sort_order)

LABELS = ["cat", "dog", "fox"]


def _onehot(pred: list[int], c: int = 3, conf: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), c), (1 - conf) / (c - 1), np.float32)
    p[np.arange(len(pred)), pred] = conf
    return p


def test_metrics_by_hand():
    y = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y, _onehot(pred), LABELS)
    assert m.n == 6 and m.accuracy == pytest.approx(4 / 6)
    cat, dog, fox = m.per_class
    # cat: 2 of 3 found, both predictions right; dog: 1 of 2, 1 of 2 right; fox: 1/1, 1/2
    assert (cat.precision, cat.recall, cat.support) == (1.0, pytest.approx(2 / 3), 3)
    assert (dog.precision, dog.recall, dog.support) == (0.5, 0.5, 2)
    assert (fox.precision, fox.recall, fox.support) == (0.5, 1.0, 1)
    assert cat.f1 == pytest.approx(0.8) and fox.f1 == pytest.approx(2 / 3)
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m.top_k == 3 and m.top5 == 1.0   # top-k is capped at the class count
    worst = [(c.true, c.predicted, c.count) for c in m.worst_confusions]
    assert worst == [("dog", "fox", 1), ("cat", "dog", 1)]   # higher rate first on ties
    d = m.to_dict()
    assert d["accuracy"] == m.accuracy and d["confusion_matrix"][0] == [2, 1, 0]
    assert d["per_class"][1]["label"] == "dog"


def test_top_k_counts_the_true_class_among_the_k_best():
    c = 8
    probs = np.tile(np.linspace(1.0, 0.1, c, dtype=np.float32), (2, 1))  # ranks 0 > 1 > ...
    m = classification_metrics([4, 6], probs, [str(i) for i in range(c)])
    assert m.top_k == 5 and m.top5 == 0.5 and m.accuracy == 0.0


def test_class_count_mismatch_is_a_clear_error():
    with pytest.raises(ModelError, match="4 classes but there are 3 labels"):
        classification_metrics([0, 1], np.ones((2, 4)) / 4, LABELS)
    with pytest.raises(ValueError):
        classification_metrics([0, 5], _onehot([0, 1]), LABELS)


def test_empty_input():
    m = classification_metrics([], np.zeros((0, 3), np.float32), LABELS)
    assert m.n == 0 and m.accuracy == 0.0 and m.confusion.sum() == 0


def test_sort_order_puts_the_hardest_class_first():
    cm = np.array([[9, 1, 0], [5, 5, 0], [0, 0, 7]])
    assert sort_order(cm).tolist() == [1, 0, 2]
    assert normalise_rows(cm)[1].tolist() == [0.5, 0.5, 0.0]


def test_layout_scales_and_thins_labels():
    small, big, huge = layout_for(5), layout_for(150), layout_for(2000)
    assert small.annotate and not big.annotate
    assert big.side_in > small.side_in and big.step == 1 and big.font >= MIN_FONT
    assert huge.step > 1 and huge.font >= MIN_FONT
    assert shorten("x" * 40).endswith("\u2026") and len(shorten("x" * 40)) == 24


def test_confusion_image_for_150_classes_has_readable_non_overlapping_labels():
    n = 150
    rng = np.random.default_rng(0)
    labels = [f"species_{i:03d}_" + "long" * (i % 9) for i in range(n)]
    y = rng.integers(0, n, 4000)
    pred = np.where(rng.random(4000) < 0.6, y, rng.integers(0, n, 4000))
    cm = np.bincount(y * n + pred, minlength=n * n).reshape(n, n)
    fig = draw_confusion(cm, labels)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    fig_box = fig.bbox
    for ticks, lo, hi in ((ax.get_yticklabels(), "y0", "y1"), (ax.get_xticklabels(), "x0", "x1")):
        boxes = [t.get_window_extent(renderer) for t in ticks if t.get_text()]
        assert len(boxes) == n    # every class is labelled at 150 classes
        spans = sorted((getattr(b, lo), getattr(b, hi)) for b in boxes)
        assert all(a[1] <= b[0] + 0.5 for a, b in zip(spans, spans[1:])), "labels overlap"
        assert all(fig_box.contains(b.x0, b.y0) and fig_box.contains(b.x1, b.y1)
                   for b in boxes), "a label is cut off by the figure edge"
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= MIN_FONT
    assert min(fig.get_size_inches()) * fig.dpi > 1000


def test_confusion_png_is_written(tmp_path):
    from PIL import Image

    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    out = plot_confusion(cm, LABELS, tmp_path / "cm.png", title="three")
    with Image.open(out) as im:
        assert im.format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]   # no temporary left
    with pytest.raises(ValueError, match="does not fit"):
        plot_confusion(cm, LABELS[:2], tmp_path / "bad.png")


def test_metrics_json_split_block_keeps_its_keys_and_the_eval_numbers():
    """Training's metrics.json block is the one classification_metrics plus the loss, with
    the keys in the order metrics.json has always had."""
    rng = np.random.default_rng(3)
    labels = [f"c{i}" for i in range(7)]
    y = rng.integers(0, 7, 300)
    logits = rng.normal(size=(300, 7)) + 2.0 * np.eye(7)[y]
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    block = split_metrics(y, probs, labels)
    assert list(block) == ["accuracy", "top5", "loss", "n", "macro_f1", "min_recall",
                           "min_recall_class", "mean_recall", "per_class"]
    assert list(block["per_class"]["c0"]) == ["precision", "recall", "f1", "support"]
    m = classification_metrics(y, probs, labels)
    assert block["accuracy"] == round(m.accuracy, 4) and block["n"] == m.n == 300
    assert block["macro_f1"] == round(m.macro_f1, 4) and block["top5"] == round(m.top5, 4)
    assert block["loss"] == round(float(-np.log(probs[np.arange(300), y]).mean()), 4)


def test_classes_without_images_or_predictions_are_left_out_of_the_image():
    n = 50
    cm = np.zeros((n, n), int)
    cm[3, 3], cm[7, 7], cm[7, 3], cm[9, 9] = 4, 2, 1, 3
    fig = draw_confusion(cm, [f"c{i}" for i in range(n)], title="few")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c7", "c3", "c9"]
    assert "47 classes" in fig._suptitle.get_text()


def test_eval_json_stores_a_large_confusion_matrix_sparsely():
    from edgeclf.evaluate import DENSE_CONFUSION_MAX

    n = DENSE_CONFUSION_MAX + 1
    m = classification_metrics([0, 1, 1], _onehot([0, 1, 2], c=n), [str(i) for i in range(n)])
    d = m.to_dict()
    assert "confusion_matrix" not in d
    assert d["confusion_cells"] == [[0, 0, 1], [1, 1, 1], [1, 2, 1]]
    assert "confusion_matrix" in classification_metrics([0], _onehot([0]), LABELS).to_dict()
