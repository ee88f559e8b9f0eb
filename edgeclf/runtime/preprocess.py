"""The one implementation of the preprocessing contract (numpy + Pillow only).

decode -> EXIF orientation -> RGB (grayscale, palette, RGBA, CMYK, 16-bit handled) ->
resize (shorter side + centre crop, or squash) with a fixed interpolation -> uint8 HxWx3.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

from .contract import Contract
from .errors import ImageError

#: Images with more pixels than this are refused before decoding (decompression bombs).
MAX_PIXELS = 100_000_000
#: Images whose shorter side is below this are refused: they carry no usable content.
MIN_SIDE = 8

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError,
                  Image.DecompressionBombError, MemoryError, IndexError, KeyError)


def open_image(source: Any, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image lazily (header only) from a path, bytes, file object or PIL image.

    Raises :class:`ImageError` for anything that is not a readable image or that has more
    than ``max_pixels`` pixels (checked before any pixel is decoded).
    """
    if isinstance(source, Image.Image):
        img = source
    else:
        name = source if isinstance(source, (str, os.PathLike)) else None
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                fp: Any = io.BytesIO(bytes(source))
            elif isinstance(source, (str, os.PathLike)):
                if not Path(source).is_file():
                    raise ImageError("no such file" if not Path(source).exists()
                                     else "not a file", source)
                fp = os.fspath(source)
            elif hasattr(source, "read"):
                fp = source
            else:
                raise ImageError(f"cannot read an image from {type(source).__name__}")
            # No warnings.catch_warnings() here: it is not thread-safe (preprocess_batch runs
            # in a pool) and the explicit max_pixels check below does the guarding.
            img = Image.open(fp)
        except ImageError:
            raise
        except Image.DecompressionBombError as e:
            raise ImageError(f"image too large to decode safely ({e})", name) from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"not a readable image ({type(e).__name__}: {e})", name) from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(f"image is {w}x{h} = {w * h:,} pixels, over the limit of "
                         f"{max_pixels:,} (decompression-bomb guard)", _name(source))
    if min(w, h) < 1:
        raise ImageError(f"image has no pixels ({w}x{h})", _name(source))
    return img


def _name(source: Any) -> Any:
    return source if isinstance(source, (str, os.PathLike)) else None


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # broken EXIF must not stop an otherwise good image
        return 1


def _draft(img: Image.Image, contract: Contract) -> None:
    """Let the JPEG decoder downscale by a power of two while staying above the target."""
    if img.format != "JPEG" or img.mode not in ("RGB", "L", "YCbCr"):
        return
    w, h = img.size
    if _orientation(img) in _ROTATING_ORIENTATIONS:
        w, h = h, w
    th, tw = contract.size
    if contract.resize == "crop":
        scale = max(th / h, tw / w)
        need = (w * scale, h * scale)
    else:
        need = (tw, th)
    if _orientation(img) in _ROTATING_ORIENTATIONS:
        need = (need[1], need[0])
    # draft keeps the result >= the requested size; ask for 2x to keep resampling quality.
    img.draft(img.mode, (int(need[0] * 2) + 1, int(need[1] * 2) + 1))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        with np.errstate(all="ignore"):  # corrupt float data: NaN/inf become 0 below
            arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # always 16-bit: a dark image must stay dark
        elif mode == "F" and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        elif mode == "I" and arr.size and arr.max() > 255:
            arr = arr / 257.0
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_to_contract(img: Image.Image, contract: Contract) -> Image.Image:
    th, tw = contract.size
    w, h = img.size
    resample = _RESAMPLE[contract.interpolation]
    if contract.resize == "squash":
        box = (0.0, 0.0, float(w), float(h))
    else:
        target_aspect = tw / th
        if w / h > target_aspect:
            cw = h * target_aspect
            box = ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
        else:
            ch = w / target_aspect
            box = (0.0, (h - ch) / 2, float(w), (h + ch) / 2)
        # float rounding (e.g. 15/(15/13) = 13.000000000000002) must not leave the image:
        # Pillow refuses a box offset below 0 (found by the fuzz test)
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
    if img.size == (tw, th) and box == (0.0, 0.0, float(w), float(h)):
        return img
    return img.resize((tw, th), resample=resample, box=box)


def preprocess(source: Any, contract: Contract, *, max_pixels: int = MAX_PIXELS,
               min_side: int = MIN_SIDE) -> np.ndarray:
    """Apply the contract to one image: returns a uint8 array of shape (H, W, 3).

    ``source`` may be a path, bytes, a file object, a PIL image, or a uint8 array
    (HxW, HxWx1, HxWx3 or HxWx4). Raises :class:`ImageError` for unusable input.
    """
    if isinstance(source, np.ndarray):
        img = _array_to_image(source)
    else:
        img = open_image(source, max_pixels=max_pixels)
    opened = img if img is not source else None  # close what we opened, never the caller's
    try:
        return _apply(img, source, contract, min_side, own=opened is not None)
    finally:
        if opened is not None:
            opened.close()


def decode_rgb(source: Any, contract: Contract, *, max_pixels: int = MAX_PIXELS,
               min_side: int = MIN_SIDE) -> Image.Image:
    """The contract up to (not including) the final resize: decode, EXIF orientation, RGB.

    ``resize_to_contract(decode_rgb(x, c), c)`` is ``preprocess(x, c)`` bit for bit (the
    decode cache stores small images this way and resizes them when read).
    """
    if isinstance(source, np.ndarray):
        img = _array_to_image(source)
    else:
        img = open_image(source, max_pixels=max_pixels)
    own = img is not source
    try:
        rgb = _decode(img, source, contract, min_side, own=own)
    except BaseException:
        if own:
            img.close()
        raise
    if own and rgb is not img:
        img.close()
    return rgb


def _decode(img: Image.Image, source: Any, contract: Contract, min_side: int, *,
            own: bool) -> Image.Image:
    w, h = img.size
    if min(w, h) < min_side:
        raise ImageError(f"image is {w}x{h}, smaller than the minimum side of {min_side} px",
                         _name(source))
    try:
        if own:  # draft() changes the image in place: never do it to the caller's image
            _draft(img, contract)
        img.load()
        img = ImageOps.exif_transpose(img) if _orientation(img) != 1 else img
        return to_rgb(img)
    except ImageError:
        raise
    except _DECODE_ERRORS as e:
        raise ImageError(f"cannot decode image ({type(e).__name__}: {e})",
                         _name(source)) from None


def _apply(img: Image.Image, source: Any, contract: Contract, min_side: int, *,
           own: bool) -> np.ndarray:
    img = _decode(img, source, contract, min_side, own=own)
    try:
        out = resize_to_contract(img, contract)
        arr = np.asarray(out, dtype=np.uint8)
    except ImageError:
        raise
    except _DECODE_ERRORS as e:
        raise ImageError(f"cannot decode image ({type(e).__name__}: {e})",
                         _name(source)) from None
    if arr.shape != (contract.height, contract.width, 3):  # pragma: no cover - defensive
        raise ImageError(f"preprocessing produced shape {arr.shape}", _name(source))
    return arr


def _array_to_image(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape "
                         f"{arr.shape}")
    if arr.dtype != np.uint8:
        raise ImageError(f"an image array must be uint8 (0..255); got {arr.dtype}")
    if min(arr.shape[:2]) < 1:
        raise ImageError(f"image array has no pixels: shape {arr.shape}")
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(arr), mode)


@dataclass
class BatchResult:
    """Preprocessed images that worked, and the errors of those that did not."""

    array: np.ndarray                      # (n_ok, H, W, 3) uint8
    ok: list[int] = field(default_factory=list)          # indices into the input
    errors: list[tuple[int, ImageError]] = field(default_factory=list)


def preprocess_batch(sources: Sequence[Any] | Iterable[Any], contract: Contract, *,
                     threads: int | None = None, max_pixels: int = MAX_PIXELS,
                     min_side: int = MIN_SIDE) -> BatchResult:
    """Preprocess many images in a thread pool (Pillow releases the GIL while decoding).

    Unusable images do not stop the batch: they are returned in ``errors``.
    """
    sources = list(sources)
    out = np.empty((len(sources), contract.height, contract.width, 3), np.uint8)
    result = BatchResult(array=out)

    def one(i: int) -> tuple[int, ImageError | None]:
        try:
            out[i] = preprocess(sources[i], contract, max_pixels=max_pixels,
                                min_side=min_side)
            return i, None
        except ImageError as e:
            return i, e

    workers = threads or min(8, os.cpu_count() or 1)
    if len(sources) <= 1 or workers <= 1:
        done = [one(i) for i in range(len(sources))]
    else:
        from concurrent.futures import ThreadPoolExecutor  # only batches need it

        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(one, range(len(sources))))
    for i, err in done:
        if err is None:
            result.ok.append(i)
        else:
            result.errors.append((i, err))
    if result.errors:
        result.array = out[result.ok]
    return result
