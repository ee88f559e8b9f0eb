"""Shared fixtures: tiny generated datasets, and ../shared for real-data tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGECLF_SHARED", ROOT.parent / "shared"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own decode cache root, so tests never see each other's caches."""
    monkeypatch.setenv("EDGECLF_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real-data test: {SHARED} is absent (set EDGECLF_SHARED to ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """A tiny generated 5-class dataset (20 images per class, 64x64)."""
    from edgeclf.data.synthetic import make_shapes_dataset

    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=20, size=64)
