"""Shared by the scan tests: run a script with the Triton kernels in the interpreter (CPU)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@pytest.fixture
def run_triton_interpreted():
    """``run(script)``: runs ``script`` in a subprocess with TRITON_INTERPRET=1 (the flag must be set before triton
    imports) and asserts it exits 0 and prints ``WORST`` (its largest error); returns its stdout."""
    pytest.importorskip("triton")

    def run(script: str, timeout: int = 600) -> str:
        path = os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")])  # HERE: scan_interp_check
        env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=path)
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
        assert "WORST" in r.stdout
        return r.stdout

    return run
