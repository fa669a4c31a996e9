"""The export formats: for each, how to write a model to a file and how to run that file again.

``writer(model, x, path, dynamic_batch, name=..., **options)`` writes; ``runner(path, name) -> run(x)`` reads the
file back the way a user would and returns a function of an input batch, which :mod:`.exporter` compares with the
model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..weights import save_safetensors
from .onnx import onnx_runner, write_onnx


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # the usual file name ending
    writer: Callable
    runner: Callable
    what: str


def _write_torchscript(model, x, path, dynamic_batch, **_):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about constants: the parity check decides
        traced = torch.jit.trace(model, (x,), check_trace=False)
    traced.save(path)


def _run_torchscript(path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(path, map_location="cpu").eval()
    return lambda x: module(x)


def _write_exported_program(model, x, path, dynamic_batch, **_):
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    with open(path, "wb") as f:  # a file object: torch.export warns about any path not ending in .pt2
        torch.export.save(program, f)


def _run_exported_program(path, name):
    with open(path, "rb") as f:
        module = torch.export.load(f).module()
    return lambda x: module(x)


def _write_safetensors(model, x, path, dynamic_batch, name=None, **_):
    kwargs = (getattr(model, "checkpoint_info", None) or {}).get("kwargs") or {}
    meta = {"model": name, "num_classes": model.num_classes, "in_chans": model.in_chans}
    meta.update({k: v for k, v in kwargs.items() if k == "stem_stride"})
    save_safetensors(model, path, metadata=meta)


def _run_safetensors(path, name):
    from ..explain.inputs import load_model

    model = load_model(name, path)
    return lambda x: model(x)


def _write_onnx(model, x, path, dynamic_batch, onnx_exporter="torchscript", **_):
    write_onnx(model, x, path, dynamic_batch, onnx_exporter)


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", _write_onnx, lambda path, name: onnx_runner(path), "ONNX graph (onnxruntime)"),
        Format("torchscript", ".pt", _write_torchscript, _run_torchscript, "TorchScript (torch.jit.trace)"),
        Format(
            "exported-program",
            ".pt2",
            _write_exported_program,
            _run_exported_program,
            "torch.export ExportedProgram (torch.export.save)",
        ),
        Format("safetensors", ".safetensors", _write_safetensors, _run_safetensors, "weights + build metadata"),
    )
}
