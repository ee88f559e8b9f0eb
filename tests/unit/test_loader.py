"""The numpy batch loader over the decode cache, and CPU augmentation (no Keras)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgeclf.data.augment import AugmentConfig, affine_matrix, augment_batch, augment_image
from edgeclf.data.loader import BatchLoader
from edgeclf.errors import ConfigError


@pytest.fixture()
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (23, 16, 16, 3), dtype=np.uint8)


def _epoch(loader: BatchLoader, epoch: int = 0) -> list:
    return [(b.x.copy(), b.y.copy(), b.n) for b in loader.epoch(epoch)]


def test_loader_is_deterministic_per_epoch_and_shuffles_between_epochs(images):
    labels = np.arange(23) % 3
    mk = lambda: BatchLoader(images, np.arange(23), labels, batch_size=4, shuffle=True,  # noqa: E731
                             drop_remainder=True, augment=AugmentConfig(), seed=3, workers=2)
    a, b = _epoch(mk(), 1), _epoch(mk(), 1)
    assert len(a) == 5 and all(x.shape == (4, 16, 16, 3) and x.dtype == np.float32
                               for x, _, _ in a)
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    c = _epoch(mk(), 2)
    assert not all(np.array_equal(ya, yc) for (_, ya, _), (_, yc, _) in zip(a, c))


def test_background_batches_equal_synchronous_ones(images):
    kw = dict(batch_size=5, shuffle=True, augment=AugmentConfig(), seed=1)
    sync = _epoch(BatchLoader(images, np.arange(23), np.zeros(23), workers=1, prefetch=1, **kw))
    bg = _epoch(BatchLoader(images, np.arange(23), np.zeros(23), workers=3, prefetch=4, **kw))
    assert len(sync) == len(bg) == 5
    for (xs, ys, ns), (xb, yb, nb) in zip(sync, bg):
        np.testing.assert_array_equal(xs, xb)
        assert ns == nb


def test_eval_loader_pads_the_last_batch_and_reports_real_rows(images):
    loader = BatchLoader(images, np.arange(10, 23), np.arange(13), batch_size=4, pad=True)
    batches = _epoch(loader)
    assert [n for _, _, n in batches] == [4, 4, 4, 1]
    x, y, _ = batches[-1]
    assert x.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(x[0], images[22].astype(np.float32))
    assert y[0] == 12
    assert loader.stats.images == 13 and loader.stats.batches == 4


def test_rows_come_from_the_given_indices_without_augmentation(images):
    idx = np.array([7, 2, 19])
    batch = next(BatchLoader(images, idx, [0, 1, 2], batch_size=3).epoch())
    np.testing.assert_array_equal(batch.x, images[idx].astype(np.float32))


def test_closing_an_epoch_early_does_not_hang(images):
    loader = BatchLoader(images, np.arange(23), np.zeros(23), batch_size=2, workers=2,
                         prefetch=2, augment=AugmentConfig())
    it = loader.epoch(0)
    next(it)
    it.close()
    assert len(loader) == 12


def test_max_batches_and_bad_arguments(images):
    assert len(BatchLoader(images, np.arange(23), np.zeros(23), batch_size=4,
                           max_batches=2)) == 2
    with pytest.raises(ConfigError):
        BatchLoader(images, np.arange(3), np.zeros(2), batch_size=2)
    with pytest.raises(ConfigError):
        BatchLoader(images, np.arange(3), np.zeros(3), batch_size=0)
    with pytest.raises(ConfigError):
        AugmentConfig(zoom=1.5)


def test_flip_only_mirrors_and_identity_keeps_pixels():
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    flip = AugmentConfig(rotation=0, width_shift=0, height_shift=0, zoom=0, channel_shift=0,
                         horizontal_flip=True)
    outs = {augment_image(img, flip, np.random.default_rng(s)).tobytes() for s in range(20)}
    assert outs == {img.tobytes(), img[:, ::-1].tobytes()}
    off = AugmentConfig.off()
    assert not off.enabled
    np.testing.assert_array_equal(augment_image(img, off, np.random.default_rng(0)), img)


def test_geometric_augmentation_changes_pixels_but_keeps_range_and_shape():
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cfg = AugmentConfig(rotation=30, zoom=0.2, shear=10, channel_shift=30)
    out = augment_batch(img[None], cfg, np.random.default_rng(0))
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    assert not np.array_equal(out[0], img.astype(np.float32))


def test_affine_matrix_without_randomness_is_identity():
    m = affine_matrix(AugmentConfig.off(), np.random.default_rng(0), 10, 10)
    np.testing.assert_allclose(m, np.eye(3), atol=1e-12)


def test_loader_imports_neither_tensorflow_nor_keras():
    assert "edgeclf.data.loader" in sys.modules
    import subprocess

    code = ("import sys, edgeclf.data.loader, edgeclf.data.augment; "
            "print(any(m.split('.')[0] in ('tensorflow', 'keras', 'jax') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def _memmapped(images: np.ndarray, tmp_path) -> np.memmap:
    mm = np.memmap(tmp_path / "cache.u8", dtype=np.uint8, mode="w+", shape=images.shape)
    mm[:] = images
    mm.flush()
    return np.memmap(tmp_path / "cache.u8", dtype=np.uint8, mode="r", shape=images.shape)


def test_process_workers_give_the_thread_loaders_batches(images, tmp_path):
    """Worker processes (the GPU machine's loader) augment exactly as the threads do."""
    mm = _memmapped(images, tmp_path)
    labels = np.arange(23) % 3
    kw = dict(batch_size=4, shuffle=True, drop_remainder=True, augment=AugmentConfig(),
              seed=5, workers=2)
    threads = BatchLoader(mm, np.arange(23), labels, processes=False, **kw)
    procs = BatchLoader(mm, np.arange(23), labels, processes=True, **kw)
    assert procs.processes and not threads.processes
    try:
        for epoch in (0, 1):
            a, b = _epoch(threads, epoch), _epoch(procs, epoch)
            assert len(a) == len(b) == 5
            for (xa, ya, na), (xb, yb, nb) in zip(a, b):
                np.testing.assert_array_equal(xa, xb)
                np.testing.assert_array_equal(ya, yb)
                assert na == nb
        ring = procs._ring.folder
        assert ring.is_dir()
        it = procs.epoch(2)                   # abandoned half-way: the next epoch still works
        next(it)
        it.close()
        assert len(_epoch(procs, 3)) == 5
    finally:
        procs.close()
    assert not ring.exists()


def test_processes_only_for_augmenting_loaders_over_a_memmap(images, tmp_path):
    mm = _memmapped(images, tmp_path)
    idx, labels = np.arange(23), np.zeros(23, np.int32)
    assert not BatchLoader(images, idx, labels, batch_size=4, augment=AugmentConfig(),
                           workers=8).processes          # in-memory array: threads
    assert not BatchLoader(mm, idx, labels, batch_size=4, pad=True, workers=8).processes
    assert not BatchLoader(mm, idx, labels, batch_size=4, augment=AugmentConfig(),
                           workers=2).processes          # few workers: threads
    auto = BatchLoader(mm, idx, labels, batch_size=4, augment=AugmentConfig(), workers=8)
    assert auto.processes
