"""Upload decoding: good images of every awkward kind convert, bad ones are refused in one sentence."""

import io

import numpy as np
import pytest
from PIL import Image

from mambaout.errors import InputError
from mambaout.serve.images import MAX_PIXELS, decode_upload


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def refused(data: bytes, **kw) -> str:
    with pytest.raises(InputError) as e:
        decode_upload(data, **kw)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- refused -------------------------------------------------------------------------------------------------


def test_empty_and_non_image():
    assert "empty" in refused(b"")
    assert "not an image" in refused(b"%PDF-1.4 not a picture at all" * 10)
    assert "not an image" in refused(b"#!/bin/sh\nrm -rf /\n")


def test_too_many_bytes():
    assert "limit is" in refused(b"\0" * 2048, max_bytes=1024)


def test_pillow_decompression_bomb_is_a_clean_refusal(png_header_only):
    # 100000 x 100000 pixels claimed in a 60-byte file: Pillow's own guard (twice its limit) fires on open
    assert "too many pixels" in refused(png_header_only(100_000, 100_000))


def test_over_the_demo_pixel_limit_is_refused_before_decoding(png_header_only):
    big = png_header_only(5000, 5000)  # 25 M pixels: under Pillow's limit, over the demo's
    assert 5000 * 5000 > MAX_PIXELS
    assert "5000x5000" in refused(big)


def test_truncated_png_and_jpeg():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG"):
        data = encode(noisy, fmt)
        assert "truncated" in refused(data[: len(data) // 2]), fmt


def test_format_outside_the_list_is_refused_unread():
    data = encode(Image.new("RGB", (16, 16)), "ICO")
    assert "not an image this demo reads" in refused(data)


# --- converted -----------------------------------------------------------------------------------------------


def test_sixteen_bit_grayscale_is_scaled():
    arr = np.full((8, 8), 65535, np.uint16)
    arr[0, 0] = 0
    out = decode_upload(encode(Image.fromarray(arr)), "L")
    assert out.image.mode == "L"
    px = np.asarray(out.image)
    assert px[0, 0] == 0 and px[4, 4] == 255
    assert any("I;16" in n or "from I" in n for n in out.notes)


def test_cmyk_jpeg_becomes_rgb():
    out = decode_upload(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    assert out.image.mode == "RGB" and "converted from CMYK to RGB" in out.notes
    r, g, b = out.image.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta and yellow full: red


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 0, 255))
    out = decode_upload(encode(img))
    assert out.image.getpixel((4, 4)) == (255, 255, 255) and out.image.getpixel((0, 0)) == (0, 0, 0)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("L", (8, 8), v) for v in (10, 200, 90)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_upload(buf.getvalue(), "L")
    assert out.image.getpixel((4, 4)) == 10
    assert any("3 frames" in n for n in out.notes)


def test_plain_rgb_png_is_unchanged():
    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    out = decode_upload(encode(Image.fromarray(arr)))
    assert out.format == "PNG" and out.notes == []
    assert np.array_equal(np.asarray(out.image), arr)
