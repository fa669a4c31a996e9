"""Replay a model's training forward and backward as CUDA graphs (``train.cuda_graph``).

Small models on small images are bound by the host, not the GPU: a mamba_femto step on 32x32 Fashion-MNIST
launches about a thousand kernels (depthwise convolutions, the Triton scan, layer norms) that together run
for less time than Python and the CUDA driver need to launch them. ``torch.cuda.make_graphed_callables``
records the forward and the backward once and replays each as a single launch.

``train.cuda_graph: auto`` (the Fashion-MNIST preset) uses graphs wherever they can run and trains eagerly
elsewhere (CPU, torchrun, a task whose inputs change shape). What stays outside the graphs: data loading, mixup, the loss, the optimizer, EMA,
gradient clipping and the scheduler -- so every part of the recipe is unchanged. Requirements (``true``
checks them, :func:`check`): a CUDA device, one process (DDP's gradient hooks are not captured) and no
``torch.compile``. The graphs need fixed input shapes; a batch of another shape (none in training: the train
loader drops the last partial batch) runs the model eagerly. Evaluation (``model.eval()``) always runs eagerly.

Capture runs a few warm-up steps on random inputs. They touch no weights or gradients, and the RNG states and
the model's buffers (e.g. BatchNorm statistics) are put back afterwards, so a run with graphs resumes exactly
like one without. The optimizer must zero gradients with ``zero_grad(set_to_none=False)`` (see below).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ConfigError


def check(value, device: torch.device, distributed: bool, compile_: bool, grad_checkpointing: bool = False) -> bool:
    """Whether this run uses graphs: ``auto`` means on a CUDA device, in one process, without compile (and,
    as untested with graphs, without gradient checkpointing); ``true`` refuses any other set-up with a
    one-line error."""
    if value == "auto":
        return device.type == "cuda" and not distributed and not compile_ and not grad_checkpointing
    if not value:
        return False
    if device.type != "cuda":
        raise ConfigError("train.cuda_graph needs a CUDA device (it records CUDA kernels)")
    if distributed:
        raise ConfigError("train.cuda_graph runs in a single process only (DDP's gradient hooks are not captured)")
    if compile_:
        raise ConfigError("train.cuda_graph and train.compile are exclusive (use one)")
    return True


def graph_training_step(
    model: nn.Module, example: torch.Tensor, amp_dtype: torch.dtype | None = None, warmup: int = 3
) -> nn.Module:
    """Record ``model``'s training forward and backward for inputs shaped like ``example`` (same dtype,
    strides and device). Returns ``model`` itself; its ``forward`` replays the graphs in training mode for
    inputs of that shape and runs eagerly otherwise."""
    eager_forward = model.forward
    cpu_rng, cuda_rng = torch.get_rng_state(), torch.cuda.get_rng_state(example.device)
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    was_training = model.training
    model.train()
    sample = torch.randn_like(example)
    # autocast's weight-cast cache would hold tensors made during capture: make_graphed_callables refuses it
    amp = (
        torch.autocast("cuda", dtype=amp_dtype, cache_enabled=False)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    with amp:  # parameters without a gradient in some models (unused heads, frozen parts): allowed
        torch.cuda.make_graphed_callables(model, (sample,), num_warmup_iters=warmup, allow_unused_input=True)
    graphed_forward = model.forward
    # The backward graph returns its gradients in static buffers that the next replay overwrites. A
    # parameter whose .grad is None would adopt such a buffer as its .grad, and a second micro-batch
    # (gradient accumulation) would overwrite the first one's gradient. Gradients that exist are added
    # to in place: allocate them now, and zero them with zero_grad(set_to_none=False) afterwards.
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    for b, saved in buffers:
        b.copy_(saved)
    torch.set_rng_state(cpu_rng)
    torch.cuda.set_rng_state(cuda_rng, example.device)
    model.train(was_training)
    shape, stride, dtype = example.shape, example.stride(), example.dtype

    def forward(x, *args, **kwargs):
        if not args and not kwargs and x.shape == shape and x.stride() == stride and x.dtype == dtype:
            return graphed_forward(x)  # falls back to eager by itself in eval mode
        return eager_forward(x, *args, **kwargs)

    model.forward = forward
    return model
