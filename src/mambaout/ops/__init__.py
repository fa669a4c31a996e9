"""Selective scan (S6, Mamba-1) operators.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, backend="auto")`` -- shapes and semantics of mamba_ssm's
``selective_scan_ref`` (real A):

* u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L) or grouped (batch, G, N, L),
  group g serving channels [g*dim/G, (g+1)*dim/G); D, delta_bias: (dim,).
* returns out (batch, dim, L) in u's dtype, or (out, last_state (batch, dim, N) fp32).
* state arithmetic is fp32 (fp64 for fp64 inputs on the torch/reference backends).

Backends
--------
``"auto"``       Triton kernel when the inputs are CUDA tensors and triton works, else ``"torch"``, or
                 ``"doubling"`` while a graph is traced (torch.compile, torch.export, torch.jit.trace,
                 the ONNX exporters). (auto never picks mamba_ssm, so results do not depend on what
                 happens to be installed.)
``"torch"``      chunked pure-PyTorch scan (:mod:`.scan_torch`), CPU or GPU, full autograd
                 (also through last_state).
``"doubling"``   recursive-doubling PyTorch scan (:mod:`.scan_doubling`): ceil(log2 L) whole-tensor steps,
                 the formulation traced graphs (compile, export, ONNX) hold; (B, D, L, N) memory.
``"triton"``     fused Triton kernels (:mod:`.scan_triton`); no gradient through last_state. Called
                 through the ``torch.ops.mambaout.selective_scan`` operator (fake implementation and
                 autograd registered), so torch.compile(fullgraph=True) and torch.export see one node.
``"reference"``  sequential loop (:mod:`.scan_reference`): the specification, slow.
``"mamba_ssm"``  ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` if importable
                 (never required; only when asked for explicitly).

MAC counting: the call runs inside :func:`.counting.counted_op` with :func:`scan_macs`'s count, so MAC counters
(:mod:`mambaout.analysis.macs`) charge the VMamba convention instead of the aten ops inside (not while a graph is
traced: the counter's thread-local state is Python the graph cannot hold).
"""

from __future__ import annotations

import torch

from . import scan_triton
from ._common import check_scan_args
from .counting import counted_op
from .scan_doubling import selective_scan_doubling
from .scan_reference import selective_scan_reference
from .scan_torch import selective_scan_torch

__all__ = [
    "selective_scan",
    "scan_macs",
    "selective_scan_doubling",
    "selective_scan_reference",
    "selective_scan_torch",
    "triton_available",
    "BACKENDS",
]

BACKENDS = ("auto", "torch", "doubling", "triton", "reference", "mamba_ssm")


def triton_available() -> bool:
    """True when the Triton backend can run here (triton importable and a CUDA device present)."""
    return scan_triton.available()


def scan_macs(batch: int, length: int, dim: int, d_state: int, with_D: bool = True, with_z: bool = False) -> int:
    """Multiply-accumulates charged for one selective scan, VMamba's convention.

    ``9 * batch * length * dim * d_state`` (VMamba ``flops_selective_scan_fn``, after mamba issue
    #110: discretisation, state update and output contraction per (b, t, d, n)), plus
    ``batch * dim * length`` for the D skip term when ``with_D`` and another ``batch * dim * length``
    for the z gate when ``with_z``.  ``dim`` counts every scanned channel (e.g. 4 * d_inner for
    VMamba's 4-direction SS2D).  Softplus, delta_bias and dtype casts are not counted.
    """
    macs = 9 * batch * length * dim * d_state
    if with_D:
        macs += batch * dim * length
    if with_z:
        macs += batch * dim * length
    return int(macs)


def tracing() -> bool:
    """True while torch.compile / torch.export (dynamo or not) or torch.jit.trace records a graph."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore
    except Exception as e:  # ImportError or a broken CUDA extension
        raise RuntimeError(f"selective_scan: backend='mamba_ssm' requested but mamba_ssm is unusable: {e}") from e
    return selective_scan_fn


def _run(backend, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if u.device.type == "meta":  # shape propagation only (e.g. MAC counting on the meta device)
        out = torch.empty_like(u)
        last = torch.empty(u.shape[0], u.shape[1], A.shape[1], device="meta", dtype=torch.float32)
        return (out, last) if return_last_state else out
    if backend == "auto":
        backend = "triton" if (u.is_cuda and scan_triton.available()) else "doubling" if tracing() else "torch"
    if backend == "torch":
        return selective_scan_torch(*args)
    if backend == "doubling":
        return selective_scan_doubling(*args)
    if backend == "triton":
        if not scan_triton.available():
            raise RuntimeError("selective_scan: backend='triton' needs triton and a CUDA device")
        return scan_triton.selective_scan_triton(*args)
    if backend == "reference":
        return selective_scan_reference(*args)
    if backend == "mamba_ssm":
        return _mamba_ssm_fn()(*args)
    raise ValueError(f"selective_scan: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str = "auto",
):
    """Selective scan S6 (see the module docstring for shapes, semantics and backends)."""
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    bsz, dim, L, N, _ = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    if tracing():
        return _run(backend, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    with counted_op(scan_macs(bsz, L, dim, N, with_D=D is not None, with_z=z is not None), "selective_scan"):
        return _run(backend, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
