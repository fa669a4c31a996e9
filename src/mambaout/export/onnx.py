"""ONNX: write a model with ``torch.onnx.export`` and run the file with onnxruntime.

Two exporters: ``"torchscript"`` (the default: torch.jit.trace, opset 17; a tiny model exports in seconds) and
``"dynamo"`` (torch.export + onnxscript, opset 18; about ten times slower here).  Both see the scan as the
recursive-doubling formulation (:mod:`mambaout.ops.scan_doubling`), since the model is traced on the CPU.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch

from ..errors import DependencyError

EXPORTERS = ("torchscript", "dynamo")
OPSET = {"torchscript": 17, "dynamo": 18}
INPUT, OUTPUT = "image", "logits"


def write_onnx(model: torch.nn.Module, x: torch.Tensor, path: str, dynamic_batch: bool, exporter: str = "torchscript"):
    """Export ``model`` at input ``x`` to ``path`` (batch dimension symbolic with ``dynamic_batch``)."""
    names = dict(input_names=[INPUT], output_names=[OUTPUT])
    # the exporters print progress and warn about tracing details; the checks after export are what count
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
            program = torch.onnx.export(
                model, (x,), dynamo=True, opset_version=OPSET[exporter], dynamic_shapes=shapes, verbose=False, **names
            )
            program.save(path)
        else:
            axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(
                model, (x,), path, dynamo=False, opset_version=OPSET[exporter], dynamic_axes=axes, **names
            )


def onnx_runner(path: str):
    """``run(x) -> y``: the ONNX file in an onnxruntime CPU session."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DependencyError("checking an ONNX export needs onnxruntime (pip install 'mambaout[export]')") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return run
