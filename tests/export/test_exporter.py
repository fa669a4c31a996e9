"""`mambaout export` / export_module: each format's file reproduces the model; bad requests are one-line errors."""

import sys
from pathlib import Path

import pytest
import torch

from mambaout.cli import main
from mambaout.errors import ExportError
from mambaout.export import export_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_zoo import SCAN_FAMILY, build  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SLOW_SCANS = [pytest.param(scan, marks=pytest.mark.slow) for scan in SCAN_FAMILY if scan != "raster"]


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_onnx_mambaout_dynamic_batch(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    code, out, err = _cli(capsys, "export", "mambaout_test", "--format", "onnx", "--dynamic-batch", "-o", str(path))
    assert code == 0, err
    assert path.is_file() and "max abs diff" in out and "batch 3" in out
    assert not list(tmp_path.glob(".tmp*"))  # the temporary file was renamed, nothing left behind
    import onnx

    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("scan", ["raster", *SLOW_SCANS])
def test_onnx_ssm_matches_onnxruntime(scan, tmp_path):
    """One SSM model per scan order (raster fast, the others slow), onnxruntime against eager at <= 1e-4."""
    name = SCAN_FAMILY[scan]
    result = export_module(build(name), name, "onnx", tmp_path / f"{name}.onnx", (64, 64), dynamic_batch=True)
    assert [c["batch"] for c in result.checks] == [2, 3]
    assert result.max_abs_diff <= 1e-4 and result.bytes > 10_000


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program", "safetensors"])
def test_other_formats_round_trip(fmt, tmp_path, capsys):
    path = tmp_path / f"m.{fmt}"
    code, out, err = _cli(
        capsys, "export", "mambaout_test", "--format", fmt, "--num-classes", "3", "-o", str(path), "--json"
    )
    assert code == 0, err
    import json

    result = json.loads(out)
    assert result["format"] == fmt and result["max_abs_diff"] <= 1e-4 and result["img_size"] == [64, 64]


def test_safetensors_file_is_a_checkpoint_for_export(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    assert (
        _cli(capsys, "export", "mambaout_test", "--format", "safetensors", "--num-classes", "4", "-o", str(weights))[0]
        == 0
    )
    out_path = tmp_path / "w.pt2"
    code, out, err = _cli(
        capsys,
        "export",
        "mambaout_test",
        "--checkpoint",
        str(weights),
        "--format",
        "exported-program",
        "-o",
        str(out_path),
    )
    assert code == 0, err
    program = torch.export.load(str(out_path))
    assert program.module()(torch.randn(1, 3, 64, 64)).shape == (1, 4)  # num_classes came from the metadata


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--format", "tflite"], "invalid choice: 'tflite'"),
        (["--format", "onnx", "--img-size", "30"], "not divisible by 32"),
        (["--format", "onnx", "--img-size", "64", "0"], "positive integers"),
    ],
)
def test_bad_requests_are_one_line_errors(argv, message, tmp_path, capsys):
    code, out, err = _cli(capsys, "export", "mambaout_test", *argv, "-o", str(tmp_path / "x.onnx"))
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_checkpoint_of_another_model_is_a_one_line_error(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    assert _cli(capsys, "export", "mambaout_test", "--format", "safetensors", "-o", str(weights))[0] == 0
    code, _, err = _cli(capsys, "export", "mamba_femto", "--checkpoint", str(weights), "--format", "onnx", "-o", "x")
    assert code == 2 and "holds a mambaout_test model, not mamba_femto" in err and err.count("\n") == 1
    plain = tmp_path / "plain.pt"  # a state dict without metadata: the keys do not fit
    torch.save(build("mamba").state_dict(), plain)
    code, _, err = _cli(capsys, "export", "mambaout_test", "--checkpoint", str(plain), "--format", "onnx", "-o", "x")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_exporter_failure_and_parity_failure_are_summarised(tmp_path, monkeypatch):
    model = build("mambaout_test")

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported: data-dependent op\n" + "  File x.py, line 1\n" * 2000)

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError) as e:
        export_module(model, "mambaout_test", "onnx", tmp_path / "m.onnx", (64, 64))
    assert str(e.value) == "onnx export of mambaout_test failed: RuntimeError: Unsupported: data-dependent op"
    monkeypatch.undo()

    from mambaout.export import formats

    real = formats.FORMATS["torchscript"]
    wrong = formats.Format(real.name, real.suffix, real.writer, lambda p, n: lambda x: real.runner(p, n)(x) + 1e-2, "")
    monkeypatch.setitem(formats.FORMATS, "torchscript", wrong)
    with pytest.raises(ExportError, match=r"max abs diff 0.01 at batch 1 exceeds"):
        export_module(model, "mambaout_test", "torchscript", tmp_path / "m.pt", (64, 64))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_dynamo_onnx_exporter(tmp_path):
    result = export_module(
        build("mamba"), "mamba", "onnx", tmp_path / "m.onnx", (64, 64), dynamic_batch=True, onnx_exporter="dynamo"
    )
    assert result.exporter == "dynamo" and result.max_abs_diff <= 1e-4
