"""Selective scan (S6) by recursive doubling: a fixed, small number of whole-tensor ops, for graphs.

``torch.compile``, ``torch.export``, TorchScript and ONNX trace Python loops into straight-line graphs, so the
chunked scan of :mod:`.scan_torch` (about 2*sqrt(L) sequential steps a block, in-place ops on views, a
hand-written backward) becomes hundreds of nodes and minutes of tracing.  This formulation solves
``h_t = a_t * h_{t-1} + x_t`` (``a_t = exp(delta_t * A)``, ``x_t = delta_t * B_t * u_t``) with the
Hillis-Steele scan: after the step of offset k every position holds the recurrence over its last 2k steps::

    x_t  <- x_t + exp(s_t) * x_{t-k}        (zero before the start)
    s_t  <- s_t + s_{t-k}                   (log decay of the window; 0 before the start)

ceil(log2 L) steps of pad / exp / mul / add on (B, D, L, N) tensors (12 steps at L = 56*56), no in-place op,
no data-dependent control flow; autograd differentiates it as it is.  Only exponentials of sums of
``delta * A <= 0`` appear (each <= 1), so it is as stable as the sequential loop, and the window decay is an
``exp`` of a sum of logs rather than a product of factors near 1 (accurate for tiny steps).

Cost: O(L log L) work and (B, D, L, N) memory per live tensor (the eager :mod:`.scan_torch` bounds memory by
blocks); that is what a traced inference graph wants, and what ONNX Runtime runs as a few large kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import check_scan_args, compute_dtype, traced_delta


def _shifted(t: torch.Tensor, k: int) -> torch.Tensor:
    """``t`` moved k steps later along time (dim -2), zeros in front: position t holds t - k."""
    return F.pad(t[..., :-k, :], (0, 0, k, 0))


def scan_states(la: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """All states of ``h_t = exp(la_t) * h_{t-1} + x_t`` (h_{-1} = 0) along dim -2 of (..., L, N) tensors."""
    length = x.shape[-2]
    k = 1
    while k < length:
        x = x + torch.exp(la) * _shifted(x, k)
        if 2 * k < length:  # the last step's window decays are never read
            la = la + _shifted(la, k)
        k *= 2
    return x


def selective_scan_doubling(
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
):
    """S6 scan by recursive doubling (see the module docstring); same API and results as the reference."""
    bsz, dim, L, N, G = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    cd = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    uf = u.to(cd)
    df = traced_delta(delta, delta_bias, delta_softplus, cd)
    # grouped layout: channels (b, G, D/G, L, 1) against B/C (b, G, 1, L, N)
    dg = df.reshape(bsz, G, dim // G, L, 1)
    Bg = (B if B.dim() == 4 else B.unsqueeze(1)).to(cd).transpose(-1, -2).unsqueeze(2)
    Cg = (C if C.dim() == 4 else C.unsqueeze(1)).to(cd).transpose(-1, -2).unsqueeze(2)
    la = dg * A.to(cd).reshape(G, dim // G, 1, N)
    x = dg * uf.reshape(bsz, G, dim // G, L, 1) * Bg
    h = scan_states(la, x)  # (b, G, D/G, L, N)
    y = (h * Cg).sum(-1).reshape(bsz, dim, L)
    if D is not None:
        y = y + uf * D.to(cd)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cd))
    out = y.to(u.dtype)
    if not return_last_state:
        return out
    last = h[..., -1, :].reshape(bsz, dim, N) if L else uf.new_zeros(bsz, dim, N)
    return out, last
