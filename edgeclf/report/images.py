"""Images inlined into the report as ``data:`` URIs (the page must work offline)."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

from PIL import ImageOps

from edgeclf.runtime.errors import ImageError
from edgeclf.runtime.preprocess import open_image, to_rgb

from .readers import safe_join

log = logging.getLogger(__name__)

#: A stage's PNG larger than this is not inlined (the report would become unwieldy).
MAX_INLINE_BYTES = 8 << 20
#: Thumbnails: longest side in pixels, and the decode guard for the source image.
THUMB_SIDE = 112
THUMB_MAX_PIXELS = 50_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png_file_uri(path: Path) -> str | None:
    """The PNG at ``path`` as a data URI; ``None`` when absent. Raises ValueError when the
    file is not a PNG or too large to inline."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_INLINE_BYTES:
        raise ValueError(f"{path.name} is {size >> 20} MB, too large to inline")
    payload = path.read_bytes()
    if not payload.startswith(PNG_MAGIC):
        raise ValueError(f"{path.name} is not a PNG file")
    return data_uri(payload, "image/png")


def thumbnail_uri(roots: list[Path], name: str) -> str | None:
    """A small JPEG of image ``name`` (relative to one of ``roots``), or ``None`` when it is
    missing, outside the roots or not decodable: a thumbnail is never worth an error."""
    path = next((p for p in (safe_join(r, name) for r in roots) if p and p.is_file()), None)
    if path is None:
        return None
    try:
        with open_image(path, max_pixels=THUMB_MAX_PIXELS) as im:
            im.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            small = to_rgb(ImageOps.exif_transpose(im))
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=82)
    except (ImageError, OSError, ValueError, SyntaxError) as exc:
        log.debug("no thumbnail for %s: %s", path, exc)
        return None
    return data_uri(buf.getvalue(), "image/jpeg")
