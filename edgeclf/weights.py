"""Pretrained weights for a backbone: ``imagenet``, ``none`` or a file path.

Official Keras-applications files are legacy HDF5 weight files. A no-top file loads in
topological order into the no-top backbone. A with-top file (the only offline MobileNetV2
1.0 file) cannot: Keras 3's ``by_name`` load silently skips most layers (the file's layer
names are those of an older Keras), so it is loaded into the with-top model Keras builds
and transplanted layer by layer, by layer name, into the no-top backbone. Every load is
checked: the number of layers that received weights must equal the number of layers with
weights in the backbone, otherwise :class:`WeightsError` (a partial load is never silent).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from edgeclf.backbones import Backbone
from edgeclf.errors import WeightsError

log = logging.getLogger(__name__)


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights: ``$KERAS_HOME/models`` (``~/.keras``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def weights_id(weights: str) -> str:
    """A short stable identity of a weights choice (used in feature-cache keys)."""
    w = str(weights)
    if w.lower() in ("imagenet", "none"):
        return w.lower()
    path = Path(w)
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()
                          ).hexdigest()[:16]


def find_cached(spec: Backbone) -> Path | None:
    """The official no-top (preferred) or with-top file in the Keras cache, if present."""
    for name in spec.weight_files:
        if name and (keras_cache_dir() / name).is_file():
            return keras_cache_dir() / name
    return None


def load_pretrained(backbone: Any, spec: Backbone, weights: str, size: int) -> int:
    """Put ``weights`` into ``backbone`` (a no-top Keras application built with random
    weights). Returns the number of layers loaded (0 for ``none``)."""
    w = str(weights)
    if w.lower() == "none":
        return 0
    if w.lower() == "imagenet":
        path = find_cached(spec)
        if path is None:
            path = _download(spec, size)
        return load_weights_file(backbone, spec, path)
    return load_weights_file(backbone, spec, Path(w))


def _download(spec: Backbone, size: int) -> Path:
    """Let Keras fetch the official file; offline, fail with both fixes spelled out."""
    try:
        spec.constructor()(include_top=False, weights="imagenet", input_shape=(size, size, 3),
                           **spec.kwargs)
    except Exception as e:  # noqa: BLE001 - any download failure gets the same advice
        raise WeightsError(
            f"ImageNet weights for {spec.name} are not in the Keras cache "
            f"({keras_cache_dir()}) and could not be downloaded ({type(e).__name__}: "
            f"{str(e)[:200]}). Fix: copy the official file {spec.notop_file} (or the "
            f"with-top {spec.top_file}) into {keras_cache_dir()}/, or pass its path with "
            f"--weights PATH (or use --weights none to train from scratch).") from None
    found = find_cached(spec)
    if found is None:  # Keras cached a size-specific file name
        raise WeightsError(f"Keras downloaded {spec.name} weights under a name edgeclf does "
                           f"not know; pass the file with --weights PATH "
                           f"(expected {spec.notop_file} in {keras_cache_dir()})")
    return found


def _weighted(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.weights]


def _h5_layer_count(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            names = group.attrs.get("layer_names")
            if names is None:
                raise WeightsError(f"{path} is not a Keras weights file (no layer_names); "
                                   "expected an official Keras-applications .h5")
            return sum(1 for n in names if len(group[n].attrs.get("weight_names", [])))
    except OSError as e:
        raise WeightsError(f"{path} is not a readable HDF5 weights file ({e})") from None


def load_weights_file(backbone: Any, spec: Backbone, path: Path) -> int:
    """Load an official legacy-HDF5 weights file (with or without top) into ``backbone``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    n_file = _h5_layer_count(path)
    expected = len(_weighted(backbone))
    if n_file == expected:
        try:
            backbone.load_weights(str(path))
        except (ValueError, KeyError) as e:
            raise WeightsError(f"{path} does not fit {spec.name}: {_short(e)}. It is a "
                               f"weights file for another architecture or width") from None
        log.info("loaded %d layers of %s from %s", expected, spec.name, path)
        return expected
    return _transplant(backbone, spec, path, n_file, expected)


def _transplant(backbone: Any, spec: Backbone, path: Path, n_file: int, expected: int) -> int:
    """A with-top file: load it into the with-top model, then copy layer by layer."""
    try:
        full = spec.build(spec.default_size, include_top=True)
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"cannot build the with-top {spec.name} to read {path}: {e}") from None
    if n_file != len(_weighted(full)):
        raise WeightsError(
            f"{path} holds weights for {n_file} layers, but {spec.name} has {expected} "
            f"(no top) or {len(_weighted(full))} (with top): it is a weights file for "
            f"another architecture")
    try:
        full.load_weights(str(path))
    except (ValueError, KeyError) as e:
        raise WeightsError(f"{path} does not fit {spec.name}: {_short(e)}. It is a weights "
                           f"file for another architecture or width") from None
    source = {layer.name: layer for layer in _weighted(full)}
    loaded = 0
    for layer in _weighted(backbone):
        src = source.get(layer.name)
        if src is None:
            continue
        values = src.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise WeightsError(f"{path}: layer {layer.name} has shapes "
                               f"{[v.shape for v in values]}, {spec.name} expects "
                               f"{[tuple(w.shape) for w in layer.weights]}")
        layer.set_weights(values)
        loaded += 1
    if loaded != expected:
        raise WeightsError(f"{path}: only {loaded} of {expected} layers of {spec.name} "
                           "received weights (a partial load); the file does not fit")
    log.info("transplanted %d layers of %s from the with-top file %s", loaded, spec.name, path)
    return loaded


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
