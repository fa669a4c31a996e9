"""Shared argument checking for the selective-scan backends."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ScanShape(NamedTuple):
    batch: int
    dim: int
    length: int
    d_state: int
    groups: int


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_scan_args(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
) -> ScanShape:
    """Validate the shapes of a selective-scan call; raise ``ValueError`` with a clear message.

    Returns ``(batch, dim, length, d_state, groups)``; ``groups`` is 1 for (B, N, L) B/C.
    """
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"selective_scan: {name} must be a torch.Tensor, got {type(t).__name__}")
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must have shape (batch, dim, length), got {_shape(u)}")
    batch, dim, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"selective_scan: delta must have u's shape {_shape(u)}, got {_shape(delta)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must have shape (dim={dim}, d_state), got {_shape(A)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (real A only)")
    d_state = A.shape[1]
    if d_state < 1:
        raise ValueError("selective_scan: A must have d_state >= 1 columns")
    if B.dim() in (3, 4) and C.dim() in (3, 4) and B.dim() != C.dim():
        raise ValueError(f"selective_scan: B {_shape(B)} and C {_shape(C)} must both be grouped or both not")
    groups = None
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 3:
            exp = (batch, d_state, length)
            g = 1
        elif t.dim() == 4:
            g = t.shape[1]
            exp = (batch, g, d_state, length)
        else:
            raise ValueError(
                f"selective_scan: {name} must have shape (batch, d_state, length) or "
                f"(batch, groups, d_state, length), got {_shape(t)}"
            )
        if tuple(t.shape) != exp:
            raise ValueError(
                f"selective_scan: {name} has shape {_shape(t)}, expected {tuple(exp)} "
                f"(batch={batch}, d_state={d_state}, length={length})"
            )
        if g < 1 or dim % g != 0:
            raise ValueError(f"selective_scan: {name} has {g} groups, which must divide dim={dim}")
        if groups is not None and g != groups:
            raise ValueError(f"selective_scan: B has {groups} groups but C has {g}")
        groups = g
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and (t.dim() != 1 or t.shape[0] != dim):
            raise ValueError(f"selective_scan: {name} must have shape (dim={dim},), got {_shape(t)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"selective_scan: z must have u's shape {_shape(u)}, got {_shape(z)}")
    devs = {t.device for t in (u, delta, A, B, C, D, z, delta_bias) if t is not None}
    if len(devs) > 1:
        raise ValueError(f"selective_scan: all inputs must be on one device, got {sorted(map(str, devs))}")
    return ScanShape(batch, dim, length, d_state, groups)


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """fp32, or fp64 when any input is fp64 (state arithmetic is never below fp32)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def traced_delta(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool, cd: torch.dtype
) -> torch.Tensor:
    """softplus(delta + delta_bias) in ``cd``, computed in a contiguous layout, for the formulations graphs trace.

    A permuted ``delta`` (SelectiveSSM's dt projection is an einsum output) is copied to a contiguous layout
    first: AOTAutograd's fake ``softplus_backward`` (a decomposition built on ``where(x > threshold, ...)``)
    gives its result the layout of ``x`` where the eager kernel follows the incoming gradient's, so a ``view``
    the backward graph recorded under the fake strides (the einsum backward's reshape) failed at run time with
    "view size is not compatible with input tensor's size and stride".  Same values, one (B, D, L) copy.
    The eager chunked scan (never traced by ``backend="auto"``) keeps delta's layout, so eager numbers do not move.
    """
    df = delta.to(cd).contiguous()
    if delta_bias is not None:
        df = df + delta_bias.to(cd)[:, None]
    return torch.nn.functional.softplus(df) if delta_softplus else df
