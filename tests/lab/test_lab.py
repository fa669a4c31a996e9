"""The hypothesis lab: every experiment in --tiny mode on CPU, its reports, and the CLI's errors."""

from __future__ import annotations

import json
import math
import os
import re

import pytest
import torch

from mambaout.cli import main
from mambaout.data.fashion_mnist import SYSTEM_DIR

EXPERIMENT_FILES = {
    "long-seq": [
        "report.md",
        "results.json",
        "long_seq_table.csv",
        "stage_tokens.csv",
        "flops_vs_tokens.png",
        "stage_tokens.png",
    ],
    "causal": ["report.md", "results.json", "runs.csv", "causal_top1.png", "causal_curves.png"],
    "framing": [
        "report.md",
        "results.json",
        "runs.csv",
        "framing.png",
        "framing_curves.png",
        "erf.png",
        "erf_maps.npz",
    ],
    "zoo": ["report.md", "results.json", "paper_imagenet_rows.csv", "measured_rows.csv", "top1_vs_macs.png"],
    "ssl": ["report.md", "results.json", "runs.csv", "ssl_finetune.png", "ssl_digits.png", "ssl_pretrain_curves.png"],
    "length": ["report.md", "results.json", "length_sweep.csv", "length_sweep.png"],
}
EXPECTED_TABLES = {  # header cells every report must contain
    "long-seq": ["tau = 6D", "quadratic share", "tokens L"],
    "causal": [
        "params fully-visible",
        "fully-visible",
        "full − causal",
        "TOST p (Holm)",
        "MACs/sample",
        "Verdict rules",
    ],
    "framing": [
        "test top-1 (%)",
        "copy accuracy (%)",
        "params",
        "test bits/pixel (lower is better)",
        "next-level accuracy (%)",
        "(d) Next-pixel prediction",
        "Effective receptive fields of the image models",
        " 50% | ",
        "MACs/sample",
        "step (ms)",
        "lr (tuned)",
        "reach (tokens back)",
        "TOST p (Holm)",
        "Verdict rules",
        "Stage 1 has L = ",
    ],
    "zoo": ["top-1 (%)", "MACs (G)", "paper top-1"],
    "ssl": ["scratch", "SimMIM", "FCMAE", "probe FCMAE", "gain (pt)"],
    "length": ["conv+SSM ms", "attention MiB", "attn quad = lin (fit)", "6D"],
}


def _bar(image, c):
    image[2 + 2 * c : 5 + 2 * c, 4:24] = 200


@pytest.fixture(scope="module")
def standin(tmp_path_factory, fashion_standin):
    """Fashion-MNIST-shaped IDX files: 10 classes, each a noisy bar at a class-specific place."""
    return fashion_standin(str(tmp_path_factory.mktemp("fashion")), 512, 256, random_labels=True, draw=_bar)


@pytest.fixture(scope="module")
def data_root(standin):
    """The installed Fashion-MNIST when present, else the stand-in IDX set."""
    if all(
        os.path.isfile(os.path.join(SYSTEM_DIR, f"{p}-{k}-idx{d}-ubyte.gz"))
        for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    ):
        return SYSTEM_DIR
    return standin


@pytest.fixture(scope="module")
def lab_all(tmp_path_factory, data_root):
    out = str(tmp_path_factory.mktemp("lab") / "run")
    rc = main(["lab", "all", "--tiny", "--device", "cpu", "--out", out, "--data-root", data_root])
    assert rc == 0
    return out


_NUM = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?$")


def _table_cells(md: str):
    for line in md.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            for cell in line.strip("|").split("|"):
                yield cell.strip()


def _check_report(md: str):
    assert "|" in md
    assert "nan" not in md.lower().replace("nanosecond", "")
    assert "inf " not in md.lower()
    n = 0
    for cell in _table_cells(md):
        for part in re.split(r"\s*±\s*", cell):
            if _NUM.match(part):
                assert math.isfinite(float(part.rstrip("%"))), cell
                n += 1
    assert n > 0


def _finite_json(obj):
    if isinstance(obj, float):
        assert math.isfinite(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _finite_json(v)
    elif isinstance(obj, list):
        for v in obj:
            _finite_json(v)


@pytest.mark.parametrize("experiment", list(EXPERIMENT_FILES))
def test_tiny_experiment_outputs(lab_all, experiment):
    folder = os.path.join(lab_all, experiment)
    for name in EXPERIMENT_FILES[experiment]:
        path = os.path.join(folder, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, path
        if name.endswith(".png"):
            with open(path, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(folder, "report.md")) as f:
        md = f.read()
    for header in EXPECTED_TABLES[experiment]:
        assert header in md, (experiment, header)
    _check_report(md)
    with open(os.path.join(folder, "results.json")) as f:
        _finite_json(json.load(f))


def test_tiny_training_runs_are_clean(lab_all):
    for exp in ("causal", "framing"):
        with open(os.path.join(lab_all, exp, "runs.csv")) as f:
            rows = f.read().splitlines()
        header = rows[0].split(",")
        assert len(rows) > 1
        err = header.index("error")
        for r in rows[1:]:
            assert r.split(",")[err] == "", r
    with open(os.path.join(lab_all, "causal", "results.json")) as f:
        res = json.load(f)
    assert {r["variant"] for r in res["runs"]} == {"fully-visible", "causal"}
    assert all(math.isfinite(r["top1"]) for r in res["runs"])
    with open(os.path.join(lab_all, "framing", "results.json")) as f:
        res = json.load(f)
    for part in ("images", "pixels", "copy", "next_pixel"):
        assert res[part]["params_gap"] <= 0.05
        counts = {r["label"]: r["params"] for r in res[part]["rows"]}
        assert max(counts.values()) / min(counts.values()) <= 1.06
    for r in res["next_pixel"]["rows"]:  # bits per pixel: positive, near or below a uniform guess (4 bits)
        assert 0 < r["bpp"] < 5 and 0 <= r["acc"] <= 100, r


IMAGE_MODELS = ("no_mixer", "mambaout", "mamba", "mamba4", "vit")


def test_framing_erf_section(lab_all):
    """Part (a)'s ERF section: the matched models, untrained and trained, at stage 0 and the last, on the
    preset's 2 test images; sides grow with the threshold; non-zero maps; a figure with a row per model."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(lab_all, "framing")
    with open(os.path.join(folder, "results.json")) as f:
        rec = json.load(f)["erf"]
    assert rec["num_images"] == 2 and rec["image_size"] == [32, 32] and rec["missing_trained"] == []
    assert rec["wall_s"] < 60
    assert {(r["label"], r["weights"], r["stage"]) for r in rec["rows"]} == {
        (m, w, s) for m in IMAGE_MODELS for w in ("untrained", "trained") for s in (0, 3)
    }
    for r in rec["rows"]:
        sides = [r["table"][k] for k in ("0.2", "0.3", "0.5", "0.99")]
        assert all(s is not None and 0 < s <= 1 for s in sides), r
        assert sides == sorted(sides), r
    maps = np.load(os.path.join(folder, "erf_maps.npz"))
    assert set(maps.files) == {f"{m}_{w}" for m in IMAGE_MODELS for w in ("untrained", "trained")}
    for key in maps.files:
        assert maps[key].shape == (32, 32) and maps[key].max() > 0 and np.isfinite(maps[key]).all(), key
    width, height = Image.open(os.path.join(folder, "erf.png")).size
    assert width > 400 and height > width  # four rows of two panels
    with open(os.path.join(folder, "report.md")) as f:
        md = f.read()
    section = md[md.index("Effective receptive fields") :]
    assert "After training, the 50% square at the last stage is" in section
    assert "MambaOut (Gated CNN)'s 50% square" in section and "`erf.png`" in section
    order = ("(a) Fashion-MNIST as images", "Effective receptive fields", "(b) Fashion-MNIST as a pixel sequence")
    assert md.index(order[0]) < md.index(order[1]) < md.index(order[2])


def test_combined_report(lab_all):
    with open(os.path.join(lab_all, "report.md")) as f:
        md = f.read()
    assert "Claim by claim" in md
    for claim in (
        "No SSM gain on 2-D image classification",
        "SSM gain on a long causal task",
        "SSM gain on a long causal task: next-pixel prediction",
        "Causal token mixing hurts image classification",
    ):
        assert claim in md
    for exp, files in EXPERIMENT_FILES.items():
        for name in files:
            if name.endswith(".png"):
                assert f"({exp}/{name})" in md
    _check_report(md)
    with open(os.path.join(lab_all, "summary.json")) as f:
        summary = json.load(f)
    assert set(summary["experiments"]) == set(EXPERIMENT_FILES)
    assert len(summary["verdicts"]) == 5 + 4  # ssl: four claims
    claim_rows = [line for line in md.splitlines() if line.startswith("| SSM gain on a long causal task: next-pixel")]
    assert len(claim_rows) == 1 and "bits/pixel" in claim_rows[0]


def test_standin_idx_and_overrides(tmp_path, standin, capsys):
    """The reader on generated IDX files; CLI shortcuts and per-experiment --set."""
    out = str(tmp_path / "c")
    rc = main(
        [
            "lab",
            "causal",
            "--tiny",
            "--device",
            "cpu",
            "--out",
            out,
            "--data-root",
            standin,
            "--seeds",
            "0,1",
            "--epochs",
            "1",
            "--set",
            "causal:optim.lr=1e-3",
            "--set",
            "zoo:models=[]",
        ]
    )
    assert rc == 0
    with open(os.path.join(out, "causal", "results.json")) as f:
        res = json.load(f)
    assert res["config"]["seeds"] == [0, 1] and res["config"]["optim"]["lr"] == 1e-3
    assert {r["seed"] for r in res["runs"]} == {0, 1}
    assert set(res["plan"]["step_s"]) == {r["label"] for r in res["runs"]}  # measured step times
    assert {r["steps"] for r in res["runs"]} == {4}  # --epochs 1 = 256 images / batch 64: a step budget
    assert res["verdict"]["verdict"] != "inconclusive (fewer than 2 seeds)"
    _check_report(open(os.path.join(out, "causal", "report.md")).read())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["lab", "nope", "--tiny"], "unknown lab experiment"),
        (["lab", "causal", "--tiny", "--seeds", "abc"], "--seeds"),
        (["lab", "causal", "--tiny", "--seeds", "0,0"], "--seeds"),
        (["lab", "causal", "--tiny", "--epochs", "-1"], "--epochs"),
        (["lab", "causal", "--tiny", "--set", "optim.nope=1"], "nope"),
        (["lab", "causal", "--tiny", "--set", "bogus:optim.lr=1"], "unknown experiment"),
        (["lab", "causal", "--tiny", "--set", "noequals"], "KEY=VALUE"),
        (["lab", "causal", "--tiny", "--data-root", "/does/not/exist"], "--data-root"),
        (["lab", "causal", "--tiny", "--device", "quantum"], "--device"),
        (["lab"], "EXPERIMENT"),
    ],
)
def test_bad_arguments(argv, message, capsys, tmp_path):
    rc = main(argv + (["--out", str(tmp_path / "x")] if len(argv) > 1 else []))
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


# --- units ---------------------------------------------------------------------------------------


def test_lab_mixers_are_causal():
    import mambaout.lab.mixers  # noqa: F401  (registers the lab_* mixers)
    from mambaout.models.mixers import build_mixer

    for name, kw in (("lab_causal_conv1d", dict(kernel_size=4)), ("conv_ssm", dict(d_state=4, causal=True))):
        mixer = build_mixer(name, 8, **kw)
        x = torch.randn(1, 6, 6, 8, requires_grad=True)
        mixer(x)[0, 3, 2].sum().backward()
        seen = x.grad[0].abs().sum(-1).flatten() > 0
        assert not seen[3 * 6 + 3 :].any(), name  # nothing after (3, 2) in raster order
        assert seen[3 * 6 + 2]


def test_causal_image_models_mask_the_kernel_only():
    """The lab's causal 'mambaout'/'mamba' models are the zoo's mixers with ``causal=True``: same state dict."""
    from mambaout.lab.models import build_image_model
    from mambaout.models.mixers import DepthwiseConvMixer

    for kind in ("mambaout", "mamba"):
        spec = dict(kind=kind, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), kernel_size=3, d_state=4)
        with torch.device("meta"):
            full, causal = build_image_model(spec), build_image_model(spec, causal=True)
        shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in (full, causal)]
        assert shapes[0] == shapes[1], kind
        mixers = [m for m in causal.modules() if isinstance(m, DepthwiseConvMixer)]
        assert mixers and all(m.causal for m in mixers), kind


def test_param_matching():
    from mambaout.errors import LabError
    from mambaout.lab.models import assert_matched, build_seq_model, match_width

    spec = dict(dim=32, depth=2, kernel_size=4, d_state=8)
    with torch.device("meta"):
        target = sum(p.numel() for p in build_seq_model(spec, "ssm").parameters())
    m = match_width(lambda w: build_seq_model(spec, "gated_cnn", w), target, 32)
    assert abs(m["params"] - target) <= 0.05 * target and m["width"] > 32
    assert_matched({"a": 100, "b": 104})
    with pytest.raises(LabError):
        assert_matched({"a": 100, "b": 120})


def test_copy_task():
    from mambaout.lab.tasks import CopyTask

    t = CopyTask(64, 4, 8, 5, 3, torch.device("cpu"), eval_size=10)
    x, y = next(t.batches(0))
    assert x.shape == (5, 64) and y.shape == (5, 4)
    assert (x[:, -4:] == 9).all()
    for row, target in zip(x, y):
        assert row[:-4][row[:-4] > 0].tolist() == target.tolist()


def test_next_pixel_task():
    from mambaout.lab.tasks import FashionTensors, NextPixelTask

    data = FashionTensors.__new__(FashionTensors)
    data.device = torch.device("cpu")
    data.train_x = torch.arange(2 * 28 * 28).remainder(256).to(torch.uint8).reshape(2, 28, 28)
    data.train_y = torch.zeros(2, dtype=torch.long)
    data.test_x, data.test_y = data.train_x.clone(), data.train_y.clone()
    t = NextPixelTask(data, 2, levels=16)
    x, target = next(t.batches(0))
    assert x.shape == target.shape == (2, 784) and t.length == 784
    assert t.num_inputs == 17 and t.num_outputs == 16
    assert (x[:, 0] == 16).all() and (x[:, 1:] == target[:, :-1]).all()  # start token, then shifted right
    levels = t.quantise(data.train_x[:1])[0]
    assert levels.tolist() == [v // 16 for v in data.train_x[0].flatten().tolist()]  # floor(v / 256 * 16)
    pooled = NextPixelTask(data, 2, levels=4, pool=2)
    assert pooled.length == 196 and int(pooled.quantise(data.train_x).max()) <= 3

    class Uniform(torch.nn.Module):  # a uniform guess: log2(16) = 4 bits per pixel
        def forward(self, inp):
            return torch.zeros(*inp.shape, 16)

    r = t.evaluate(Uniform())
    assert abs(r["bpp"] - 4.0) < 1e-5 and r["count"] == 2 * 784


def test_next_pixel_models_are_strictly_causal():
    """The logits at step t depend on inputs 0..t only (input t is level t-1): changing later inputs
    leaves them unchanged, for both stacks."""
    from mambaout.lab.models import build_seq_model

    spec = dict(dim=8, depth=2, kernel_size=4, d_state=4)
    x = torch.randint(0, 17, (2, 40))
    for kind in ("gated_cnn", "ssm"):
        torch.manual_seed(0)
        model = build_seq_model(spec, kind, None, 16, 17, "all").eval()
        y = x.clone()
        y[:, 21:] = torch.randint(0, 17, (2, 19))
        with torch.no_grad():
            a, b = model(x), model(y)
        assert torch.allclose(a[:, :21], b[:, :21], atol=1e-5), kind
        assert not torch.allclose(a[:, 21:], b[:, 21:]), kind


def test_presets_have_every_mode():
    from mambaout.lab.core import EXPERIMENTS, MODES, load_lab_preset

    for exp in EXPERIMENTS:
        for mode in MODES:
            cfg = load_lab_preset(exp, False, mode=mode)
            assert cfg["mode"] == mode
            if exp in ("causal", "framing") and mode != "tiny":
                assert len(cfg["seeds"]) >= 3
            if exp in ("causal", "framing"):  # issue #17: step budgets, margins and rules written in the preset
                assert "budget_s" not in str(cfg)
                assert cfg["verdict"]["margins"] and cfg["verdict"]["rules"] and cfg["verdict"]["alpha"] == 0.05
                parts = [cfg] if exp == "causal" else [cfg[p] for p in cfg["parts"]]
                assert all(isinstance(p["steps"], int) and p["steps"] > 0 for p in parts)
                if mode != "tiny":
                    assert len(cfg["tune"]["grid"]) == 3 and cfg["tune"]["val"] > 0
    full = load_lab_preset("framing", False)
    assert full["copy"]["length"] >= 1024 and full["pixels"]["pool"] == 1
    assert full["next_pixel"]["pool"] == 1 and full["next_pixel"]["model"]["depth"] * 3 < 28  # conv can't see up


def test_tiny_contradicts_mode(capsys):
    assert main(["lab", "causal", "--tiny", "--mode", "full"]) == 2
    assert "contradicts" in capsys.readouterr().err
