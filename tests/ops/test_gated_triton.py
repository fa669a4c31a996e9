"""The fused gate of the Gated CNN block (ops.gated_triton) against the reference ops, in the Triton interpreter.

One subprocess with TRITON_INTERPRET=1 (see conftest.run_triton_interpreted) runs: the op in fp32 (outputs
NaN-poisoned, odd H and W, channel counts off the block size, a channel block straddling the identity / conv
boundary, K 3 / 5 / 7, GELU / SiLU / ReLU, several tiles, channel blocks that tile the channels exactly) and its gradients for h, weight and bias; bf16 (its error
against the fp32 result no worse than the reference ops' own bf16 error); whole GatedBlocks (causal conv, layer
scale, conv_ratio < 1) fused vs reference, forward and every gradient; torch.library.opcheck of the custom op.
"""

import pytest
import torch

from mambaout.ops import gated_triton

SCRIPT = r"""
import torch
import torch.nn.functional as F
from mambaout.models.blocks import GatedBlock
from mambaout.ops import gated_triton
from mambaout.ops.gated_triton import GateConfig, gated_dwconv

gated_triton._POISON = True
torch.manual_seed(0)
ACT = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


def ref(h, w, b, n_id, act):
    hd = h.shape[-1] // 2
    g, i, c = torch.split(h, (hd, n_id, hd - n_id), -1)
    conv = F.conv2d(c.permute(0, 3, 1, 2), w, b, padding=w.shape[-1] // 2, groups=w.shape[0])
    return ACT[act](g) * torch.cat((i, conv.permute(0, 2, 3, 1)), -1)


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def run(fn, h, w, b, dy, dtype, **kw):
    ins = [t.to(dtype).requires_grad_() for t in (h, w, b)]
    y = fn(*ins, **kw)
    return [y] + list(torch.autograd.grad(y, ins, dy.to(dtype)))


worst = 0.0
CASES = [  # B, H, W, hidden, n_id, K, act, tile (None: default_config)
    (1, 5, 7, 26, 10, 7, "gelu", GateConfig(4, 8, 16, 1)),  # channel block 0 straddles identity | conv
    (2, 9, 6, 16, 0, 3, "gelu", GateConfig(8, 8, 16, 4)),  # all channels mixed; blocks tile them (EVEN_C)
    (1, 3, 5, 20, 7, 5, "relu", GateConfig(4, 4, 8, 2)),  # channel block 0 straddles too
]
for B, H, W, hd, n_id, k, act, cfg in CASES:
    h = torch.randn(B, H, W, 2 * hd)
    w, b = torch.randn(hd - n_id, 1, k, k) * 0.2, torch.randn(hd - n_id)
    dy = torch.randn(B, H, W, hd)
    r = run(ref, h, w, b, dy, torch.float32, n_id=n_id, act=act)
    f = run(gated_dwconv, h, w, b, dy, torch.float32, n_id=n_id, act=act, config=cfg)
    errs = [rel(x, y) for x, y in zip(f, r)]
    print("fp32", (B, H, W, hd, n_id, k, act, cfg), errs)
    assert max(errs) < 1e-5, errs
    worst = max(worst, *errs)
    if n_id == 0:  # bf16: no worse than the reference ops in bf16 (both against fp32)
        fb = run(gated_dwconv, h, w, b, dy, torch.bfloat16, n_id=n_id, act=act, config=cfg)
        rb = run(ref, h, w, b, dy, torch.bfloat16, n_id=n_id, act=act)
        eb, er = [rel(x, y) for x, y in zip(fb, r)], [rel(x, y) for x, y in zip(rb, r)]
        print("bf16", eb, "reference ops in bf16", er)
        assert all(x < 2 * y + 1e-3 for x, y in zip(eb, er)), (eb, er)
        assert fb[0].dtype == torch.bfloat16 and fb[2].dtype == torch.bfloat16

for kw in (dict(dim=6, conv_ratio=0.5, act_layer="silu", ls_init_value=0.5, mixer_kwargs=dict(causal=True)), dict(dim=8)):
    blk = GatedBlock(**kw)
    x = torch.randn(2 if kw.get("ls_init_value") else 1, 5, 3, kw["dim"], requires_grad=True)
    outs = []
    for fused in (False, True):
        blk.fused = fused
        blk.zero_grad()
        x.grad = None
        y = blk(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append([y.detach(), x.grad.clone()] + [p.grad.clone() for p in blk.parameters()])
    errs = [rel(a, b) for a, b in zip(outs[1], outs[0])]
    print("block", kw, errs)
    assert max(errs) < 1e-5, errs

h = torch.randn(1, 3, 4, 10, requires_grad=True)
w, b = torch.randn(3, 1, 3, 3, requires_grad=True), torch.randn(3, requires_grad=True)
res = torch.library.opcheck(torch.ops.mambaout.gated_dwconv.default, (h, w, b, 2, "gelu", []))
assert all(v == "SUCCESS" for v in res.values()), res
print("WORST", worst)
"""


def test_gated_dwconv_interpreted_matches_reference(run_triton_interpreted):
    out = run_triton_interpreted(SCRIPT)
    heads = [line.split(" ", 1)[0] for line in out.splitlines()]
    assert heads.count("fp32") == 3 and heads.count("bf16") == 1 and heads.count("block") == 2


def test_bad_shapes_are_rejected():
    pytest.importorskip("triton")
    h, w = torch.randn(1, 4, 4, 8), torch.randn(2, 1, 7, 7)
    with pytest.raises(ValueError, match="conv channels"):
        gated_triton.gated_dwconv(h, w, None, 1)
    with pytest.raises(ValueError, match="K odd"):
        gated_triton.gated_dwconv(h, torch.randn(3, 1, 4, 4), None, 1)
    with pytest.raises(ValueError, match="act must be"):
        gated_triton.gated_dwconv(h, w, None, 2, act="tanh")


def test_default_config_fits_small_maps():
    cfg = gated_triton.default_config(7, 7)
    assert (cfg.block_h, cfg.block_w) == (8, 8) and cfg.block_c == 32 and cfg.num_warps == 8
    cfg = gated_triton.default_config(56, 56)
    assert cfg.block_h * cfg.block_w == 128 and cfg.num_warps == 16  # 8 elements per thread
    assert gated_triton.default_config(1, 3) == (1, 4, 32, 1)


def test_use_fused_policy(monkeypatch):
    """CPU default is the reference block; MAMBAOUT_FUSED=0 turns it off; fused=True where it cannot run is an error."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("MAMBAOUT_FUSED", raising=False)
    t = torch.zeros(1)
    assert not gated_triton.use_fused(t)
    monkeypatch.setenv("MAMBAOUT_FUSED", "1")
    assert not gated_triton.use_fused(t)  # no interpreter: the kernels cannot run on CPU
    assert not gated_triton.use_fused(t, False)
    with pytest.raises(RuntimeError, match="MAMBAOUT_FUSED=0"):
        gated_triton.use_fused(t, True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert gated_triton.use_fused(t) == gated_triton.HAVE_TRITON
    monkeypatch.setenv("MAMBAOUT_FUSED", "0")
    assert not gated_triton.use_fused(t)


@pytest.mark.gpu
def test_cuda_kernels_match_reference():
    """The compiled kernels on a GPU: a GatedBlock fused vs reference at mambaout_tiny's stage-3 width, fp32."""
    from mambaout.models.blocks import GatedBlock

    blk = GatedBlock(384).cuda()
    x = torch.randn(2, 14, 13, 384, device="cuda", requires_grad=True)
    outs = []
    for fused in (False, True):
        blk.fused = fused
        blk.zero_grad()
        x.grad = None
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # the reference conv in true fp32
            y = blk(x)
            y.square().sum().backward()
        outs.append([y.detach(), x.grad.clone()] + [p.grad.clone() for p in blk.parameters()])
    for a, b in zip(outs[1], outs[0]):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4
