"""Model families. Importing this package registers every model with `mambaout.registry`."""

from . import efficientvmamba, hybrid, localmamba, mamba_pairs, mambaout, plainmamba, ssm, vim, vit, vmamba  # noqa: F401
from .blocks import Downsample, GatedBlock, LinearHead, MlpHead, PatchEmbedStem, PatchMerging, Stem
from .hierarchical import PATCH_MACRO, HierarchicalNet
from .mixers import build_mixer, list_mixers, register_mixer

__all__ = [
    "PATCH_MACRO",
    "Downsample",
    "GatedBlock",
    "HierarchicalNet",
    "LinearHead",
    "MlpHead",
    "PatchEmbedStem",
    "PatchMerging",
    "Stem",
    "build_mixer",
    "list_mixers",
    "register_mixer",
]
