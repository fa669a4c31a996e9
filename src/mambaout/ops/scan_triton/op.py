"""The Triton scan as PyTorch operators: ``torch.ops.mambaout.selective_scan`` and its backward.

``torch.compile`` and ``torch.export`` cannot look inside a Triton launch wrapped in an autograd Function without
tracing its Python (configs, kernel dispatch); as ``torch.library`` custom ops the forward and the backward are each
one opaque node of the graph, with a fake implementation (output shapes and dtypes, computed from the same tile
configs as the kernels) and autograd registered with :func:`torch.library.register_autograd`.  The kernels are
:func:`.launch.triton_forward` / :func:`.launch.triton_backward`, the same launches as the autograd Function that
explicit tile configs use.

Conventions of the ops (custom ops return fresh tensors, never None, never an input or another output):
B and C are grouped, (b, G, N, L).  ``last_state`` is (b, D, N) fp32, or an empty (0,) tensor unless
``return_last_state``; ``states`` are what the backward reads, (b, tiles, D, N) fp32, or empty unless
``save_states`` (the wrapper sets it when autograd will need them).  ``last_state`` has no gradient, as with the
autograd Function; the backward returns empty tensors for the absent D, z and delta_bias.
"""

import torch
from torch import Tensor

from .config import cdiv
from .launch import backward_config, triton_backward, triton_forward

_EMPTY = (0,)


def _fresh(t: Tensor, keep: bool) -> Tensor:
    """A kernel output the op may return: ``t`` when kept, else an empty fp32 tensor (``t`` aliases ``out``)."""
    return t if keep else t.new_empty(_EMPTY, dtype=torch.float32)


@torch.library.custom_op("mambaout::selective_scan", mutates_args=())
def selective_scan_fwd(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    return_last_state: bool,
    save_states: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    out, last, states, _ = triton_forward(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, save_states
    )
    return out, _fresh(last, return_last_state), _fresh(states, save_states)


@selective_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, save_states):
    bsz, dim, L = u.shape
    N, G = A.shape[1], B.shape[1]
    out = u.new_empty(u.shape)
    last = u.new_empty((bsz, dim, N) if return_last_state else _EMPTY, dtype=torch.float32)
    if save_states:
        tiles = cdiv(L, backward_config(N, L, u.element_size(), dim, G).block_t)
        states = u.new_empty((bsz, tiles, dim, N), dtype=torch.float32)
    else:
        states = u.new_empty(_EMPTY, dtype=torch.float32)
    return out, last, states


@torch.library.custom_op("mambaout::selective_scan_backward", mutates_args=())
def selective_scan_bwd(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    states: Tensor,
    dout: Tensor,
    delta_softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    bsz, dim, L = u.shape
    cfg = backward_config(A.shape[1], L, u.element_size(), dim, B.shape[1])
    grads = triton_backward(u, delta, A, B, C, D, z, delta_bias, states, dout, delta_softplus, cfg)
    # dA, dD, dbias (and dB, dC) are views of one accumulation buffer: an op's outputs may not alias
    return tuple(u.new_empty(_EMPTY) if g is None else g.clone() if g._base is not None else g for g in grads)


@selective_scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, states, dout, delta_softplus):
    def like(t):
        return t.new_empty(t.shape) if t is not None else u.new_empty(_EMPTY)

    return (
        like(u),
        like(delta),
        like(A),
        like(B),
        B.new_empty(C.shape, dtype=C.dtype),
        like(D),
        like(z),
        like(delta_bias),
    )


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, softplus, _, save_states = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[2])
    ctx.softplus, ctx.saved = softplus, save_states
    ctx.present = (D is not None, z is not None, delta_bias is not None)
    ctx.mark_non_differentiable(output[1], output[2])


def _backward(ctx, dout, dlast, dstates):
    if not ctx.saved:
        raise RuntimeError("mambaout::selective_scan ran with save_states=False, so it has no backward")
    grads = torch.ops.mambaout.selective_scan_backward(*ctx.saved_tensors, dout, ctx.softplus)
    du, ddelta, dA, dB, dC, *rest = grads
    rest = [g if present else None for g, present in zip(rest, ctx.present)]
    return du, ddelta, dA, dB, dC, *rest, None, None, None


selective_scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def run_op(u, delta, A, Bm, Cm, D, z, delta_bias, delta_softplus: bool, return_last_state: bool):
    """The scan through the operator (default tile configs; grouped B/C, L > 0, inputs already checked)."""
    tensors = (u, delta, A, Bm, Cm, D, z, delta_bias)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    out, last, _ = torch.ops.mambaout.selective_scan(*tensors, bool(delta_softplus), bool(return_last_state), save)
    return (out, last) if return_last_state else out
