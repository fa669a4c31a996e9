"""Uploaded bytes -> a decoded PIL image, or one sentence saying why not.

A web upload is untrusted: the size in bytes, the format and the pixel count are checked before anything is
decoded (a small PNG can claim 50000x50000 pixels: Pillow's decompression-bomb guard, here with a much lower
limit than Pillow's 89 M pixels, refuses it from the header). A truncated file is refused (never padded with
grey), an animation gives its first frame, and 16-bit, CMYK, palette and transparent images are converted
as the data sets convert them (``data.convert_image``). Only bytes are read: no path from a client is opened.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageFile, UnidentifiedImageError

from ..data import convert_image
from ..errors import InputError

# Formats a browser user uploads; others (EPS runs Ghostscript, PSD, ICNS, ...) are refused unread.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


@dataclass
class Decoded:
    image: Image.Image  # mode 'RGB' or 'L', fully decoded
    format: str
    notes: list[str] = field(default_factory=list)  # what was converted, for the page


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def decode_upload(data: bytes, mode: str = "RGB", max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode ``data`` as ``mode`` ('RGB' or 'L'); any refusal is an :class:`InputError` of one sentence."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise InputError("the upload is empty")
    if len(data) > max_bytes:
        raise InputError(f"the file is {_mb(len(data))}; the limit is {_mb(max_bytes)}")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a process-wide switch: the data readers set the same value
    try:  # reads the header only; Pillow refuses over twice its own limit, the check below far earlier
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InputError(f"not an image this demo reads (formats: {', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:
        raise InputError(f"the image has too many pixels (limit {max_pixels:,})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"unreadable image header ({type(e).__name__})") from None
    w, h = img.size
    if w * h > max_pixels or w < 1 or h < 1:
        raise InputError(f"the image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    notes = []
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"animated ({img.n_frames} frames): the first frame is used")
    try:
        img.seek(0)
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError):
        raise InputError("the image is truncated or corrupt") from None
    if img.mode not in ("RGB", "L"):
        notes.append(f"converted from {img.mode} to {mode}")
    try:
        out = convert_image(img, mode)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot convert a {img.mode} image ({type(e).__name__})") from None
    return Decoded(out, img.format or "?", notes)
