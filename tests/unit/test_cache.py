"""Decode cache sizes, budget, streaming, full and read-only disks (issue 17 items 1-2)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.data import CacheError, load_or_build, scan_dataset
from edgeclf.data import cache as cache_mod
from edgeclf.data.augment import AugmentConfig
from edgeclf.data.budget import parse_size
from edgeclf.data.loader import BatchLoader
from edgeclf.data.store import ROWS, PackedImages, StreamImages
from edgeclf.errors import ConfigError
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.preprocess import preprocess
from tests.fixtures import images as mk

C = Contract(size=(48, 48))
#: (width, height): smaller than the contract, same pixel count but another shape,
#: larger in pixels but smaller on one side, larger in both, odd sizes
SIZES = [(16, 16), (24, 96), (200, 20), (96, 64), (33, 47), (48, 48), (47, 49)]


def _mixed(root: Path) -> Path:
    for c, color in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
        for i, size in enumerate(SIZES):
            mk.rgb(root / c / f"{i}.{'png' if i % 2 else 'jpg'}", size=size, color=color)
    rotated = Image.fromarray(np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3))
    exif = Image.Exif()
    exif[0x0112] = 6                                       # rotated 90 degrees
    rotated.save(root / "a" / "exif.jpg", exif=exif.tobytes())
    mk.mode_image(root / "b" / "rgba.png", "RGBA", size=(20, 12))
    mk.mode_image(root / "b" / "gray.png", "L", size=(30, 30))
    return root


@pytest.mark.parametrize("contract", [C, Contract(size=(40, 56), resize="squash",
                                                  interpolation="bicubic")])
def test_cached_then_resized_equals_preprocess_bit_for_bit(tmp_path, contract):
    data = _mixed(tmp_path / "data")
    cache = load_or_build(scan_dataset(data), contract, workers=1)
    assert cache.ok.all() and isinstance(cache.images, PackedImages)
    full = contract.height * contract.width
    for i, rel in enumerate(cache.relpaths):
        np.testing.assert_array_equal(cache.images[i], preprocess(data / rel, contract),
                                      err_msg=rel)
        w, h = Image.open(data / rel).size
        stored = cache.images.stored(i)
        assert stored.size // 3 == min(w * h, full), rel     # never more pixels than the source
    batch = cache.images[np.array([3, 0, 3])]               # fancy indexing, as the loader does
    np.testing.assert_array_equal(batch[1], preprocess(data / cache.relpaths[0], contract))


def test_small_images_cost_their_own_pixels_and_large_ones_todays_layout(tmp_path):
    for i in range(6):
        mk.rgb(tmp_path / "small" / ("a" if i % 2 else "b") / f"{i}.jpg", size=(16, 16))
        mk.rgb(tmp_path / "large" / ("a" if i % 2 else "b") / f"{i}.jpg", size=(80, 60))
    small = load_or_build(scan_dataset(tmp_path / "small"), C, workers=1)
    assert small.plan.bytes == 6 * 16 * 16 * 3
    assert os.path.getsize(small.path / "images.u8") == 6 * 16 * 16 * 3
    large = load_or_build(scan_dataset(tmp_path / "large"), C, workers=1)
    assert isinstance(large.images, np.memmap) and large.images.shape == (6, 48, 48, 3)
    assert os.path.getsize(large.path / "images.u8") == 6 * 48 * 48 * 3
    again = load_or_build(scan_dataset(tmp_path / "small"), C, workers=1)
    assert not again.built and again.plan.mode == "reuse"


def test_sizes_and_budgets_parse_and_a_budget_below_one_image_is_an_error(tmp_path):
    assert parse_size("0") == 0 and parse_size("1.5K") == 1536
    assert parse_size("2GiB") == 2 << 30 and parse_size("500m") == 500 << 20
    assert parse_size("none") is None and parse_size(None) is None
    with pytest.raises(ConfigError, match="cannot read the size"):
        parse_size("lots")
    mk.rgb(tmp_path / "d" / "a" / "0.jpg")
    mk.rgb(tmp_path / "d" / "b" / "0.jpg")
    with pytest.raises(ConfigError, match="smaller than one cached image"):
        load_or_build(scan_dataset(tmp_path / "d"), C, budget=100)


def test_over_budget_streams_the_same_pixels_and_writes_no_pixels(tmp_path):
    data = _mixed(tmp_path / "data")
    ds = scan_dataset(data)
    need = load_or_build(ds, C, workers=1, root=tmp_path / "probe").plan.bytes
    streamed = load_or_build(ds, C, workers=1, budget=need - 1)
    assert streamed.streaming and isinstance(streamed.images, StreamImages)
    assert "over the cache budget" in streamed.plan.reason
    assert not (streamed.path / "images.u8").exists()
    for i, rel in enumerate(streamed.relpaths):
        np.testing.assert_array_equal(streamed.images[i], preprocess(data / rel, C))
    again = load_or_build(ds, C, workers=1, budget=0)       # the check is not decoded again
    assert again.streaming and not again.built
    cached = load_or_build(ds, C, workers=1, budget=need)   # room now: pixels replace the index
    assert cached.built and not cached.streaming


@pytest.mark.parametrize("processes", [False, True])
def test_streaming_loader_gives_the_cached_batches_and_augmentation(tmp_path, processes):
    data = _mixed(tmp_path / "data")
    ds = scan_dataset(data)
    cached = load_or_build(ds, C, workers=1)
    streamed = load_or_build(ds, C, workers=1, root=tmp_path / "other", budget=0)
    rows, labels = np.arange(len(ds.items)), np.arange(len(ds.items)) % 2
    kw = dict(batch_size=4, shuffle=True, drop_remainder=True, augment=AugmentConfig(),
              seed=3, workers=2)
    a = BatchLoader(cached.images, rows, labels, **kw)
    b = BatchLoader(streamed.images, rows, labels, processes=processes, **kw)
    assert b.processes == processes
    try:
        for epoch in (0, 1):
            xa = [(x.x.copy(), x.y.copy()) for x in a.epoch(epoch)]
            xb = [(x.x.copy(), x.y.copy()) for x in b.epoch(epoch)]
            assert len(xa) == len(xb) == len(rows) // 4
            for (x1, y1), (x2, y2) in zip(xa, xb):
                np.testing.assert_array_equal(x1, x2)
                np.testing.assert_array_equal(y1, y2)
    finally:
        b.close()


def _no_partials(root: Path) -> None:
    assert not [p for p in root.rglob("*") if ".partial" in p.name]


def test_full_disk_before_decoding_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = _mixed(tmp_path / "data")

    def full(fd, offset, length):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(CacheError, match="disk filled.*nothing was kept.*--cache-budget 0"):
        load_or_build(scan_dataset(data), C, workers=1, root=tmp_path / "c")
    _no_partials(tmp_path / "c")
    assert not list((tmp_path / "c" / "decode").iterdir())


def test_disk_filling_while_writing_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = _mixed(tmp_path / "data")
    real = os.pwrite
    writes = []

    def fills(fd, data, offset):  # noqa: ANN001, ANN202 - the fifth write finds the disk full
        writes.append(offset)
        if len(writes) == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", fills)
    with pytest.raises(CacheError, match="disk filled"):
        load_or_build(scan_dataset(data), C, workers=1, root=tmp_path / "c")
    _no_partials(tmp_path / "c")
    assert not list((tmp_path / "c" / "decode").iterdir())


def test_unwritable_cache_folder_streams_and_training_falls_back(tmp_path, monkeypatch):
    from edgeclf.train.config import TrainConfig
    from edgeclf.train.setup import open_cache

    data = _mixed(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = load_or_build(scan_dataset(data), C, workers=1, root=blocker / "cache")
    assert cache.streaming and "not writable" in cache.plan.reason
    np.testing.assert_array_equal(cache.images[0], preprocess(data / cache.relpaths[0], C))

    monkeypatch.setattr(cache_mod, "_allocate", lambda path, n: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    cfg = TrainConfig(data_dir=str(data), workers=1)
    fell_back = open_cache(cfg, scan_dataset(data), C, None)
    assert fell_back.streaming and fell_back.ok.all()
    _no_partials(Path(os.environ["EDGECLF_CACHE_DIR"]))


def test_version_1_caches_still_open(tmp_path):
    data = tmp_path / "d"
    for i in range(3):
        mk.rgb(data / "a" / f"{i}.jpg", size=(80, 60))
        mk.rgb(data / "b" / f"{i}.jpg", size=(80, 60))
    ds = scan_dataset(data)
    first = load_or_build(ds, C, workers=1)
    (first.path / ROWS).unlink()                 # what version 1 wrote: no rows table
    old = load_or_build(ds, C, workers=1)
    assert not old.built and isinstance(old.images, np.memmap)
    np.testing.assert_array_equal(old.images[2], preprocess(data / old.relpaths[2], C))
