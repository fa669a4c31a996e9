"""Runs never lose work: what a resume may change, run folders no second run writes, SIGTERM/Ctrl-C, a full
disk, progress lines in logs, checkpoint errors in our words. Tiny runs (mambaout_test, synthetic data)."""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from safetensors.torch import load_file

from mambaout.cli import main
from mambaout.engine import state as state_module
from mambaout.engine.logging import RunLogger, read_metrics
from mambaout.engine.state import load_state, save_state
from mambaout.errors import CheckpointError, ConfigError, MambaoutError
from mambaout.tasks.classification import resolve_config, train
from mambaout.tasks.classification.task import ClassificationTask

TINY = ["--set", "data.synthetic_train=32", "--set", "data.synthetic_val=16"]  # 2 steps an epoch


def _argv(tmp_path, name, epochs=1):
    named = ["--name", name] if name else []
    return ["train", "--preset", "synthetic", "--quiet", "--epochs", str(epochs), "--output", str(tmp_path), *named]


def _run(tmp_path, name, *extra, epochs=1):
    return main(_argv(tmp_path, name, epochs=epochs) + TINY + list(extra))


def _files(folder):
    """Every file of a run folder and its bytes (the lock file aside: it holds the pid of the last opener)."""
    return {
        p: (folder / p).read_bytes() for p in sorted(os.listdir(folder)) if (folder / p).is_file() and p != ".run.lock"
    }


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:"), err
    return err


# --- item 2: what a resume may change ---------------------------------------------------------------------


def test_resume_applies_what_may_change_and_refuses_the_rest(tmp_path, capsys):
    assert _run(tmp_path, "r") == 0
    last = str(tmp_path / "r" / "last.pt")
    before = _files(tmp_path / "r")
    refused = [
        (["--model", "mambaout_femto"], "model.name cannot change ('mambaout_test' -> 'mambaout_femto')"),
        (["--set", "aug.scale=[0.5, 1.0]"], "aug.scale cannot change ([0.08, 1.0] -> [0.5, 1.0])"),
        (["--batch-size", "4"], "train.batch_size cannot change (16 -> 4)"),
        (["--img-size", "64"], "data.img_size cannot change (32 -> 64)"),
        (["--seed", "3"], "train.seed cannot change (0 -> 3)"),
        (["--set", "optim.opt=sgd"], "optim.opt cannot change ('adamw' -> 'sgd')"),
        (["--set", "optim.weight_decay=0.1"], "optim.weight_decay cannot change (0.05 -> 0.1)"),
        (["--ema"], "train.ema cannot change (False -> True)"),
        (["--set", "train.best_metric=val_top5"], "train.best_metric cannot change (None -> 'val_top5')"),
        (["--name", "other"], "train.name cannot change ('r' -> 'other')"),
    ]
    for argv, message in refused:
        assert main(["train", "--resume", last, *argv]) == 2, argv
        assert message in _one_line(capsys)
    assert before == _files(tmp_path / "r")  # refusals write nothing
    allowed = ["--epochs", "2", "--lr", "0.01", "--set", "optim.clip_grad=0.5", "--set", "sched.warmup_epochs=1"]
    allowed += ["--num-workers", "0", "--set", "train.log_every=1", "--set", "train.eval_batch_size=8"]
    assert main(["train", "--resume", last, "--quiet", *allowed]) == 0
    state = load_state(last)
    cfg = state["config"]
    assert state["step"] == 4 and cfg["optim"]["lr"] == 0.01 and cfg["optim"]["clip_grad"] == 0.5
    assert cfg["sched"]["warmup_epochs"] == 1 and cfg["train"]["eval_batch_size"] == 8
    # the schedule was rebuilt on the new peak lr, and the saved config.yaml is the one now in force
    assert state["scheduler"]["base_values"] == [0.01] * len(state["optimizer"]["param_groups"])
    assert "lr: 0.01" in (tmp_path / "r" / "config.yaml").read_text()


def test_resume_does_not_read_the_pretrained_weights_again(tmp_path):
    import mambaout

    weights = tmp_path / "w.pth"
    torch.save(mambaout.create_model("mambaout_test", num_classes=4).state_dict(), weights)
    assert _run(tmp_path, "ft", "--pretrained", str(weights)) == 0
    weights.unlink()  # on a scratch disk that was cleaned: the checkpoint holds the weights anyway
    assert main(["train", "--resume", str(tmp_path / "ft" / "last.pt"), "--epochs", "2", "--quiet"]) == 0


def test_dense_resume_follows_the_same_rule(tmp_path, capsys):
    from mambaout.data.shapes import write_ade_shapes

    root = write_ade_shapes(str(tmp_path / "ade"), 4, 2, (48, 64))
    sets = [
        f"tasks.segmentation.data.root={root}",
        "sched.max_iters=2",
        "tasks.segmentation.head.channels=16",
        "tasks.segmentation.head.aux_channels=8",
        "train.batch_size=2",
        "tasks.segmentation.data.crop_size=[32, 32]",
        "tasks.segmentation.data.scale=[64, 64]",
        "tasks.segmentation.eval.crop=[32, 32]",
        "tasks.segmentation.eval.stride=[24, 24]",
    ]
    argv = ["train-seg", "--preset", "synthetic_shapes", "--quiet", "--device", "cpu", "--output", str(tmp_path)]
    assert main(argv + ["--name", "seg"] + [a for s in sets for a in ("--set", s)]) == 0
    last = str(tmp_path / "seg" / "last.pt")
    resume = ["train-seg", "--resume", last, "--quiet"]
    assert main(resume + ["--set", "tasks.segmentation.data.crop_size=[48, 48]"]) == 2
    assert "tasks.segmentation.data.crop_size cannot change ([32, 32] -> [48, 48])" in _one_line(capsys)
    assert main(resume + ["--backbone", "mambaout_femto"]) == 2
    assert "backbone.name cannot change" in _one_line(capsys)
    moved = tmp_path / "moved"
    os.rename(root, moved)  # data moved: a new root may be given
    ok = ["--set", "sched.max_iters=3", "--set", "optim.lr=5e-4", "--data-root", str(moved)]
    assert main(resume + ok) == 0
    state = load_state(last)
    assert state["step"] == 3 and set(state["scheduler"]["base_values"]) == {5e-4}
    # a segmentation checkpoint is not a detection run
    assert main(["train-det", "--resume", last]) == 2
    assert "a segmentation checkpoint, not detection" in _one_line(capsys)


# --- item 3: run folders ------------------------------------------------------------------------------------


def test_a_used_name_is_refused_and_the_old_run_stays_as_it_was(tmp_path, capsys):
    assert _run(tmp_path, "a") == 0
    old = _files(tmp_path / "a")
    assert _run(tmp_path, "a") == 2
    err = _one_line(capsys)
    assert f"run folder {tmp_path / 'a'} already holds a run" in err and "--overwrite replaces it" in err
    # a command that fails its checks, even with --overwrite, leaves the old run as it was
    for extra in ([], ["--overwrite"]):
        with pytest.raises((MambaoutError, ValueError)):
            main(["-v", *_argv(tmp_path, "a"), *TINY, "--set", "optim.opt=nosuch", *extra])
        assert _files(tmp_path / "a") == old
    assert sorted(os.listdir(tmp_path)) == ["a"]  # nothing set aside was left behind
    # --overwrite replaces it once the new run has passed every check
    assert _run(tmp_path, "a", "--overwrite", epochs=2) == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["steps"] == 4
    assert len(read_metrics(str(tmp_path / "a"))) == 2 and sorted(os.listdir(tmp_path)) == ["a"]
    # --overwrite never replaces a folder that holds no run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert _run(tmp_path, "mine", "--overwrite") == 2
    assert "not a run folder" in _one_line(capsys) and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_start_that_fails_its_checks_leaves_no_folder(tmp_path):
    with pytest.raises((MambaoutError, ValueError)):
        main(["-v", *_argv(tmp_path, "new"), *TINY, "--set", "optim.opt=nosuch"])
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # made by a job scheduler, say: taken, and emptied again on failure
    with pytest.raises((MambaoutError, ValueError)):
        main(["-v", *_argv(tmp_path, "empty"), *TINY, "--set", "optim.opt=nosuch"])
    assert os.listdir(tmp_path / "empty") == []
    assert _run(tmp_path, "empty") == 0 and (tmp_path / "empty" / "summary.json").exists()


def test_claims_racing_for_one_name_get_one_folder_each(tmp_path):
    from mambaout.engine import rundir

    n, gate = 6, threading.Barrier(6)
    auto, named = [None] * n, [None] * n

    def claim(i):
        gate.wait()
        auto[i] = rundir.claim(str(tmp_path), "gen-20000101-000000", auto=True)
        try:
            named[i] = rundir.claim(str(tmp_path), "mine", auto=False)
        except ConfigError as e:
            named[i] = e

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    won = [f for f in named if isinstance(f, rundir.RunFolder)]
    for folder in auto + won:
        folder.release()
    assert {os.path.basename(f.path) for f in auto} == {
        "gen-20000101-000000",
        *(f"gen-20000101-000000-{i}" for i in range(1, n)),
    }
    assert len(won) == 1 and all("already" in str(e) or "in use" in str(e) for e in named if e not in won)


# Two processes whose generated names collide (the same model, data and second): the clock is pinned.
SAME_SECOND = (
    "import sys, time\n"
    "real = time.strftime\n"
    "time.strftime = lambda fmt, *a: '20000101-000000' if fmt == '%Y%m%d-%H%M%S' else real(fmt, *a)\n"
    "from mambaout.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_two_runs_started_together_without_a_name_get_two_folders(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", SAME_SECOND, *_argv(tmp_path, None), *TINY]
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    names = sorted(os.listdir(tmp_path))
    assert names == ["mambaout_test-synthetic-20000101-000000", "mambaout_test-synthetic-20000101-000000-1"]
    for name in names:
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["run_dir"].endswith(name) and summary["steps"] == 2
        assert load_state(str(tmp_path / name / "last.pt"))["config"]["train"]["name"] == name
        assert len(read_metrics(str(tmp_path / name))) == 1  # each folder holds its own run only


def test_resuming_a_finished_run_changes_nothing(tmp_path, caplog):
    assert _run(tmp_path, "done") == 0
    before = _files(tmp_path / "done")
    assert main(["train", "--resume", str(tmp_path / "done" / "last.pt"), "--quiet"]) == 0
    assert _files(tmp_path / "done") == before
    assert "the run finished at step 2; nothing to do" in caplog.text
    final = json.loads(before["summary.json"])["final"]
    assert final["step"] == 2 and "val_top1" in final


def test_resuming_an_older_checkpoint_needs_overwrite(tmp_path, capsys):
    assert _run(tmp_path, "b", "--set", "data.synthetic_noise=3.0", epochs=3) == 0
    folder = tmp_path / "b"
    best, last = str(folder / "best.pt"), str(folder / "last.pt")
    old_step = load_state(best)["step"]
    save_state(best, dict(load_state(last), step=old_step, data=(1, 0)))  # best.pt at the end of epoch 1
    before = _files(folder)
    assert main(["train", "--resume", best, "--quiet"]) == 2
    err = _one_line(capsys)
    assert f"is at step {old_step} but" in err and "at step 6" in err and "--overwrite" in err
    assert _files(folder) == before
    assert main(["train", "--resume", best, "--quiet", "--overwrite"]) == 0  # asked for: back to that step
    assert load_state(last)["step"] == 6


def test_an_interrupted_overwrite_says_where_the_old_run_is(tmp_path, capsys):
    (tmp_path / ".a.replaced-4242").mkdir()  # killed between setting the old run aside and the new one's start
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad_images_train.txt").write_text("x.jpg\n")
    assert _run(tmp_path, "a", "--overwrite") == 2
    err = _one_line(capsys)
    assert "not a run folder" in err and f"left the run it replaced in {tmp_path / '.a.replaced-4242'}" in err


def test_a_running_run_keeps_its_folder(tmp_path, capsys):
    from mambaout.engine import rundir

    assert _run(tmp_path, "busy") == 0
    holder = rundir.reopen(str(tmp_path / "busy"))  # as a process still training there would
    try:
        assert main(["train", "--resume", str(tmp_path / "busy" / "last.pt"), "--epochs", "2"]) == 2
        assert "is in use by another process" in _one_line(capsys)
        assert _run(tmp_path, "busy", "--overwrite") == 2
        assert "is in use by another process" in _one_line(capsys)
    finally:
        holder.release()


# --- item 4: interruptions and a full disk -------------------------------------------------------------------


_STEP = ClassificationTask.train_step
SETS = ["sched.epochs=2", "data.synthetic_noise=3.0", "train.save_every_steps=0"]  # 8 steps an epoch


def _signal_at(monkeypatch, call, times=1):
    """Send SIGINT to this process (a user's Ctrl-C) from inside the given train_step call, ``times`` times."""
    step, calls = ClassificationTask.train_step, []

    def train_step(self, *a):
        calls.append(1)
        if len(calls) == call:
            for _ in range(times):
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                except KeyboardInterrupt:  # the second one, raised by the handler right here
                    raise
        return step(self, *a)

    monkeypatch.setattr(ClassificationTask, "train_step", train_step)


def test_ctrl_c_saves_at_the_step_end_and_resumes_exactly(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # the printed command names the checkpoint relative to the working folder
    ref = train(resolve_config("synthetic", SETS + [f"train.output={tmp_path}", "train.name=ref"]), quiet=True)
    _signal_at(monkeypatch, 11)
    with pytest.raises(KeyboardInterrupt) as stop:
        train(resolve_config("synthetic", SETS + [f"train.output={tmp_path}", "train.name=cut"]), quiet=True)
    last = tmp_path / "cut" / "last.pt"
    state = load_state(str(last))
    assert state["step"] == 11 and tuple(state["data"]) == (1, 3)  # mid-epoch: the step that got the signal
    command = "mambaout train --resume cut/last.pt"
    assert str(stop.value).startswith("SIGINT: stopped after step 11 of 16") and str(stop.value).endswith(command)
    assert command in caplog.text  # the CLI shows the log on stderr
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
    monkeypatch.setattr(ClassificationTask, "train_step", _STEP)
    assert main(command.split()[1:] + ["--quiet"]) == 0
    a, b = (
        load_file(os.path.join(ref["run_dir"], "model.safetensors")),
        load_file(tmp_path / "cut" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in read_metrics(ref["run_dir"])]
    assert strip == [
        {k: v for k, v in r.items() if "time" not in k and "per_s" not in k}
        for r in read_metrics(str(tmp_path / "cut"))
    ]


def test_a_second_ctrl_c_stops_at_once(tmp_path, monkeypatch):
    _signal_at(monkeypatch, 11, times=2)  # the second arrives before the step that got the first one ends
    sets = ["sched.epochs=2", "train.save_every_steps=4", f"train.output={tmp_path}", "train.name=x"]
    with pytest.raises(KeyboardInterrupt) as stop:
        train(resolve_config("synthetic", sets), quiet=True)
    assert str(stop.value) == ""  # not the saved-and-stopped message
    assert load_state(str(tmp_path / "x" / "last.pt"))["step"] == 8  # the last regular checkpoint, whole


class _FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes."""

    room = 0

    def write(self, b):
        space = self.room - self.tell()
        if space <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(bytes(b)[:space])  # a short write, as the OS does when the disk fills


def test_a_full_disk_leaves_no_partial_file_and_says_so(tmp_path, monkeypatch, capsys):
    saves = []

    def open_(path, mode="r", *a, **k):
        if "w" in mode and "b" in mode:
            saves.append(path)
            if len(saves) >= 2:  # the first checkpoint fits, the disk is full by the second
                return _FullDisk(path, "w")
        return open(path, mode, *a, **k)

    monkeypatch.setattr(state_module, "open", open_, raising=False)
    folder = tmp_path / "full"
    assert _run(tmp_path, "full", "--save-every-steps", "1") == 2
    err = _one_line(capsys)
    assert f"cannot write {folder / 'last.pt'}: no space left on device; nothing partial was left" in err
    assert "the previous last.pt is kept" in err and "mambaout train --resume" in err
    assert sorted(os.listdir(folder)) == sorted([".run.lock", "config.yaml", "train.log", "last.pt", *_rows()])
    assert load_state(str(folder / "last.pt"))["step"] == 1
    monkeypatch.undo()
    assert main(["train", "--resume", str(folder / "last.pt"), "--quiet"]) == 0  # space freed: it continues


def _rows():
    return ["metrics.jsonl", "metrics.csv"]


def test_rows_and_weights_on_a_full_disk(tmp_path, monkeypatch):
    from mambaout import weights

    logger = RunLogger(str(tmp_path), tensorboard=False)
    logger.log({"step": 1, "train_loss": 1.0})

    def full(path, mode="r", *a, **k):
        if "a" in mode:
            _FullDisk.room = os.path.getsize(path) + 10  # room for a third of the next row
            f = _FullDisk(path, "a")
            return f
        return open(path, mode, *a, **k)

    monkeypatch.setattr("mambaout.engine.logging.open", full, raising=False)
    with pytest.raises(CheckpointError, match="no space left on device; nothing partial was left"):
        logger.log({"step": 2, "train_loss": 0.5, "val_top1": 12.5})
    assert read_metrics(str(tmp_path)) == [{"step": 1, "train_loss": 1.0}]  # no torn row
    _FullDisk.room = 0

    def full_save(state, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })')

    monkeypatch.setattr("safetensors.torch.save_file", full_save)
    with pytest.raises(OSError) as err:
        weights.save_safetensors({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    assert err.value.errno == errno.ENOSPC and state_module.disk_full(err.value)
    assert sorted(os.listdir(tmp_path)) == sorted(_rows())


def test_temp_files_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    assert _run(tmp_path, "t") == 0
    folder = tmp_path / "t"
    leftovers = [".tmp4242.last.pt", ".last.pt.tmp17", "model.safetensors.tmp99", "metrics.csv.tmp", ".tmp5.curves.png"]
    for name in leftovers:
        (folder / name).write_bytes(b"half a file")
    (folder / "notes.tmp.txt").write_text("mine")  # not a temp file of ours
    assert main(["train", "--resume", str(folder / "last.pt"), "--epochs", "2", "--quiet"]) == 0
    assert not any((folder / name).exists() for name in leftovers) and (folder / "notes.tmp.txt").exists()


# --- item 7: progress lines in logs, checkpoint errors in our words --------------------------------------------


def test_training_prints_progress_lines_with_eta_when_stderr_is_a_log(tmp_path, capsys):
    sets = ["sched.epochs=1", "train.log_every=2", f"train.output={tmp_path}", "train.name=p"]
    train(resolve_config("synthetic", sets), quiet=False)  # 8 steps; pytest's stderr is not a terminal
    lines = [line for line in capsys.readouterr().err.splitlines() if "classification: step" in line]
    assert [line.split("step ")[1].split(" ")[0] for line in lines] == ["2/8", "4/8", "6/8", "8/8"]
    assert all("ETA " in line and "loss " in line and "steps/s" in line for line in lines)


def test_dense_training_prints_progress_lines(tmp_path, capsys):
    from mambaout.data.shapes import write_ade_shapes
    from mambaout.tasks.dense import resolve_config as dense_config
    from mambaout.tasks.dense import train as dense_train

    root = write_ade_shapes(str(tmp_path / "ade"), 4, 2, (48, 64))
    sets = [
        f"tasks.segmentation.data.root={root}",
        "sched.max_iters=2",
        "train.log_every=1",
        "tasks.segmentation.head.channels=16",
        "tasks.segmentation.head.aux_channels=8",
        "train.batch_size=2",
        "tasks.segmentation.data.crop_size=[32, 32]",
        "tasks.segmentation.data.scale=[64, 64]",
        "tasks.segmentation.eval.crop=[32, 32]",
        "tasks.segmentation.eval.stride=[24, 24]",
        f"train.output={tmp_path}",
        "train.name=s",
    ]
    dense_train(dense_config("segmentation", "synthetic_shapes", sets, device="cpu"), quiet=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if "segmentation: step" in line]
    assert len(lines) == 2 and all("ETA" in line for line in lines)


def test_bad_checkpoints_are_named_in_our_words(tmp_path, capsys):
    good = tmp_path / "good.pt"
    assert _run(tmp_path, "g") == 0
    data = (tmp_path / "g" / "last.pt").read_bytes()
    cases = {
        "truncated.pt": (data[: len(data) // 2], "truncated or corrupt"),
        "empty.pt": (b"", "an empty file"),
        "text.pt": (b"hello, not a checkpoint", "not a checkpoint"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"model": torch.nn.Linear(2, 2), "config": {}}, good)  # a pickled module: not plain data
    cases["good.pt"] = (None, "refused, it asks to load torch.nn.modules.linear.Linear, a pickled object")
    for name, (_, message) in cases.items():
        assert main(["train", "--resume", str(tmp_path / name)]) == 2
        err = _one_line(capsys)
        assert message in err and "weights_only" not in err, err


def test_nan_weights_are_refused(tmp_path):
    import mambaout

    weights = mambaout.create_model("mambaout_test", num_classes=4).state_dict()
    weights["stem.conv1.weight"] = torch.full_like(weights["stem.conv1.weight"], float("nan"))
    torch.save(weights, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=r"1 of \d+ tensors hold NaN \(1 entirely NaN: stem.conv1.weight\)"):
        mambaout.create_model("mambaout_test", num_classes=4, pretrained=str(tmp_path / "nan.pth"))
