"""Export one zoo model and check the file: :func:`export_model` (a registered name) or :func:`export_module` (a built
model) -> :class:`ExportResult`.

Steps: load the model (a registered name, optionally a checkpoint, through :func:`mambaout.explain.inputs.load_model`),
run it in eager mode on a fixed random input (a size the model cannot take fails here, as the model's one-line
error), write the file (atomically: a temporary name, then renamed), read it back the way a user would
(:mod:`.formats`) and compare: the largest absolute difference must stay within ``tolerance`` times the output's
magnitude (at least 1), at the export batch and, with a dynamic batch, at another one.  An exporter's exception
becomes one :class:`~mambaout.errors.ExportError` line naming the format, the model and the exporter's reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import torch

from ..errors import ExportError, MambaoutError, UsageError, first_line
from ..utils.paths import check_output_file
from .formats import FORMATS
from .onnx import EXPORTERS

TOLERANCE = 1e-4  # fp32: every format runs the same arithmetic up to reordering


@dataclass
class ExportResult:
    model: str
    format: str
    path: str
    bytes: int
    img_size: tuple[int, int]
    batch: int
    dynamic_batch: bool
    export_s: float
    checks: list[dict] = field(default_factory=list)  # {"batch", "max_abs_diff"} per checked batch
    tolerance: float = TOLERANCE
    exporter: str | None = None  # ONNX only

    @property
    def max_abs_diff(self) -> float:
        return max(c["max_abs_diff"] for c in self.checks)

    def as_dict(self) -> dict:
        return {**asdict(self), "max_abs_diff": self.max_abs_diff}


def summarise(e: BaseException, limit: int = 300) -> str:
    """An exporter's exception as one line: its type and first non-empty line, shortened."""
    text = f"{type(e).__name__}: {first_line(e, limit) or 'no message'}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _input(batch: int, in_chans: int, size: tuple[int, int]) -> torch.Tensor:
    return torch.randn(batch, in_chans, *size, generator=torch.Generator().manual_seed(batch))


def _check(run, model, x: torch.Tensor, tolerance: float, what: str) -> dict:
    with torch.no_grad():
        ref = model(x)
        try:
            got = run(x)
        except MambaoutError:
            raise
        except Exception as e:  # noqa: BLE001 - a file that does not run is reported in one line
            raise ExportError(f"{what}: the exported file does not run at batch {x.shape[0]}: {summarise(e)}") from None
    if tuple(got.shape) != tuple(ref.shape):
        raise ExportError(f"{what}: output shape {tuple(got.shape)} at batch {x.shape[0]}, expected {tuple(ref.shape)}")
    diff = (got.float() - ref.float()).abs().max().item()
    bound = tolerance * max(1.0, ref.abs().max().item())
    if not diff <= bound:  # also catches NaN
        raise ExportError(f"{what}: max abs diff {diff:.3g} at batch {x.shape[0]} exceeds {bound:.3g}")
    return {"batch": int(x.shape[0]), "max_abs_diff": diff}


def export_model(
    name: str,
    format: str,
    output: str,
    checkpoint: str | None = None,
    img_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    num_classes: int | None = None,
    onnx_exporter: str = "torchscript",
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Write zoo model ``name`` (with ``checkpoint``'s weights, else seeded random ones) to ``output`` in ``format``
    (one of :data:`FORMATS`) and check the file against the model; see the module docstring.  ``img_size``
    defaults to the checkpoint's training size, else the model's registered input size."""
    from ..explain.inputs import load_model
    from ..registry import model_info

    _check_request(format, onnx_exporter, output)
    if num_classes is not None and num_classes < 0:
        raise UsageError(f"--num-classes must be >= 0 (0: no classifier, the pooled features), got {num_classes}")
    kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    if checkpoint is None:
        torch.manual_seed(0)  # an untrained model: the same weights on every run
    model = load_model(name, checkpoint, **kwargs)
    trained = (model.checkpoint_info or {}).get("img_size")
    size = tuple(img_size) if img_size else (trained, trained) if trained else (model_info(name).input_size,) * 2
    return export_module(model, name, format, output, size, dynamic_batch, onnx_exporter, tolerance)


def _check_request(format: str, onnx_exporter: str, output: str) -> None:
    """Before any model is built: the format, the exporter and the file to write."""
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if onnx_exporter not in EXPORTERS:
        raise UsageError(f"unknown ONNX exporter {onnx_exporter!r}; choose one of {', '.join(EXPORTERS)}")
    check_output_file(os.fspath(output), "export -o")


def export_module(
    model: torch.nn.Module,
    name: str,
    format: str,
    output: str,
    img_size: tuple[int, int],
    dynamic_batch: bool = False,
    onnx_exporter: str = "torchscript",
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export a built model (``name`` labels it; the safetensors check rebuilds registered model ``name``) on the
    CPU in eval mode, and check the file."""
    _check_request(format, onnx_exporter, output)
    model = model.cpu().eval()
    size = tuple(int(s) for s in img_size)
    batch = 2 if dynamic_batch else 1  # torch.export treats a batch of 1 as a constant
    x = _input(batch, model.in_chans, size)
    with torch.no_grad():
        model(x)  # the model's own error (e.g. a size it cannot take) before any exporter runs
    fmt = FORMATS[format]
    what = f"{format} export of {name}"
    output = os.fspath(output)
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)), f".tmp{os.getpid()}.{os.path.basename(output)}")
    start = time.perf_counter()
    try:
        with torch.no_grad():  # an inference graph; with autograd on, tracing keeps every intermediate alive
            fmt.writer(model, x, tmp, dynamic_batch, name=name, onnx_exporter=onnx_exporter)
        seconds = time.perf_counter() - start
        run = fmt.runner(tmp, name)
        checks = [_check(run, model, x, tolerance, what)]
        if dynamic_batch:
            checks.append(_check(run, model, _input(3, model.in_chans, size), tolerance, what))
        os.replace(tmp, output)
    except MambaoutError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter failures are long; the user gets one line
        raise ExportError(f"{what} failed: {summarise(e)}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return ExportResult(
        model=name,
        format=format,
        path=output,
        bytes=os.path.getsize(output),
        img_size=size,
        batch=batch,
        dynamic_batch=dynamic_batch,
        export_s=round(seconds, 3),
        checks=checks,
        tolerance=tolerance,
        exporter=onnx_exporter if format == "onnx" else None,
    )
