"""Take a zoo model out: ONNX, TorchScript, torch.export ExportedProgram or safetensors, each file checked against
the model it came from.

    from mambaout.export import export_model
    result = export_model("mambaout_femto", "onnx", "femto.onnx", dynamic_batch=True)
    result.max_abs_diff, result.bytes, result.export_s

Models are exported on the CPU, where the selective scan is traced as its recursive-doubling formulation
(:mod:`mambaout.ops.scan_doubling`: ceil(log2 L) whole-tensor steps); the graph formats hold one input size (scan
orders are constants of the graph), the batch is symbolic with ``dynamic_batch``.  docs/export.md has what
exported where, sizes, parity and times.
"""

from .exporter import TOLERANCE, ExportResult, export_model, export_module, summarise
from .formats import FORMATS
from .onnx import EXPORTERS

__all__ = ["EXPORTERS", "FORMATS", "TOLERANCE", "ExportResult", "export_model", "export_module", "summarise"]
