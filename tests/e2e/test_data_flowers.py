"""Real data: the flowers folder from ../shared (skips when it is absent)."""

from __future__ import annotations

from edgeclf.data import prepare_data
from edgeclf.runtime.contract import Contract


def test_flowers_report_counts_and_cross_class_duplicate(shared_dir):
    prepared = prepare_data(shared_dir / "data" / "flowers", Contract(size=(64, 64)))
    r = prepared.report
    assert r.classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert r.n_usable == 3670
    assert ["roses/15922772266_1167a06620.jpg", "tulips/15922772266_1167a06620.jpg"] \
        in r.cross_class_duplicates
    assert len(r.duplicates) == 2
    assert not prepare_data(shared_dir / "data" / "flowers", Contract(size=(64, 64))).cache.built


def test_sign_language_digits_big_photos_are_decoded(shared_dir):
    prepared = prepare_data(shared_dir / "data" / "sign-language-digits", Contract(size=(64, 64)))
    r = prepared.report
    assert r.classes == [str(i) for i in range(10)]
    assert r.n_usable == 2062
    big = [p for p, (w, h) in prepared.cache.sizes.items() if w >= 3000]
    assert len(big) == 3 and all(p.startswith("7/") for p in big)
