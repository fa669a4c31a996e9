"""End-to-end runs through the CLI on generated data in the real formats: train, exact resume, eval, predict."""

import json
import os

import pytest
import torch
from PIL import Image

from mambaout.cli import main
from mambaout.data.shapes import write_ade_shapes, write_coco_shapes
from mambaout.engine.logging import read_metrics
from mambaout.engine.state import load_state

pytest.importorskip("pycocotools")

DET = "tasks.detection."
DET_SMALL = [
    DET + "head.min_size=64",
    DET + "head.max_size=64",
    DET + "data.hflip=0.5",
    "sched.epochs=1",
    "sched.milestones=[1]",
    "sched.warmup_iters=1",
    "train.batch_size=2",
    DET + "eval.batch_size=2",
    DET + "head.rcnn={fpn_channels: 16, box_channels: 32, mask_channels: 8, rpn_post_nms_top_n_train: 20, "
    "rpn_post_nms_top_n_test: 20, box_batch_size_per_image: 16, rpn_batch_size_per_image: 32, "
    "box_detections_per_img: 5}",
]
SEG = "tasks.segmentation."
SEG_SMALL = [
    SEG + "head.channels=16",
    SEG + "head.aux_channels=8",
    "train.batch_size=2",
    "sched.warmup_iters=1",
    SEG + "data.crop_size=[32, 32]",
    SEG + "data.scale=[64, 64]",
    SEG + "eval.crop=[32, 32]",
    SEG + "eval.stride=[24, 24]",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    return dict(
        coco=write_coco_shapes(str(root / "coco"), 4, 2, (64, 64)),
        ade=write_ade_shapes(str(root / "ade"), 4, 2, (48, 64)),
        root=root,
    )


def _sets(items):
    return [a for x in items for a in ("--set", x)]


def test_detection_train_eval_predict(data, tmp_path, capsys):
    out = str(tmp_path / "runs")
    rc = main(
        [
            "train-det",
            "--preset",
            "synthetic_shapes",
            "--device",
            "cpu",
            "--json",  # not --quiet: progress and the summary table go to stderr, stdout is the JSON alone
            "--data-root",
            data["coco"],
            *_sets(DET_SMALL + [f"train.output={out}", "train.name=det"]),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    run = os.path.join(out, "det")
    assert summary["steps"] == 2 and os.path.isfile(os.path.join(run, "best.pt"))
    rows = read_metrics(run)
    assert "val_bbox_AP" in rows[-1] and "val_segm_AP" in rows[-1] and os.path.isfile(os.path.join(run, "metrics.csv"))
    state = load_state(os.path.join(run, "last.pt"))
    det = state["config"]["tasks"]["detection"]
    assert det["num_classes"] == 4 and det["data"]["class_names"][0] == "rectangle"
    assert main(["eval-det", os.path.join(run, "last.pt"), "--json"]) == 0
    assert "bbox_AP" in json.loads(capsys.readouterr().out)
    preds = tmp_path / "preds"  # -o FOLDER: the drawing is named after the image
    preds.mkdir()
    assert (
        main(["predict", os.path.join(run, "last.pt"), f"{data['coco']}/val/000000.png", "-o", str(preds), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["output"] == str(preds / "000000_detection.png")
    assert Image.open(preds / "000000_detection.png").size == (64, 64)
    png = str(tmp_path / "pred.png")
    assert (
        main(
            [
                "predict",
                os.path.join(run, "last.pt"),
                f"{data['coco']}/val/000000.png",
                "-o",
                png,
                "--score-threshold",
                "0.0",
            ]
        )
        == 0
    )
    assert Image.open(png).size == (64, 64)
    assert main(["predict", os.path.join(run, "last.pt"), str(tmp_path / "missing.png")]) == 2


def test_segmentation_exact_resume_eval_predict(data, tmp_path, capsys, crash_in_step):
    from mambaout.tasks.dense.task import DenseTask

    common = ["--preset", "synthetic_shapes", "--device", "cpu", "--quiet"]
    base = SEG_SMALL + [
        f"{SEG}data.root={data['ade']}",
        "sched.max_iters=4",
        "train.log_every=1",
        "train.metrics_every=1",
        "train.save_every_steps=2",
    ]
    assert main(["train-seg", *common, *_sets(base + [f"train.output={tmp_path}", "train.name=full"])]) == 0
    with crash_in_step(DenseTask, 3):  # the run dies inside step 3
        assert main(["train-seg", *common, *_sets(base + [f"train.output={tmp_path}", "train.name=cut"])]) == 130
    cut = str(tmp_path / "cut" / "last.pt")
    assert load_state(cut)["step"] == 2
    assert main(["train-seg", "--resume", cut, "--quiet", "--device", "cpu"]) == 0
    a, b = load_state(str(tmp_path / "full" / "last.pt")), load_state(cut)
    assert b["step"] == 4 and a["data"] == b["data"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows = read_metrics(str(tmp_path / "cut"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    capsys.readouterr()
    assert main(["eval-seg", cut, "--quiet", "--json", "--multi-scale"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["mIoU"] <= 1 and len(res["IoU_per_class"]) == 4
    png = str(tmp_path / "seg.png")
    assert main(["predict", cut, f"{data['ade']}/images/validation/ADE_000000.jpg", "-o", png]) == 0
    assert Image.open(png).size == (64, 48)


def test_config_errors_are_one_line(data, tmp_path, capsys):
    assert main(["train-seg", "--preset", "synthetic_shapes", "--set", "tasks.segmentation.data.roott=x"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert main(["train-seg", "--preset", "synthetic_shapes", "--device", "cpu"]) == 2
    assert "data.root is not set" in capsys.readouterr().err
    assert (
        main(
            [
                "train-seg",
                "--preset",
                "synthetic_shapes",
                "--device",
                "cpu",
                "--data-root",
                data["ade"],
                "--set",
                "train.batch_size=1",
            ]
        )
        == 2
    )
    assert "at least 2 images per batch" in capsys.readouterr().err
    assert main(["train-det", "--preset", "nope"]) == 2
    assert main(["train-det", "--list-presets"]) == 0
    assert "coco_maskrcnn_1x" in capsys.readouterr().out


@pytest.mark.slow
def test_ddp_two_cpu_processes(data, tmp_path):
    """torchrun with 2 gloo processes: the same loop, BN stays per-process on CPU (SyncBN only on CUDA)."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "-m",
        "mambaout",
        "train-seg",
        "--preset",
        "synthetic_shapes",
        "--device",
        "cpu",
        "--quiet",
        "--json",
        *_sets(
            SEG_SMALL
            + [
                f"{SEG}data.root={data['ade']}",
                "sched.max_iters=2",
                "train.batch_size=2",
                f"train.output={tmp_path}",
                "train.name=ddp",
            ]
        ),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    state = load_state(str(tmp_path / "ddp" / "last.pt"))
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 2


def test_train_task_flag_runs_the_dense_trainer(data, tmp_path, capsys):
    sets = _sets(
        SEG_SMALL
        + [f"{SEG}data.root={data['ade']}", "sched.max_iters=2", f"train.output={tmp_path}", "train.name=via_task"]
    )
    assert (
        main(["train", "--task", "segmentation", "--preset", "synthetic_shapes", "--device", "cpu", "--quiet", *sets])
        == 0
    )
    assert os.path.isfile(tmp_path / "via_task" / "last.pt")
    capsys.readouterr()
    assert main(["train", "--task", "detection", "--model", "mambaout_tiny"]) == 2
    assert "use --set" in capsys.readouterr().err
