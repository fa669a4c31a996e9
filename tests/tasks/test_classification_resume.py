"""SIGKILL or SIGTERM a real training process mid-epoch, resume it, and get bit-identical weights."""

import json
import os
import shlex
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


def test_sigterm_saves_at_the_step_end_prints_the_resume_command_and_resumes_exactly(tmp_path):
    """What a scheduler sends on preemption, to every process of the job (DataLoader workers included): the
    victim checkpoints only at epoch ends, so the checkpoint that lets it resume mid-epoch is the one SIGTERM
    made. It loads data with 2 workers, the reference with none (the batches are the same)."""
    ref = _cli(ARGS + ["--output", str(tmp_path), "--name", "ref"])
    victim_args = ["--output", str(tmp_path), "--name", "victim", "--save-every-steps", "0", "--num-workers", "2"]
    victim = _cli(ARGS + victim_args, slow=True, start_new_session=True)
    last = tmp_path / "victim" / "last.pt"
    deadline = time.time() + 120
    while _position(last) != (1, 0):  # the first epoch's checkpoint: the second epoch is under way
        assert victim.poll() is None and time.time() < deadline, victim.stdout.read()
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGTERM)  # the whole process group, as a scheduler does
    out = victim.communicate(timeout=120)[0]
    assert victim.returncode == 130, out
    epoch, batch = _position(last)
    assert epoch == 1 and 0 < batch < 16, (epoch, batch, out)
    step = 16 + batch
    said = [line for line in out.splitlines() if "SIGTERM: stopped after step" in line]
    assert len(said) == 1 and f"stopped after step {step} of 48" in said[0], out
    command = said[0].split("resume with: ")[1]
    assert command == f"mambaout train --resume {last}"  # tmp_path is outside the working folder: absolute
    assert not (tmp_path / "victim" / "model.safetensors").exists()
    out_ref = ref.communicate(timeout=120)[0]
    assert ref.returncode == 0, out_ref
    resumed = _cli(shlex.split(command)[1:])  # the printed command, as it is
    out = resumed.communicate(timeout=120)[0]
    assert resumed.returncode == 0, out
    a = load_file(tmp_path / "ref" / "model.safetensors")
    b = load_file(tmp_path / "victim" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda path: [  # noqa: E731
        {k: v for k, v in json.loads(r).items() if "time" not in k and "per_s" not in k}
        for r in path.read_text().splitlines()
    ]
    assert strip(tmp_path / "ref" / "metrics.jsonl") == strip(tmp_path / "victim" / "metrics.jsonl")
