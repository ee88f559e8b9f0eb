"""metrics.json's per-split block and the TensorBoard event writer (pure numpy / stdlib)."""

from __future__ import annotations

import struct

import numpy as np

from edgeclf.metrics import split_metrics
from edgeclf.train.tblog import ScalarWriter, crc32c


def test_split_metrics_on_a_known_confusion():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 1, 1, 2])
    m = split_metrics(labels, probs, ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["n"] == 4 and m["top5"] == 1.0
    assert m["loss"] == round(float(-np.log([0.9, 0.7, 0.3, 0.7]).mean()), 4)
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["b"]["precision"] == 1.0
    assert m["min_recall"] == 0.5 and m["min_recall_class"] == "b"


def test_an_empty_split_has_no_figures_but_every_key():
    m = split_metrics(np.zeros(0, np.int32), np.zeros((0, 0), np.float32), ["a", "b"])
    assert m["n"] == 0 and m["accuracy"] is None and m["loss"] is None
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283


def _records(path):
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        out.append(data[pos + 12:pos + 12 + n])
        pos += 12 + n + 4
    assert pos == len(data)
    return out


def test_scalar_writer_writes_tfrecord_events(tmp_path):
    w = ScalarWriter(tmp_path / "logs")
    w.scalars(3, {"val_accuracy": 0.5, "loss": None})
    records = _records(w.path)
    assert len(records) == 2 and b"brain.Event:2" in records[0]
    assert b"val_accuracy" in records[1] and struct.pack("<f", 0.5) in records[1]
    assert b"loss" not in records[1]


def test_selection_score_is_accuracy_or_with_class_weights_the_mean_recall():
    from edgeclf.metrics import selection_score

    labels = np.array([0] * 8 + [1] * 2)
    pred = np.array([0] * 8 + [0, 1])             # the small class half right
    assert selection_score(pred, labels, balanced=False) == 0.9
    assert selection_score(pred, labels, balanced=True) == 0.75
    everything_large = np.zeros(10, int)          # 80% accurate, small class never found
    assert selection_score(everything_large, labels, balanced=True) == 0.5
    assert np.isnan(selection_score(pred[:0], labels[:0], balanced=True))
