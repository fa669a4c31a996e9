"""COCO mask encodings without pycocotools: polygons (rasterised with PIL) and RLE (uncompressed and
compressed strings), plus RLE encoding for results. pycocotools is used when present for exactness."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

try:  # optional: exact COCO rasterisation and fast RLE
    from pycocotools import mask as _cocomask
except ImportError:  # pragma: no cover - exercised only where pycocotools is missing
    _cocomask = None


class MaskFormatError(ValueError):
    pass


def _decode_counts_string(s: str) -> list[int]:
    """COCO's compressed RLE string (LEB128-like, 5 bits a char, delta-coded after the 3rd run)."""
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise MaskFormatError("truncated RLE string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _rle_to_mask(counts: list[int], h: int, w: int) -> np.ndarray:
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise MaskFormatError(f"RLE counts sum to {sum(counts)}, expected {h}x{w}={h * w}")
    flat = np.zeros(h * w, dtype=np.uint8)
    pos, val = 0, 0
    for c in counts:
        if val:
            flat[pos : pos + c] = 1
        pos += c
        val ^= 1
    return flat.reshape(w, h).T  # column-major (Fortran) order


def decode_segmentation(seg, h: int, w: int) -> np.ndarray:
    """A COCO ``segmentation`` field -> uint8 (h, w) mask. Raises MaskFormatError on malformed input."""
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, (list, tuple))]
        if not polys or any(len(p) < 6 or len(p) % 2 for p in polys):
            raise MaskFormatError("polygon with fewer than 3 points or an odd number of coordinates")
        if _cocomask is not None:
            rles = _cocomask.frPyObjects([list(map(float, p)) for p in polys], h, w)
            return np.ascontiguousarray(_cocomask.decode(_cocomask.merge(rles)))
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        for p in polys:
            draw.polygon([(float(p[i]), float(p[i + 1])) for i in range(0, len(p), 2)], fill=1, outline=1)
        return np.asarray(img, dtype=np.uint8)
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        sh, sw = (int(v) for v in seg["size"])
        if (sh, sw) != (h, w):
            raise MaskFormatError(f"RLE size {sh}x{sw} differs from the image's {h}x{w}")
        counts = seg["counts"]
        if isinstance(counts, (bytes, str)):
            counts = counts.decode() if isinstance(counts, bytes) else counts
            if _cocomask is not None:
                return np.ascontiguousarray(_cocomask.decode({"size": [h, w], "counts": counts.encode()}))
            counts = _decode_counts_string(counts)
        return _rle_to_mask([int(c) for c in counts], h, w)
    raise MaskFormatError(f"unrecognised segmentation of type {type(seg).__name__}")


def encode_mask(mask: np.ndarray) -> dict:
    """uint8/bool (h, w) -> compressed COCO RLE (needs pycocotools)."""
    if _cocomask is None:
        raise ImportError("pycocotools is needed to encode masks")
    rle = _cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle
