"""Generate the awkward image files real users have (for bad-input tests)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def rgb(path: Path, size=(48, 40), color=(200, 30, 30), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    arr = np.clip(np.array(color, np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(arr.astype(np.uint8)).save(path, format=fmt)
    return path


def mode_image(path: Path, mode: str, size=(48, 40)) -> Path:
    """An image saved in Pillow mode L, P, RGBA, CMYK or I;16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        arr = (np.arange(w * h, dtype=np.uint32).reshape(h, w) * 37 % 65535).astype(np.uint16)
        img = Image.fromarray(arr)
        assert img.mode.startswith("I"), img.mode
        img.save(path)
    elif mode == "CMYK":
        Image.new("CMYK", size, (10, 200, 30, 5)).save(path, format="JPEG")
    elif mode == "P":
        Image.new("RGB", size, (0, 120, 250)).convert("P").save(path)
    elif mode == "RGBA":
        Image.new("RGBA", size, (0, 250, 0, 128)).save(path)
    else:
        Image.new(mode, size, 128).save(path)
    return path


def truncated_jpeg(path: Path) -> Path:
    rgb(path.with_suffix(".full.jpg"), size=(160, 120))  # headers ~600 B, data ~10 kB
    data = path.with_suffix(".full.jpg").read_bytes()
    path.with_suffix(".full.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A valid PNG header that claims a huge size (a decompression bomb), tiny on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path
