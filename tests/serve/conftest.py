"""The browser and the running demo for tests/serve/test_browser.py.

Chromium is Debian's package (never a browser download): when /usr/bin/chromium is missing and this runs as
root with apt-get, the session installs it first (as the Makefile's `data` target installs Fashion-MNIST);
elsewhere the browser tests are skipped with the reason.
"""

import os
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest

CHROMIUM = "/usr/bin/chromium"
# the closed network refuses background connections: none are attempted
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> str | None:
    """None when chromium is there (installed now if it can be), else why it is not."""
    if os.path.exists(CHROMIUM):
        return None
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get): apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    subprocess.run(install, capture_output=True, timeout=900, env=env)
    if not os.path.exists(CHROMIUM):  # a fresh machine's package lists may be empty
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900, env=env)
        subprocess.run(install, capture_output=True, timeout=900, env=env)
    return None if os.path.exists(CHROMIUM) else "apt-get could not install chromium"


@pytest.fixture(scope="session", autouse=True)
def _own_temp_folder(tmp_path_factory):
    """Gradio's upload cache and its client's downloads go under the temp folder (a folder per file): pytest's
    own for these tests, so that runs leave nothing in /tmp."""
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("gradio"))
    yield
    tempfile.tempdir = old


@pytest.fixture(scope="session")
def browser():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[serve]')")
    why = _install_chromium()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def png_header_only():
    """f(width, height) -> a PNG whose header claims that many pixels, with a tiny IDAT: a decompression
    bomb's shape (60 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def make(width: int, height: int) -> bytes:
        ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
        idat = chunk(b"IDAT", zlib.compress(b"\0"))
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")

    return make
