"""`benchmark(...)` / `mambaout benchmark`: the table's formats, the CLI, one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

import mambaout
from mambaout.bench.table import BenchTable
from mambaout.cli import main
from mambaout.errors import InputError, UnknownModelError, UsageError

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: no thread oversubscription on 2 shared cores

FAST = dict(img_size=(32, 32), repeats=1, warmup=0)


@pytest.fixture(scope="module")
def table():
    return mambaout.benchmark(["mambaout_test"], device="cpu", batch_size=2, **FAST)


def test_api_rows(table):
    (row,) = table.rows
    assert row["model"] == "mambaout_test" and row["source"] == "mambaout"
    assert row["images_per_s"] == pytest.approx(2 / (row["step_ms"] / 1e3))
    assert row["latency_p50_ms"] > 0 and row["latency_p95_ms"] >= row["latency_p50_ms"]
    assert row["peak_mem_mib"] > 0 and row["compile_s"] is None
    assert table.settings["batch"] == 2 and table.settings["img"] == "32x32"


def test_formats(table, tmp_path):
    md = table.to_markdown()
    assert "| mambaout_test" in md and "images/s" in md and "batch 2, 32x32" in md
    (row,) = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert row["model"] == "mambaout_test" and float(row["images_per_s"]) == pytest.approx(table[0]["images_per_s"])
    data = json.loads(table.to_json())
    assert data["rows"][0]["model"] == "mambaout_test" and data["settings"]["mode"] == "infer"
    path = table.plot(str(tmp_path / "p.png"))  # no published top-1: named in a footnote
    assert open(path, "rb").read(4) == b"\x89PNG"


def test_plot_places_models_by_paper_top1(tmp_path):
    t = BenchTable(
        [
            dict(model="mambaout_femto", source="mambaout", images_per_s=10.0, paper_top1=78.9),
            dict(model="vim_tiny", source="mambaout", images_per_s=3.0, paper_top1=76.1),
            dict(model="convnext_tiny", source="timm (ConvNeXt-T)", images_per_s=5.0, paper_top1=82.1),
        ]
    )
    assert open(t.plot(str(tmp_path / "f.png")), "rb").read(4) == b"\x89PNG"


def test_train_mode_and_cli(capsys):
    code = main("benchmark mambaout_test --img-size 32 --repeats 1 --warmup 0 --mode train --csv".split())
    out = capsys.readouterr().out
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and row["model"] == "mambaout_test" and float(row["images_per_s"]) > 0
    assert row["latency_p50_ms"] == ""  # no batch-1 latency for a training step


def test_cli_json(capsys):
    code = main(["benchmark", "mambaout_test", "--img-size", "32", "--repeats", "2", "--warmup", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["settings"]["repeats"] == 2 and data["rows"][0]["latency_p50_ms"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["benchmark", "mambaout_tset"], "unknown model 'mambaout_tset'"),
        (["benchmark", "mambaout_test", "--device", "tpu"], "--device must be cpu or cuda"),
        (["benchmark", "mambaout_test", "--img-size", "0"], "--img-size"),
        (["benchmark", "mambaout_test", "--img-size", "1", "--repeats", "1"], "cannot take a 1x1 input"),
        (["benchmark", "mambaout_test", "--cuda-graphs"], "--cuda-graphs needs --device cuda"),
        (["benchmark", "mambaout_test", "--batch-size", "0"], "--batch-size >= 1"),
        (["benchmark", "mambaout_test", "--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_inputs_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_threads_are_restored():
    before = torch.get_num_threads()
    t = mambaout.benchmark("mambaout_test", threads=before + 1, latency=False, **FAST)
    assert t.settings["threads"] == before + 1 and torch.get_num_threads() == before
    assert f"({before + 1} threads)" in t.to_markdown()


def test_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="CUDA is not available"):
        mambaout.benchmark("mambaout_test", device="cuda")


def test_compile_failure_is_one_line(monkeypatch):
    class Broken(torch.nn.Module):  # what a compiled model whose backend fails looks like at its first call
        def forward(self, x):
            raise RuntimeError("backend exploded\nlong traceback line 2")

    def broken_compile(model, **kwargs):
        return Broken()

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(
        UsageError, match=r"--compile default failed for mambaout_test \(mambaout\): RuntimeError: backend exploded$"
    ):
        mambaout.benchmark("mambaout_test", compile="default", **FAST)


def test_compiled_training_step(monkeypatch):
    """The --compile --mode train path (torch.compile'd model, loss, backward, AdamW) through aot_eager (no C++
    build); the first call compiles, so it is a warm-up even when none is asked for."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: real_compile(model, backend="aot_eager"))
    t = mambaout.benchmark("mambaout_test", compile="default", mode="train", **FAST)  # FAST asks for 0 warm-ups
    (row,) = t.rows
    assert t.settings["warmup"] == 1 and row["compile_s"] > 0 and row["images_per_s"] > 0
    torch._dynamo.reset()


def test_references_that_cannot_take_the_size_are_skipped_with_a_note(monkeypatch):
    from mambaout.bench import runner

    class TooSmall(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("Input image size (32*32) doesn't match model")

    monkeypatch.setattr(runner, "_build_timm", lambda name, size: TooSmall())
    t = mambaout.benchmark("mambaout_test", against_timm=True, latency=False, **FAST)
    assert [r["model"] for r in t.rows] == ["mambaout_test"] and "vs_timm" not in t.rows[0]
    assert any("timm has no model named mambaout_test" in n for n in t.notes)
    skipped = [n for n in t.notes if "skipped" in n and "cannot take a 32x32 input" in n]
    assert len(skipped) == len(runner.REFERENCES)


def test_errors_raised_before_measuring():
    with pytest.raises(UnknownModelError):
        mambaout.benchmark(["mambaout_test", "nope"], **FAST)
    with pytest.raises(InputError):
        mambaout.benchmark("mambaout_test", img_size=(1, 1), repeats=1, warmup=0)
