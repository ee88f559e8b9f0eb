"""Array-like views of a dataset's preprocessed images: ``images[i]`` is
``preprocess(file_i, contract)`` as uint8 (H, W, 3), whatever holds the pixels.

- a uniform decode cache is a plain ``np.memmap`` (N, H, W, 3) (every image stored at the
  contract size: photos larger than the model input);
- :class:`PackedImages`: a decode cache that stores images smaller than the contract size at
  their own size (never more pixels than the source) and resizes them when read, with the
  contract's own resize (:func:`edgeclf.runtime.preprocess.resize_to_contract`), so a read
  row equals ``preprocess`` bit for bit;
- :class:`StreamImages`: no cache, every read decodes the file (a dataset above the cache
  budget).

The loader reads them with ``images[idx]`` (an index array) and hands worker processes
:func:`source_spec`, from which :func:`open_source` reopens the same view.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

from edgeclf.errors import DataError
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.errors import ImageError
from edgeclf.runtime.preprocess import preprocess, resize_to_contract

PIXELS = "images.u8"
ROWS = "rows.npy"       # int64 (N, 3): byte offset, stored height, stored width (0: failed)


class _RowView(ABC):
    """Shared indexing: ints, slices and index arrays, like a (N, H, W, 3) uint8 array."""

    shape: tuple[int, int, int, int]
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    @abstractmethod
    def row(self, i: int) -> np.ndarray:
        """Image ``i`` preprocessed, uint8 (H, W, 3)."""

    def __getitem__(self, key):  # noqa: ANN001, ANN204 - numpy-style indexing
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"row {i} out of range for {len(self)} images")
            return self.row(i % len(self))
        idx = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = np.empty((len(idx), *self.shape[1:]), np.uint8)
        for k, i in enumerate(idx.tolist()):
            out[k] = self.row(i)
        return out

    def __array__(self, dtype=None, copy=None):  # noqa: ANN001, ANN204
        arr = self[np.arange(len(self))]
        return arr if dtype is None else arr.astype(dtype)


class PackedImages(_RowView):
    """A decode cache whose rows have different stored sizes (see the module doc)."""

    def __init__(self, folder: Path, rows: np.ndarray, contract: Contract) -> None:
        self.folder = Path(folder)
        self.rows = rows
        self.contract = contract
        self.shape = (len(rows), contract.height, contract.width, 3)
        size = os.path.getsize(self.folder / PIXELS)
        self._flat = (np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
                      if size else np.zeros(0, np.uint8))

    def stored(self, i: int) -> np.ndarray:
        """Row ``i`` as stored: the contract size, or the image's own smaller size."""
        off, h, w = (int(v) for v in self.rows[i])
        if not h:
            return np.zeros(self.shape[1:], np.uint8)
        return self._flat[off:off + h * w * 3].reshape(h, w, 3)

    def row(self, i: int) -> np.ndarray:
        raw = self.stored(i)
        if raw.shape == self.shape[1:]:
            return raw
        return np.asarray(resize_to_contract(Image.fromarray(raw, "RGB"), self.contract),
                          dtype=np.uint8)

    def spec(self) -> dict:
        return {"kind": "packed", "folder": str(self.folder), "contract": self.contract.to_json()}


class StreamImages(_RowView):
    """No pixels stored: row ``i`` is ``preprocess(root / relpaths[i])``, decoded per read."""

    def __init__(self, root: Path, relpaths: list[str], contract: Contract) -> None:
        self.root = Path(root)
        self.relpaths = relpaths
        self.contract = contract
        self.shape = (len(relpaths), contract.height, contract.width, 3)

    def row(self, i: int) -> np.ndarray:
        path = self.root / self.relpaths[i]
        try:
            return preprocess(path, self.contract)
        except ImageError as e:
            raise DataError(f"{path}: {e}; the file changed after the dataset was checked "
                            "(run `edgeclf data check` again)") from None

    def spec(self) -> dict:
        return {"kind": "stream", "root": str(self.root), "relpaths": self.relpaths,
                "contract": self.contract.to_json()}


def source_spec(images: object) -> tuple | dict | None:
    """What a worker process needs to reopen ``images`` (None: it cannot)."""
    if isinstance(images, (PackedImages, StreamImages)):
        return images.spec()
    if not isinstance(images, np.memmap) or images.dtype != np.uint8:
        return None
    path = getattr(images, "filename", None)
    if not path or not os.path.isfile(path) or not images.flags.c_contiguous:
        return None
    return (str(path), int(images.offset), tuple(images.shape))


def open_source(spec: tuple | dict):  # noqa: ANN201 - np.memmap or a _RowView
    """Reopen a :func:`source_spec` in another process."""
    if isinstance(spec, tuple):
        path, offset, shape = spec
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
    contract = Contract.from_json(spec["contract"])
    if spec["kind"] == "packed":
        folder = Path(spec["folder"])
        return PackedImages(folder, np.load(folder / ROWS, mmap_mode="r"), contract)
    return StreamImages(Path(spec["root"]), spec["relpaths"], contract)
