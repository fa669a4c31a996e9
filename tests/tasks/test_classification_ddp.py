"""Two gloo processes (torchrun) at batch 8 each == one process at batch 16."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

COMMON = [
    "-m",
    "mambaout",
    "train",
    "--preset",
    "synthetic",
    "--quiet",
    "--epochs",
    "2",
    "--set",
    "data.synthetic_noise=3.0",
    "--set",
    "optim.lr=1e-3",
]


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_two_process_gloo_matches_one_process(tmp_path):
    _run([sys.executable, *COMMON, "--output", str(tmp_path), "--name", "one", "--batch-size", "16"], tmp_path)
    out = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            *COMMON,
            "--output",
            str(tmp_path),
            "--name",
            "two",
            "--batch-size",
            "8",
        ],
        tmp_path,
    )
    assert "cpu x2, global batch 16" in out
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    rows = lambda name: [line for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]  # noqa
    import json

    for r1, r2 in zip(map(json.loads, rows("one")), map(json.loads, rows("two"))):
        assert abs(r1["train_loss"] - r2["train_loss"]) < 1e-4
        assert r1["val_top1"] == r2["val_top1"]
