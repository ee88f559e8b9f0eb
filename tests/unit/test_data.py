"""Dataset layer: scan, validation report, split, decode cache — and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeclf.data import make_split, parse_fractions, prepare_data, scan_dataset
from edgeclf.data.cache import cache_root
from edgeclf.data.split import Split
from edgeclf.errors import ConfigError, DataError
from edgeclf.runtime.contract import Contract
from tests.fixtures import images as mk

C = Contract(size=(32, 32))


def _two_classes(root: Path, n: int = 4) -> Path:
    for i in range(n):
        mk.rgb(root / "cats" / f"c{i}.jpg", color=(200, 40 + i, 40))
        mk.rgb(root / "dogs" / f"d{i}.png", color=(40, 40 + i, 200))
    return root


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_dataset(tmp_path / "nope")


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        scan_dataset(tmp_path)


def test_file_instead_of_folder(tmp_path):
    f = mk.rgb(tmp_path / "x.jpg")
    with pytest.raises(DataError, match="is a file"):
        scan_dataset(f)


def test_one_usable_class_is_an_error_before_training(tmp_path):
    mk.rgb(tmp_path / "only" / "a.jpg")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "b.jpg").write_text("not an image")
    with pytest.raises(DataError, match="at least 2 classes"):
        prepare_data(tmp_path, C)


def test_classes_sorted_hidden_skipped_sniffed_by_content(tmp_path):
    _two_classes(tmp_path)
    mk.rgb(tmp_path / "cats" / "no_extension", fmt="PNG")       # sniffed, not by suffix
    mk.rgb(tmp_path / "cats" / ".hidden.jpg")
    (tmp_path / ".git").mkdir()
    mk.rgb(tmp_path / ".git" / "x.jpg")
    ds = scan_dataset(tmp_path)
    assert ds.classes == ["cats", "dogs"]
    rels = {it.relpath for it in ds.items}
    assert "cats/no_extension" in rels and "cats/.hidden.jpg" not in rels
    assert ds.counts() == {"cats": 5, "dogs": 4}


def test_every_bad_input_is_named_and_good_images_still_train(tmp_path):
    _two_classes(tmp_path)
    cats = tmp_path / "cats"
    (cats / "empty.jpg").write_bytes(b"")
    mk.truncated_jpeg(cats / "truncated.jpg")
    (cats / "text.jpg").write_text("hello, I am not a JPEG")
    mk.png_header(cats / "bomb.png", 40000, 40000)
    (cats / "nested").mkdir()
    mk.rgb(cats / "nested" / "deep.jpg")
    mk.rgb(tmp_path / "dogs" / "tiny.png", size=(4, 4))
    for mode in ("L", "P", "RGBA", "CMYK", "I;16"):
        mk.mode_image(tmp_path / "dogs" / f"mode_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}", mode)
    prepared = prepare_data(tmp_path, C)
    kinds = {p.relpath: p.kind for p in prepared.report.problems}
    assert kinds["cats/empty.jpg"] == "empty"
    assert kinds["cats/text.jpg"] == "not_image"
    assert kinds["cats/truncated.jpg"] == "corrupt"
    assert kinds["cats/bomb.png"] == "too_large"
    assert kinds["cats/nested"] == "nested"
    assert kinds["dogs/tiny.png"] == "too_small"
    usable = set(prepared.usable())
    for mode in ("L", "P", "RGBA", "CMYK", "I16"):
        assert any(f"mode_{mode}" in u for u in usable), mode
    assert prepared.report.counts == {"cats": 4, "dogs": 9}
    assert "cats/truncated.jpg" in " ".join(prepared.report.warnings)
    imgs = prepared.cache.take(sorted(usable))
    assert imgs.shape == (13, 32, 32, 3) and imgs.dtype == np.uint8


def test_unicode_spaces_and_symlinks(tmp_path):
    data = tmp_path / "data"
    mk.rgb(data / "Crème brûlée" / "photo 1.jpg")
    mk.rgb(data / "Crème brûlée" / "фото 2.png")
    real = mk.rgb(tmp_path / "elsewhere" / "real.jpg", color=(10, 200, 10))
    (data / "日本").mkdir()
    os.symlink(real, data / "日本" / "link.jpg")
    mk.rgb(data / "日本" / "b.jpg", color=(10, 210, 10))
    os.symlink(tmp_path / "missing.jpg", data / "日本" / "broken.jpg")
    prepared = prepare_data(data, C)
    assert prepared.report.classes == ["Crème brûlée", "日本"]
    assert "日本/link.jpg" in prepared.usable()
    assert {p.relpath: p.kind for p in prepared.report.problems}["日本/broken.jpg"] == "unreadable"


def test_duplicates_inside_and_across_classes(tmp_path):
    _two_classes(tmp_path)
    (tmp_path / "cats" / "copy.jpg").write_bytes((tmp_path / "cats" / "c0.jpg").read_bytes())
    (tmp_path / "dogs" / "cat_in_dogs.jpg").write_bytes((tmp_path / "cats" / "c1.jpg").read_bytes())
    report = prepare_data(tmp_path, C).report
    assert report.duplicates == [["cats/c0.jpg", "cats/copy.jpg"]]
    assert report.cross_class_duplicates == [["cats/c1.jpg", "dogs/cat_in_dogs.jpg"]]
    assert any("more than one class" in w for w in report.warnings)
    json.dumps(report.to_dict())  # the JSON report is serialisable


def test_empty_class_and_imbalance_reported(tmp_path):
    _two_classes(tmp_path, n=2)
    for i in range(10):
        mk.rgb(tmp_path / "birds" / f"b{i}.jpg")
    (tmp_path / "empty").mkdir()
    report = prepare_data(tmp_path, C).report
    assert report.empty_classes == ["empty"]
    assert report.imbalance == pytest.approx(5.0)
    assert any("imbalance" in w for w in report.warnings)
    # classes >= 5x smaller than the largest are flagged by name (and in the JSON report)
    assert report.small_classes == ["cats", "dogs"]
    assert report.to_dict()["small_classes"] == ["cats", "dogs"]
    assert any("small class" in w and "cats (2)" in w for w in report.warnings)
    mk.rgb(tmp_path / "cats" / "extra.jpg")            # 3 * 5 > 10: no longer flagged
    assert prepare_data(tmp_path, C).report.small_classes == ["dogs"]


def test_decode_cache_is_reused_and_keyed_by_contract(tmp_path):
    _two_classes(tmp_path)
    first = prepare_data(tmp_path, C)
    again = prepare_data(tmp_path, C)
    assert first.cache.built and not again.cache.built
    assert np.array_equal(np.asarray(first.cache.images), np.asarray(again.cache.images))
    other = prepare_data(tmp_path, Contract(size=(16, 24), resize="squash"))
    assert other.cache.built and other.cache.images.shape[1:] == (16, 24, 3)
    mk.rgb(tmp_path / "cats" / "new.jpg")          # content changed -> new fingerprint
    assert prepare_data(tmp_path, C).cache.built
    assert not list(cache_root().rglob("*.partial*"))


def test_split_is_deterministic_stratified_and_stable(tmp_path):
    paths = [f"c{k}/img_{i}.jpg" for k in range(3) for i in range(3 + 7 * k)]
    s1 = make_split(tmp_path, ["c0", "c1", "c2"], paths, seed=0)
    s2 = make_split(tmp_path, ["c0", "c1", "c2"], list(reversed(paths)), seed=0)
    assert s1 == s2
    for k in range(3):
        for name in ("val", "test"):
            assert any(p.startswith(f"c{k}/") for p in s1.paths(name)), (k, name)
    assert sorted(s1.train + s1.val + s1.test) == sorted(paths)
    s3 = make_split(tmp_path, ["c0", "c1", "c2"], paths, seed=1)
    assert s3.test != s1.test
    # pinned: the split must not change across processes, machines or Python versions
    assert make_split(tmp_path, ["c0"], [f"c0/{i}.jpg" for i in range(10)]).test == ["c0/4.jpg"]


def test_split_is_the_same_in_another_process(tmp_path):
    import subprocess
    import sys

    code = ("from edgeclf.data import make_split; import json;"
            "print(json.dumps(make_split('/x', ['a','b'], [f'{c}/{i}.jpg' for c in 'ab' "
            "for i in range(30)], seed=7).to_dict()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2)}
    assert len(outs) == 1


def test_split_fractions_and_json_contract(tmp_path):
    assert parse_fractions("80,10,10") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("80,20", "a,b,c", "-1,50,50", "0,50,50"):
        with pytest.raises(ConfigError):
            parse_fractions(bad)
    paths = [f"a/{i}.jpg" for i in range(20)] + [f"b/{i}.jpg" for i in range(2)]
    s = make_split(tmp_path, ["a", "b"], paths, fractions=parse_fractions("80,10,10"))
    assert (len(s.train), len(s.val), len(s.test)) == (18, 2, 2)
    assert sorted(p for p in s.train if p.startswith("b/")) == ["b/0.jpg", "b/1.jpg"]
    s.write(tmp_path / "split.json")
    d = json.loads((tmp_path / "split.json").read_text())
    assert set(d) >= {"root", "classes", "train", "val", "test"}
    assert Split.read(tmp_path / "split.json") == s
    assert s.labels("test") == [0, 0]
    assert "sha256" not in d                      # none given: none written


def test_split_records_content_hashes_of_its_files(tmp_path):
    root = _two_classes(tmp_path / "data")
    ds = scan_dataset(root)
    hashes = {it.relpath: it.sha256 for it in ds.items}
    s = make_split(root, ds.classes, sorted(hashes), hashes=hashes)
    s.write(tmp_path / "split.json")
    d = json.loads((tmp_path / "split.json").read_text())
    assert d["sha256"] == hashes and sorted(d["sha256"]) == sorted(s.train + s.val + s.test)
    assert Split.read(tmp_path / "split.json").sha256 == hashes
