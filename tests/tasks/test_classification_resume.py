"""SIGKILL a real training process mid-epoch, resume it, and get bit-identical weights."""

import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

ARGS = [
    "train",
    "--preset",
    "synthetic",
    "--quiet",
    "--epochs",
    "3",
    "--save-every-steps",
    "2",
    "--set",
    "train.batch_size=8",
    "--set",
    "data.synthetic_noise=3.0",
    "--set",
    "sched.warmup_epochs=1",
]
# 128 samples / batch 8 = 16 steps an epoch; checkpoints every 2 steps and at every epoch end


# The victim's training steps are slowed down through the task (a seam the engine already calls), so that the
# test can kill it mid-epoch; the engine itself has no test hooks.
SLOW = (
    "import sys, time\n"
    "from mambaout.tasks.classification.task import ClassificationTask\n"
    "step = ClassificationTask.train_step\n"
    "ClassificationTask.train_step = lambda self, *a: (time.sleep(0.1), step(self, *a))[1]\n"
    "from mambaout.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _cli(args, slow=False, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", SLOW] if slow else [sys.executable, "-m", "mambaout"]
    return subprocess.Popen([*cmd, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _position(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return tuple(state["data"])
    except Exception:  # noqa: BLE001  (not there yet)
        return None


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path):
    ref = _cli(ARGS + ["--output", str(tmp_path), "--name", "ref"])
    victim = _cli(ARGS + ["--output", str(tmp_path), "--name", "victim"], slow=True)
    last = tmp_path / "victim" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        pos = _position(last)
        if pos and pos[0] == 1 and pos[1] >= 4:  # inside the second epoch
            break
        assert victim.poll() is None, victim.stdout.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    epoch, batch = _position(last)
    assert epoch == 1 and 0 < batch < 16, (epoch, batch)
    assert not (tmp_path / "victim" / "model.safetensors").exists()
    out_ref = ref.communicate(timeout=120)[0]
    assert ref.returncode == 0, out_ref
    resumed = _cli(["train", "--resume", str(last), "--quiet"])
    out = resumed.communicate(timeout=120)[0]
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    a = load_file(tmp_path / "ref" / "model.safetensors")
    b = load_file(tmp_path / "victim" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ref_rows = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    vic_rows = (tmp_path / "victim" / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [
        {
            k: v
            for k, v in eval(r.replace("null", "None")).items()  # noqa: E731
            if "time" not in k and "per_s" not in k
        }
        for r in rows
    ]
    assert strip(ref_rows) == strip(vic_rows)
