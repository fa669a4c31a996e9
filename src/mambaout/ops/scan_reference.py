"""Sequential reference selective scan (S6): the specification the fast paths are tested against.

Same semantics and shapes as mamba_ssm's ``selective_scan_ref`` (real A only)::

    delta = delta + delta_bias             (if given)
    delta = softplus(delta)                (if delta_softplus)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (h_0 = 0; per channel d, state n)
    y_t   = sum_n C_t[n] * h_t[n] + D * u_t
    out   = y * silu(z)                    (if z given)

A plain Python loop over L with autograd; every state quantity in fp32 (fp64 if an input is fp64).
Slow (L steps) and memory-hungry (materialises (B, D, L, N)); use it for tests only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import check_scan_args, compute_dtype, traced_delta


def _expand_groups(M: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, N, L) -> (B, 1, N, L); (B, G, N, L) -> (B, D, N, L) with group g serving D/G channels."""
    if M.dim() == 3:
        return M.unsqueeze(1)
    return M.repeat_interleave(dim // M.shape[1], dim=1)


def selective_scan_reference(
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
    """Sequential S6 scan. Returns out (B, D, L) in u's dtype, or (out, last_state (B, D, N)) in fp32/fp64."""
    shp = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    cd = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    out_dtype = u.dtype
    u = u.to(cd)
    delta = traced_delta(delta, delta_bias, delta_softplus, cd)
    A = A.to(cd)
    Bx = _expand_groups(B.to(cd), shp.dim)  # (B, D|1, N, L)
    Cx = _expand_groups(C.to(cd), shp.dim)
    h = u.new_zeros(shp.batch, shp.dim, shp.d_state)
    ys = []
    for t in range(shp.length):
        dt = delta[:, :, t, None]  # (B, D, 1)
        h = torch.exp(dt * A) * h + dt * Bx[..., t] * u[:, :, t, None]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(u.shape)
    if D is not None:
        y = y + u * D.to(cd)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cd))
    out = y.to(out_dtype)
    return (out, h) if return_last_state else out
