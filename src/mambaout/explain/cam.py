"""Class activation maps of a stage's feature map: Grad-CAM and Eigen-CAM.

Both methods are written here from their papers (the ``grad-cam`` package is not a dependency: its
opencv-python needs system libGL on a fresh machine):

- Grad-CAM (Selvaraju et al., 2017): channel weights are the spatial mean of d(class score)/d(activation);
  the map is ReLU(sum_c w_c A_c).
- Eigen-CAM (Muhammad & Yeasin, 2020): no gradients; the map is the projection of each position's
  activation vector on the first principal component of the (HW, C) activation matrix. We centre the
  matrix over positions before the SVD, as common practice (pytorch-grad-cam's ``get_2d_projection``) does;
  the component's sign is arbitrary, so it is chosen to make the map correlate positively with the
  activation's strength (its norm over channels) per position, then ReLU. (Not the mean over channels, as
  some implementations use: after a LayerNorm, as in every stage here, that mean is near zero everywhere and
  it picked the background in our tests.)

A caveat measured in tests/explain/test_cam.py: on a plain ReLU CNN both methods find a bright square; on a
tiny trained MambaOut only Eigen-CAM does. Grad-CAM's maps there were square or background depending on
the seed: MambaOut's head LayerNorms the pooled features, so the score does not change when they are
scaled, hence at the last stage the contributions sum_p w . A_p add up to zero and their sign at any one
place is not evidence (LayerNorm after every stage blurs the earlier stages' maps the same way).

Maps are computed at the stage's resolution and resampled bilinearly to the input size with each feature
cell placed at the centre of its receptive field: a 3x3 stride-2 conv with padding 1 (MambaOut's stem and
downsampling) centres output i on input 2i, not on 2i + 0.5 as a plain resize assumes, which at stride 16
would shift the map by 7.5 pixels. Then each map is divided by its maximum, so it lies in [0, 1] and a map
without evidence stays all zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, UsageError
from ..models.blocks import PatchMerging
from ..models.hierarchical import HierarchicalNet
from ..models.isotropic import IsotropicNet
from .inputs import pick

METHODS = ("gradcam", "eigencam")


@dataclass
class CAMResult:
    maps: np.ndarray  # (N, H, W) float32 in [0, 1], at input resolution
    classes: np.ndarray  # (N,) the class explained per image
    method: str
    stage: int  # the stage index, counted from 0

    def save_png(self, path: str, images) -> None:
        """One row per image: the input, then the map over it (jet, alpha 0.5)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pics = _displayable(images)
        n = len(self.maps)
        if len(pics) != n:
            raise InputError(f"save_png got {len(pics)} images for {n} maps")
        fig, axes = plt.subplots(n, 2, figsize=(5, 2.5 * n), squeeze=False)
        for i in range(n):
            cmap = "gray" if pics[i].ndim == 2 else None
            axes[i, 0].imshow(pics[i], cmap=cmap, vmin=0, vmax=1)
            axes[i, 0].set_title("input", fontsize=8)
            axes[i, 1].imshow(pics[i], cmap=cmap, vmin=0, vmax=1)
            axes[i, 1].imshow(self.maps[i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[i, 1].set_title(f"{self.method}, stage {self.stage}, class {int(self.classes[i])}", fontsize=8)
            for ax in axes[i]:
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def _displayable(images) -> list[np.ndarray]:
    """(N, C, H, W) normalised tensors -> (H, W) or (H, W, 3) in [0, 1]; min-max per image undoes the
    normalisation well enough to see the picture."""
    x = images.detach().float().cpu().numpy() if torch.is_tensor(images) else np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[None]
    out = []
    for im in x:
        lo, hi = im.min(), im.max()
        im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
        out.append(im[0] if im.shape[0] == 1 else np.moveaxis(im[:3], 0, -1))
    return out


def stage_modules(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """(module whose output is the stage's feature map, whether that output is channels-last) per stage.

    Hierarchical nets: their stages. Isotropic nets (ViT, Vim, PlainMamba, ...): the four blocks that
    ``features_only`` reads, the last one after the final norm (what the head pools). Other models: the
    modules named by timm's ``feature_info``.
    """
    if isinstance(model, HierarchicalNet):
        return [(s, True) for s in model.stages]
    if isinstance(model, IsotropicNet):
        mods = []
        for b in model.feature_blocks:
            extra = model.extra[str(b)] if str(b) in model.extra else None  # runs right after block b
            mods.append((model.norm if b == model.depth - 1 else extra or model.blocks[b], True))
        return mods
    info = getattr(model, "feature_info", None)
    if isinstance(info, (list, tuple)) and info and all(isinstance(i, dict) and "module" in i for i in info):
        return [(model.get_submodule(i["module"]), None) for i in info]
    raise UsageError(f"{type(model).__name__} has no stages to explain (no 'stages', blocks or feature_info)")


def _downsampling_path(model: nn.Module, index: int) -> list[nn.Module]:
    """The modules between the input and stage ``index`` that change resolution (for cell centres)."""
    if isinstance(model, HierarchicalNet):
        return [model.stem] + [model.stages[i].downsample for i in range(index + 1)]
    if isinstance(model, IsotropicNet):
        return [model.patch_embed]
    return []


def cell_centres(path: list[nn.Module]) -> tuple[float, float]:
    """(stride S, offset O): feature cell i is centred on input pixel S * i + O along each axis.

    A conv (kernel k, stride s, padding p) centres output i on its input's s * i - p + (k - 1) / 2;
    PatchMerging's 2x2 concat on 2 * i + 0.5. Stride-1 layers with symmetric padding move nothing.
    """
    stride, offset = 1.0, 0.0
    for top in path:
        for m in top.modules():
            if isinstance(m, nn.Conv2d):
                k, s, d = m.kernel_size[0], m.stride[0], m.dilation[0]
                if isinstance(m.padding, str):  # 'same' keeps centres, 'valid' pads nothing
                    local = 0.0 if m.padding == "same" else d * (k - 1) / 2
                else:
                    local = -m.padding[0] + d * (k - 1) / 2
            elif isinstance(m, PatchMerging):
                s, local = 2, 0.5
            else:
                continue
            stride, offset = stride * s, offset + stride * local
    return stride, offset


def _resample(maps: torch.Tensor, size: tuple[int, int], stride: float, offset: float) -> torch.Tensor:
    """(N, h, w) -> (N, H, W): bilinear, input pixel x read at feature coordinate (x - offset) / stride."""
    h, w = maps.shape[-2:]
    if stride * h != size[0] or stride * w != size[1]:  # unknown layers: a plain resize
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]

    def axis(n_out, n_in):
        u = (torch.arange(n_out, dtype=maps.dtype, device=maps.device) - offset) / stride
        return 2 * u / (n_in - 1) - 1 if n_in > 1 else torch.zeros_like(u)

    gy, gx = torch.meshgrid(axis(size[0], h), axis(size[1], w), indexing="ij")
    grid = torch.stack([gx, gy], -1).expand(len(maps), -1, -1, -1)
    return F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _to_nhwc(a: torch.Tensor, channels_last: bool | None, image_hw: tuple[int, int]) -> torch.Tensor:
    """A stage output as (N, h, w, C): token sequences are laid back on their grid (leading class/register
    tokens dropped); a 4-D map of unknown layout is taken as channels-first, as timm's convnets return it."""
    if a.ndim == 3:  # (N, L, C) tokens
        n, length, c = a.shape
        for extra in range(0, 9):
            t = length - extra
            # grid with the input's aspect ratio: h * w = t and h / w = H / W
            h = round((t * image_hw[0] / image_hw[1]) ** 0.5)
            if h > 0 and t % h == 0 and h * image_hw[1] == (t // h) * image_hw[0]:
                return a[:, extra:].reshape(n, h, t // h, c)
        raise UsageError(f"cannot lay {length} tokens on a grid for a {image_hw[0]}x{image_hw[1]} input")
    if a.ndim != 4:
        raise UsageError(f"a stage output of shape {tuple(a.shape)} is not a feature map")
    return a if channels_last else a.permute(0, 2, 3, 1)


def _gradcam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    weights = grads.mean(dim=(1, 2), keepdim=True)  # (N, 1, 1, C)
    return F.relu((acts * weights).sum(-1))


def _eigencam(acts: torch.Tensor) -> torch.Tensor:
    n, h, w, c = acts.shape
    out = []
    for a in acts.reshape(n, h * w, c).double():
        centred = a - a.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        proj = centred @ vh[0]
        strength = a.norm(dim=1)
        if torch.dot(proj, strength - strength.mean()) < 0:
            proj = -proj
        out.append(F.relu(proj).reshape(h, w))
    return torch.stack(out).float()


def cam(
    model: nn.Module, images: torch.Tensor, stage: int = -1, method: str = "gradcam", target: int | None = None
) -> CAMResult:
    """Class activation maps of ``images`` (N, C, H, W) at ``stage``; ``target``: the class explained
    (Grad-CAM; default each image's predicted class)."""
    if method not in METHODS:
        raise UsageError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")
    if images.ndim != 4:
        raise InputError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    stages = stage_modules(model)
    index = pick(stage, len(stages))
    module, channels_last = stages[index]

    captured = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()  # dropout, drop-path and batch statistics would change the explained prediction
    try:
        with torch.enable_grad():
            # an input that requires grad keeps the stage output in the graph even with frozen weights
            logits = model(images.detach().requires_grad_(True))
            if not torch.is_tensor(logits) or logits.ndim != 2:
                raise UsageError(f"{type(model).__name__} does not return class scores (N, classes)")
            classes = logits.argmax(1) if target is None else torch.full_like(logits[:, 0], target, dtype=torch.long)
            if target is not None and not 0 <= target < logits.shape[1]:
                raise UsageError(
                    f"target class {target} does not exist: the model has classes 0..{logits.shape[1] - 1}"
                )
            out = captured[-1]
            acts = _to_nhwc(out, channels_last, tuple(images.shape[-2:]))
            if method == "gradcam":
                if not out.requires_grad:
                    raise UsageError("Grad-CAM needs gradients: the stage output does not require grad")
                score = logits.gather(1, classes[:, None]).sum()  # images do not interact in eval mode
                (grad,) = torch.autograd.grad(score, out)
                maps = _gradcam(acts.detach(), _to_nhwc(grad, channels_last, tuple(images.shape[-2:])))
            else:
                maps = _eigencam(acts.detach())
    finally:
        handle.remove()
        model.train(was_training)

    maps = _resample(maps, tuple(images.shape[-2:]), *cell_centres(_downsampling_path(model, index)))
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    maps = (maps / peak).clamp(0, 1)
    return CAMResult(maps.cpu().numpy().astype(np.float32), classes.cpu().numpy(), method, index)
