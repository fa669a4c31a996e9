"""MAC counting by the paper's convention (fvcore's), without tracing.

The MambaOut paper's "MACs" are fvcore ``FlopCountAnalysis`` totals, where one "flop" is one
multiply-add. This counter follows fvcore's per-op rules, applied at the aten level through a
dispatch mode (works on the meta device, so a 100M-parameter model is counted in milliseconds):

- matmul family (mm, addmm, bmm, baddbmm): M*N*K; convolution: batch * prod(weight shape) * prod(out spatial);
- layer/group/instance norm: 5 per element with affine, 4 without; batch norm: 1 per element in eval
  (2 with affine), the norm rule in training;
- bilinear upsampling 4 and nearest 1 per output element; adaptive average pooling 1 per input element;
- scaled-dot-product attention: Lq*Lk*(d_qk + d_v) per batch-head (what fvcore counts for the two matmuls);
- everything else (activations, elementwise, softmax, reductions) is free.

Custom kernels (the selective scan) declare their own count with :func:`counted_op` (defined in
:mod:`mambaout.ops.counting`, re-exported here); the aten ops they run inside are then not counted.
"""

from __future__ import annotations

from collections import defaultdict
from math import prod

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mambaout.ops.counting import active_counters, counting_suspended
from mambaout.ops.counting import counted_op as counted_op  # re-exported: callers import it from here too

aten = torch.ops.aten


def _shape(t) -> tuple:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else ()


def _mm(args, out):
    a, b = args[-2], args[-1]
    return prod(_shape(a)) * _shape(b)[-1]


def _bmm(args, out):
    a, b = args[-2], args[-1]
    return prod(_shape(a)) * _shape(b)[-1]


def _addmm(args, out):
    return _mm(args[1:3], out)


def _conv(args, out):
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    spatial = _shape(x)[2:] if transposed else _shape(out)[2:]
    return _shape(x)[0] * prod(_shape(w)) * prod(spatial)


def _norm(affine_index):
    def count(args, out):
        has_affine = len(args) > affine_index and isinstance(args[affine_index], torch.Tensor)
        return prod(_shape(args[0])) * (5 if has_affine else 4)

    return count


def _batch_norm(args, out):
    training = bool(args[5]) if len(args) > 5 else False
    if training:
        return _norm(1)(args, out)
    return prod(_shape(args[0])) * (2 if isinstance(args[1], torch.Tensor) else 1)


def _per_output(scale):
    return lambda args, out: scale * prod(_shape(out[0] if isinstance(out, (tuple, list)) else out))


def _per_input(scale):
    return lambda args, out: scale * prod(_shape(args[0]))


def _sdpa(args, out):
    q, k, v = args[:3]
    *batch, lq, dqk = _shape(q)
    lk, dv = _shape(k)[-2], _shape(v)[-1]
    return prod(batch) * lq * lk * (dqk + dv)


_RULES = {}


def _register(names, fn):
    for name in names:
        packet = getattr(aten, name, None)
        if packet is not None:
            _RULES[packet] = fn


_register(["mm"], _mm)
_register(["addmm"], _addmm)
_register(["bmm"], _bmm)
_register(["baddbmm"], lambda a, o: _bmm(a[1:3], o))
_register(["convolution", "_convolution"], _conv)
_register(["native_layer_norm"], _norm(2))
_register(["native_group_norm"], _norm(1))
_register(
    ["native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "cudnn_batch_norm"],
    _batch_norm,
)
_register(["upsample_bilinear2d"], _per_output(4))
_register(["upsample_nearest2d"], _per_output(1))
_register(["_adaptive_avg_pool2d"], _per_input(1))
_register(
    [
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_cudnn_attention",
    ],
    _sdpa,
)


class MacCounter(TorchDispatchMode):
    """Counts MACs of everything run inside ``with MacCounter() as c:``; ``c.total``, ``c.by_op``."""

    def __init__(self):
        super().__init__()
        self.by_op: dict[str, int] = defaultdict(int)

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def add(self, name: str, macs: int):
        self.by_op[name] += int(macs)

    def __enter__(self):
        active_counters().append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        active_counters().remove(self)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func._overloadpacket)
        if rule is not None and not counting_suspended():
            self.add(func._overloadpacket.__name__, rule(args, out))
        return out


def count_macs(
    model: torch.nn.Module, input_size=(224, 224), in_chans: int | None = None, device: str = "meta"
) -> MacCounter:
    """MACs of one forward pass of ``model`` on a (1, C, H, W) input.

    By default the model is copied to the meta device (shapes only, no arithmetic); pass
    ``device='cpu'`` for models whose forward needs real values.
    """
    in_chans = in_chans or getattr(model, "in_chans", 3)
    h, w = input_size
    if device == "meta":
        import copy

        model = copy.deepcopy(model).to("meta")
    x = torch.randn(1, in_chans, h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), MacCounter() as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter
