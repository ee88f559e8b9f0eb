"""Bad and awkward image input at the preprocessing level (issue 2 "Bad input", issue 6).

Every file is generated here. Usable oddities (modes, 16-bit, EXIF rotation) must give the
right pixels; unusable ones must raise ImageError naming the file, nothing else.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from edgeclf.runtime import Contract, ImageError, preprocess, preprocess_batch
from tests.fixtures.bad_images import jpeg_bytes, unusable_image

SQUARE = Contract(size=(32, 32), resize="squash")


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "one_pixel", "bomb",
                                  "directory", "missing"])
def test_unusable_files_raise_image_error_naming_the_file(tmp_path, kind):
    path = unusable_image(tmp_path, kind)
    with pytest.raises(ImageError) as info:
        preprocess(path, SQUARE)
    assert str(path) in str(info.value) and info.value.source == path
    if kind == "bomb":
        assert "decompression-bomb" in str(info.value) or "too large" in str(info.value)
    with pytest.raises(ImageError):  # the same bytes without a name
        preprocess(path.read_bytes() if path.is_file() else b"", SQUARE)


def test_batch_reports_each_bad_file_and_keeps_the_good(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 40), (0, 200, 0)).save(good)
    sources = [good, unusable_image(tmp_path, "text"), good, unusable_image(tmp_path, "truncated")]
    result = preprocess_batch(sources, SQUARE, threads=2)
    assert result.ok == [0, 2] and [i for i, _ in result.errors] == [1, 3]
    assert result.array.shape == (2, 32, 32, 3) and result.array[:, :, :, 1].min() == 200


@pytest.mark.parametrize("mode,expect", [
    ("L", (128, 128, 128)), ("P", (0, 120, 250)), ("RGBA", (127, 252, 127)),
    ("LA", (191, 191, 191)), ("CMYK", None), ("I;16", None), ("1", (255, 255, 255)),
])
def test_image_modes(tmp_path, mode, expect):
    size = (48, 40)
    if mode == "P":
        img = Image.new("RGB", size, (0, 120, 250)).convert("P")
    elif mode == "RGBA":
        img = Image.new("RGBA", size, (0, 250, 0, 128))  # half transparent over white
    elif mode == "LA":
        img = Image.new("LA", size, (128, 128))
    elif mode == "CMYK":
        img = Image.new("CMYK", size, (0, 255, 255, 0))  # pure red in CMYK
    elif mode == "I;16":
        img = Image.fromarray(np.full((40, 48), 0x8000, np.uint16))
    elif mode == "1":
        img = Image.new("1", size, 1)
    else:
        img = Image.new(mode, size, 128)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    out = preprocess(path, SQUARE)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    mean = out.reshape(-1, 3).mean(axis=0)
    if mode == "CMYK":
        assert mean[0] > 200 and mean[1] < 60 and mean[2] < 60
    elif mode == "I;16":
        np.testing.assert_allclose(mean, [0x8000 / 257] * 3, atol=1)
    else:
        np.testing.assert_allclose(mean, expect, atol=2)


def test_16bit_dark_image_stays_dark():
    dark = Image.fromarray(np.full((40, 48), 200, np.uint16))  # 200/65535: nearly black
    buf = io.BytesIO()
    dark.save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    assert preprocess(buf.getvalue(), SQUARE).max() <= 1


def test_16bit_rgb_png(tmp_path):
    arr = np.zeros((40, 48, 3), np.uint16)
    arr[..., 2] = 65535
    # Pillow cannot write 16-bit RGB; build the PNG by hand (IHDR bit depth 16, colour type 2)
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(40))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 40, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    out = preprocess(png, SQUARE)
    assert out[..., 2].min() == 255 and out[..., :2].max() == 0


def test_exif_rotation_is_applied():
    arr = np.zeros((30, 60, 3), np.uint8)
    arr[:, :30] = (255, 0, 0)    # left half red
    arr[:, 30:] = (0, 0, 255)    # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6             # display = stored rotated 90 degrees clockwise
    out = preprocess(jpeg_bytes(arr, exif=exif), SQUARE)
    top, bottom = out[:10].reshape(-1, 3).mean(0), out[-10:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60, top          # left edge became the top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_caller_pil_image_is_not_changed():
    data = jpeg_bytes(np.full((400, 600, 3), 90, np.uint8))
    img = Image.open(io.BytesIO(data))
    preprocess(img, SQUARE)
    assert img.size == (600, 400) and img.mode == "RGB"


@pytest.mark.parametrize("arr", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 5), np.uint8),
                                 np.zeros((0, 10, 3), np.uint8), np.zeros((2, 2), np.uint8),
                                 np.zeros((4, 10, 10, 3), np.uint8)])
def test_bad_arrays(arr):
    with pytest.raises(ImageError):
        preprocess(arr, SQUARE)


@pytest.mark.parametrize("source", [None, 42, 3.5, object(), ["a"]])
def test_not_an_image_source(source):
    with pytest.raises(ImageError):
        preprocess(source, SQUARE)


def test_crop_box_rounding_stays_inside_the_image():
    # 15 / (15 / 13) == 13.000000000000002: the crop box once started at y = -1e-15 and
    # Pillow refused it ("box offset can't be negative"); found by the fuzz test
    img = Image.fromarray(np.zeros((13, 15, 3), np.uint8))
    assert preprocess(img, Contract(size=(13, 15), resize="crop")).shape == (13, 15, 3)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_float_image_with_nan_and_inf():
    # a 32-bit float TIFF with NaN/inf (corrupt scientific data): no warning, NaN/inf -> 0
    arr = np.tile(np.array([[np.nan, np.inf], [-np.inf, 0.5]], np.float32), (8, 8))
    buf = io.BytesIO()
    Image.fromarray(arr, "F").save(buf, format="TIFF")
    out = preprocess(buf.getvalue(), Contract(size=(16, 16), resize="squash",
                                               interpolation="nearest"))
    assert set(np.unique(out)) <= {0, 128}  # 0.5 in a 0..1 float image is mid-grey
