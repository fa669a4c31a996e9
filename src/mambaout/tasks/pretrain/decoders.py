"""Masked-image models: a hierarchical zoo encoder, a light decoder and the two methods' losses.

``simmim``  Xie et al. 2022: hidden patches are replaced by a learned mask token at the stem's output (the
            encoder sees every position); decoder: a 1x1 conv from the last stage to ``stride^2 * C``
            values per token, pixel-shuffled back to the image; L1 on hidden pixels only.
``fcmae``   Woo et al. 2023 (ConvNeXt V2), dense form: the encoder runs under :func:`.masking.sparse_encoder`
            and never reads a hidden position; decoder: a linear projection, the mask token at hidden
            positions, one gated block (MambaOut's, dwconv), a linear layer to ``stride^2 * C`` pixels; MSE on
            hidden patches against per-patch normalised pixels (``norm_pix``).

The model's state dict holds ``encoder.*`` (the zoo model's own keys), ``decoder.*`` and ``mask_token``:
:func:`mambaout.weights.load_pretrained` recognises it, loads the encoder and drops the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...models.blocks import GatedBlock, LayerNorm
from ...models.hierarchical import HierarchicalNet
from .masking import at, check_sparse_support, sparse_encoder

METHODS = ("simmim", "fcmae")


class FcmaeDecoder(nn.Module):
    """Linear(C, D) -> mask token at hidden tokens -> one gated block (dwconv) -> LN -> Linear(D, p^2 c)."""

    def __init__(self, in_dim: int, dim: int, out_dim: int, kernel_size: int = 7):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.block = GatedBlock(dim, mixer="dwconv", mixer_kwargs=dict(kernel_size=kernel_size))
        self.norm = LayerNorm(dim)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        x = torch.where(hidden, self.mask_token.to(x.dtype), x)
        return self.pred(self.norm(self.block(x)))


class MaskedImageModel(nn.Module):
    """``forward(images, mask)`` -> reconstructed images (B, C, H, W); ``mask`` (B, 1, gh, gw), True = hidden."""

    def __init__(self, encoder: HierarchicalNet, method: str, decoder_dim: int = 128, name: str = "the model"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown pre-training method {method!r}; known: {', '.join(METHODS)}")
        if method == "fcmae":
            check_sparse_support(encoder, name)
        elif not isinstance(encoder, HierarchicalNet):
            check_sparse_support(encoder, name)  # the same one-line refusal of non-hierarchical models
        self.encoder, self.method = encoder, method
        self.stride, c = encoder.size_divisor, encoder.in_chans
        out = self.stride**2 * c
        if method == "simmim":
            self.mask_token = nn.Parameter(torch.zeros(encoder.dims[0]))
            nn.init.trunc_normal_(self.mask_token, std=0.02)
            self.decoder = nn.Conv2d(encoder.dims[-1], out, 1)
        else:
            self.decoder = FcmaeDecoder(encoder.dims[-1], decoder_dim, out)

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last stage's map (B, h, w, C), channels-last."""
        enc = self.encoder
        enc.check_input(images)
        if self.method == "fcmae":
            with sparse_encoder(enc, mask):
                x = enc.stem(images)
                for stage in enc.stages:
                    x = stage(x)
            return x
        x = enc.stem(images)
        hidden = at(mask, x.shape[1], x.shape[2]).permute(0, 2, 3, 1)
        x = torch.where(hidden, self.mask_token.to(x.dtype), x)
        for stage in enc.stages:
            x = stage(x)
        return x

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.encode(images, mask)
        if self.method == "fcmae":
            hidden = at(mask, x.shape[1], x.shape[2]).permute(0, 2, 3, 1)
            x = self.decoder(x, hidden).permute(0, 3, 1, 2)
        else:
            x = self.decoder(x.permute(0, 3, 1, 2))
        return F.pixel_shuffle(x, self.stride)


def patch_normalised(images: torch.Tensor, patch: int, eps: float = 1e-6) -> torch.Tensor:
    """Each ``patch`` x ``patch`` patch (all channels) to zero mean, unit variance (MAE's norm_pix_loss)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    mean = x.mean((1, 3, 5), keepdim=True)
    var = x.var((1, 3, 5), keepdim=True, unbiased=False)
    return ((x - mean) / (var + eps).sqrt()).reshape(b, c, h, w)


def masked_loss(model: MaskedImageModel, images: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True):
    """(loss summed over hidden pixels, their count x channels): SimMIM's L1, FCMAE's MSE (per-patch normalised
    targets with ``norm_pix``). Visible pixels add nothing: the weight is 0 there."""
    pred = model(images, mask)
    dtype = torch.promote_types(pred.dtype, torch.float32)  # fp32 under autocast, fp64 stays fp64
    pred, target = pred.to(dtype), images.to(dtype)
    if model.method == "fcmae" and norm_pix:
        target = patch_normalised(target, model.stride)
    err = (pred - target).abs() if model.method == "simmim" else (pred - target) ** 2
    hidden = at(mask, images.shape[-2], images.shape[-1]).to(err.dtype)
    return (err * hidden).sum(), hidden.sum() * images.shape[1]
