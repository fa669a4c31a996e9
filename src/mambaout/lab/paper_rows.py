"""ImageNet-1K @224 rows of the MambaOut paper's table (params M, MACs G, top-1 %).

Source: W. Yu, X. Wang, "MambaOut: Do We Really Need Mamba for Vision?", arXiv 2405.07992 / CVPR 2025,
ImageNet-1K table, as transcribed in this project's reference notes (mambaout.md, section 7). Rows of
other models are as printed in the MambaOut paper (not re-checked against their own papers).
``*`` = VMamba rebuilt in the MetaFormer style (VMambaV9 in arXiv, V3 in CVPR); VMamba-T* top-1 is
82.5 in arXiv and 82.6 in CVPR (82.5 kept here). Mamba-2D has no published MACs.
"""

from __future__ import annotations

SOURCE = "MambaOut paper (arXiv 2405.07992 / CVPR 2025), ImageNet-1K table; reference mambaout.md sec. 7"

# (model, family, params M, MACs G or None, top-1 %)
IMAGENET_ROWS = (
    ("MambaOut-Femto", "MambaOut", 7, 1.2, 78.9),
    ("MambaOut-Tiny", "MambaOut", 27, 4.5, 82.7),
    ("MambaOut-Small", "MambaOut", 48, 9.0, 84.1),
    ("MambaOut-Base", "MambaOut", 85, 15.8, 84.2),
    ("Vim-Ti", "Vim", 7, 1.5, 76.1),
    ("Vim-S", "Vim", 26, 5.1, 80.5),
    ("LocalVim-T", "LocalVim", 8, 1.5, 76.2),
    ("LocalVim-S", "LocalVim", 28, 4.8, 81.2),
    ("LocalVMamba-T", "LocalVMamba", 26, 5.7, 82.7),
    ("LocalVMamba-S", "LocalVMamba", 50, 11.4, 83.7),
    ("EfficientVMamba-T", "EfficientVMamba", 6, 0.8, 76.5),
    ("EfficientVMamba-S", "EfficientVMamba", 11, 1.3, 78.7),
    ("EfficientVMamba-B", "EfficientVMamba", 33, 4.0, 81.8),
    ("VMamba-T", "VMamba", 22, 5.6, 82.2),
    ("VMamba-S", "VMamba", 44, 11.2, 83.5),
    ("VMamba-B", "VMamba", 75, 18.0, 83.7),
    ("VMamba-T*", "VMamba*", 31, 4.9, 82.5),
    ("VMamba-S*", "VMamba*", 50, 8.7, 83.6),
    ("VMamba-B*", "VMamba*", 89, 15.4, 83.9),
    ("Mamba-2D-S", "Mamba-2D", 24, None, 81.7),
    ("Mamba-2D-B", "Mamba-2D", 92, None, 83.0),
    ("PlainMamba-L1", "PlainMamba", 7, 3.0, 77.9),
    ("PlainMamba-L2", "PlainMamba", 25, 8.1, 81.6),
    ("PlainMamba-L3", "PlainMamba", 50, 14.4, 82.3),
    # non-Mamba baselines of the same table (plotted in grey for context)
    ("DeiT-Ti", "other", 6, 1.3, 72.2),
    ("DeiT-S", "other", 22, 4.6, 79.8),
    ("DeiT-B", "other", 86, 17.5, 81.8),
    ("ConvNeXt-T", "other", 29, 4.5, 82.1),
    ("ConvNeXt-S", "other", 50, 8.7, 83.1),
    ("ConvNeXt-B", "other", 89, 15.4, 83.8),
    ("Swin-T", "other", 29, 4.5, 81.3),
    ("Swin-S", "other", 50, 8.7, 83.0),
    ("Swin-B", "other", 88, 15.4, 83.5),
    ("CAFormer-S18", "other", 26, 4.1, 83.6),
    ("CAFormer-S36", "other", 39, 8.0, 84.5),
    ("CAFormer-M36", "other", 56, 13.2, 85.2),
    ("TransNeXt-Tiny", "other", 28, 5.7, 84.0),
    ("TransNeXt-Small", "other", 50, 10.3, 84.7),
    ("TransNeXt-Base", "other", 90, 18.4, 84.8),
)

VISUAL_MAMBA_FAMILIES = (
    "Vim",
    "LocalVim",
    "LocalVMamba",
    "EfficientVMamba",
    "VMamba",
    "VMamba*",
    "Mamba-2D",
    "PlainMamba",
)


def rows():
    return [dict(model=m, family=f, params_m=p, macs_g=g, top1=t, source=SOURCE) for m, f, p, g, t in IMAGENET_ROWS]
