"""Image format and size from the first bytes of a file, without Pillow for the common
formats (JPEG, PNG, GIF): opening a file with Pillow costs ~0.5 ms of Python per JPEG,
which is most of a scan of a million small files. Anything else (BMP, WEBP, TIFF, odd
JPEGs) goes to Pillow, which stays the authority: a header parsed here only says "this
is an image of that size"; the decode cache still decodes every image and reports the ones
that do not decode.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

#: Formats accepted by content sniffing (Pillow's format names).
IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "MPO"}

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC
_U16 = struct.Struct(">H")
_HW = struct.Struct(">HH")
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class TooLarge(Exception):
    """The header announces more pixels than Pillow's decompression-bomb guard allows."""


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    pos, n = 2, len(head)
    while pos + 4 <= n:
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:                          # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            pos += 2
        elif marker in (0xD9, 0xDA):                # end / scan before a frame header
            return None
        elif marker in _SOF:
            if pos + 9 > n:
                return None
            h, w = _HW.unpack_from(head, pos + 5)
            return (w, h) if w and h else None      # height 0: defined later (DNL)
        else:
            pos += 2 + _U16.unpack_from(head, pos + 2)[0]
    return None


def _fast(head: bytes) -> tuple[str, tuple[int, int]] | None:
    if head[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(head)
        return ("JPEG", size) if size else None
    if head[:8] == _PNG and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return ("PNG", (w, h)) if w and h else None
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        return ("GIF", (w, h)) if w and h else None
    return None


def _bomb_limit() -> int:
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * limit if limit else 0


def identify(head: bytes, path: str) -> tuple[str, tuple[int, int]] | None:
    """(Pillow format name, (width, height)) of a supported image, else None.

    ``head`` is the start of the file (the first MiB is plenty); ``path`` is opened with
    Pillow only when the fast parsers do not recognise the bytes. Raises :class:`TooLarge`
    for a decompression bomb, as Pillow would.
    """
    fast = _fast(head)
    if fast is not None:
        w, h = fast[1]
        limit = _bomb_limit()
        if limit and w * h > limit:
            raise TooLarge(f"Image size ({w * h} pixels) exceeds limit of {limit} pixels, "
                           "could be decompression bomb DOS attack.")
        return fast
    try:
        with Image.open(io.BytesIO(head) if len(head) < (1 << 20) else path) as img:
            fmt, size = img.format, img.size
    except Image.DecompressionBombError as e:
        raise TooLarge(str(e)) from None
    except Exception:  # noqa: BLE001 - any failure to parse a header means "not an image"
        return None
    return (fmt, size) if fmt in IMAGE_FORMATS else None
