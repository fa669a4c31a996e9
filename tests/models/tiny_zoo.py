"""Tiny configurations of every model family (widths 8-32, one block a stage or depth 4), for compile/export tests.

Each entry builds the family's network with its own mixer, scan order and macro-architecture at a size that
traces in seconds; ``SCAN_FAMILY`` names the scan order each SSM entry exercises.
"""

from mambaout.models.efficientvmamba import efficientvmamba
from mambaout.models.localmamba import localvim, localvmamba
from mambaout.models.mamba_pairs import mamba_net
from mambaout.models.mambaout import gated_net
from mambaout.models.plainmamba import plainmamba
from mambaout.models.vim import vim
from mambaout.models.vit import vit
from mambaout.models.vmamba import vmamba_v0, vmamba_v2
from mambaout.registry import create_model

D, W, N = (1, 1, 1, 1), (8, 16, 24, 32), 4  # depths, widths, d_state
SSM = dict(type="conv_ssm", kernel_size=7, scan="cross", d_state=N)
ATTN = dict(type="attention", head_dim=8)

TINY = {
    "mambaout_test": lambda: create_model("mambaout_test", num_classes=5),
    "mamba": lambda: mamba_net(D, W, d_state=N, num_classes=5),
    "vmamba": lambda: vmamba_v0(D, W, d_state=N, num_classes=5),
    "vmamba_v2": lambda: vmamba_v2(D, W, num_classes=5),
    "vim": lambda: vim(16, depth=4, d_state=N, num_classes=5),
    "localvim": lambda: localvim(16, depth=4, d_state=N, num_classes=5),
    "localvmamba": lambda: localvmamba(D, W, d_state=N, num_classes=5),
    "plainmamba": lambda: plainmamba(16, 4, 1, dwconv_after=(0,), d_state=N, num_classes=5),
    "efficientvmamba": lambda: efficientvmamba(D, W, d_state=N, num_classes=5),
    "hybrid_ssm": lambda: gated_net(D, W, mixer=["dwconv", "dwconv", SSM, SSM], num_classes=5),
    "hybrid_attn": lambda: gated_net(D, W, mixer=["dwconv", "dwconv", ATTN, ATTN], num_classes=5),
    "vit": lambda: vit(4, 16, 2, num_classes=5),
}

# one SSM model per scan order: raster, cross (4 directions), bidirectional, local windows, zig-zag with
# direction-aware biases, atrous
SCAN_FAMILY = {
    "raster": "mamba",
    "cross": "vmamba",
    "bidirectional": "vim",
    "local": "localvmamba",
    "zigzag": "plainmamba",
    "atrous": "efficientvmamba",
}


def build(name: str, seed: int = 0):
    """The tiny model in eval mode, with PyTorch's default init of linear and conv layers instead of the
    trunc-normal(0.02) one, so that every block (and every scan) changes the output by far more than the tolerances
    the tests check."""
    import torch

    torch.manual_seed(seed)
    model = TINY[name]().eval()
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            m.reset_parameters()
    return model
