"""What the explainers run on: a model (with its trained weights), normalised images, and a stage's output.

    model = load_model("mambaout_femto", "runs/x/last.pt")      # eval mode, kwargs from the checkpoint
    images = load_images(data_root="data/fashion", num_images=8, img_size=64, in_chans=1)
    feats = stage_output(model, images, stage=-1)              # (N, h, w, C), channels-last

Normalisation: grayscale input uses Fashion-MNIST's mean/std (the project's 1-channel data set), RGB input
ImageNet's (timm's defaults); the explanations are about where a model looks, which a different
normalisation shifts little.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.fashion_mnist import MEAN as FMNIST_MEAN
from ..data.fashion_mnist import STD as FMNIST_STD
from ..errors import CheckpointError, DatasetError, UsageError
from ..registry import create_model

log = logging.getLogger("mambaout")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# metadata keys of model.safetensors (tasks.classification writes them) that build the model
_META_INTS = ("num_classes", "in_chans", "stem_stride")


# --- the model ----------------------------------------------------------------------------------------------


def _training_checkpoint(path: str):
    """(state dict, build kwargs, info) of a last.pt/best.pt, or None when ``path`` is not one."""
    from ..engine.state import load_state

    state = load_state(path)
    if "config" not in state or not isinstance(state.get("model"), dict):
        return None
    cfg = state["config"] if isinstance(state["config"], dict) else {}
    model_cfg, data_cfg = cfg.get("model") or {}, cfg.get("data") or {}
    kwargs = {k: model_cfg[k] for k in ("in_chans", "stem_stride") if isinstance(model_cfg.get(k), int)}
    if isinstance(data_cfg.get("num_classes"), int):
        kwargs["num_classes"] = data_cfg["num_classes"]
    info = {"model": model_cfg.get("name"), "img_size": data_cfg.get("img_size")}
    return state["model"], kwargs, info


def _safetensors_metadata(path: str) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - read_state_dict reports a bad file in our words
        return {}


def _trained_size(meta: dict, path: str) -> int | None:
    """The input side a model.safetensors was trained at: its metadata, else its run's config.yaml."""
    if str(meta.get("img_size", "")).isdigit():
        return int(meta["img_size"])
    import yaml

    config = os.path.join(os.path.dirname(path), "config.yaml")
    try:
        with open(config) as f:
            size = ((yaml.safe_load(f) or {}).get("data") or {}).get("img_size")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return size if isinstance(size, int) else None


def _read_checkpoint(path: str):
    """(state dict, build kwargs, info) of any weights file the project reads."""
    from ..weights import read_state_dict

    if os.path.isdir(path):  # a run folder: its final weights, else its last checkpoint
        for name in ("model.safetensors", "last.pt"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise CheckpointError(f"checkpoint {path!r}: a folder without model.safetensors or last.pt")
    if path.endswith(".safetensors"):
        meta = _safetensors_metadata(path)
        state = read_state_dict(path)
        kwargs = {k: int(meta[k]) for k in _META_INTS if str(meta.get(k, "")).isdigit()}
        return state, kwargs, {"model": meta.get("model"), "img_size": _trained_size(meta, path)}, path
    found = _training_checkpoint(path)
    if found is not None:
        return (*found, path)
    return read_state_dict(path), {}, {}, path


def load_model(name: str | None, checkpoint: str | None = None, **model_kwargs) -> nn.Module:
    """Registered model ``name`` in eval mode; with ``checkpoint`` (a training checkpoint, a run folder or its
    model.safetensors, any weights file) its weights, built with the num_classes/in_chans/stem_stride the
    checkpoint records. A keyword given here that contradicts the checkpoint is an error; one it does not
    record is used as given. ``name=None``: the model the checkpoint records. ``model.checkpoint_info`` keeps
    what was read (model, img_size, source, and the build kwargs the checkpoint recorded)."""
    info: dict = {}
    if checkpoint is None:
        if name is None:
            raise UsageError("load_model needs a model name or a checkpoint that records one")
        model = create_model(name, **model_kwargs)
    else:
        state, saved, info, source = _read_checkpoint(os.fspath(checkpoint))
        if name is None:
            name = info.get("model")
            if not name:
                raise CheckpointError(f"checkpoint {source!r} does not say which model it holds: name one")
        if info.get("model") and info["model"] != name:
            raise CheckpointError(f"checkpoint {source!r} holds a {info['model']} model, not {name}")
        for key, value in saved.items():
            if key in model_kwargs and model_kwargs[key] != value:
                raise UsageError(f"{key}={model_kwargs[key]} contradicts the checkpoint {source!r} ({key}={value})")
        if "num_classes" not in saved and "head.fc.weight" in state:  # a plain state dict: its classifier's size
            saved["num_classes"] = int(state["head.fc.weight"].shape[0])
        model = create_model(name, **{**model_kwargs, **saved})
        from ..weights import load_state_dict_into

        load_state_dict_into(model, state, source=f"checkpoint {source!r}")
        info = {**info, "source": source, "kwargs": saved}
    model.checkpoint_info = info
    return model.eval()


# --- the images ---------------------------------------------------------------------------------------------


def _normalise(batch: torch.Tensor, dataset: str) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> normalised."""
    c = batch.shape[1]
    if c == 1 or dataset == "fashion_mnist":
        mean, std = (FMNIST_MEAN,) * c, (FMNIST_STD,) * c
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return (batch - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)


def _to_tensor(img: Image.Image, img_size: int, in_chans: int) -> torch.Tensor:
    """Shorter side resized to ``img_size`` (bicubic), centre crop, (C, S, S) in [0, 1]."""
    img = img.convert("L" if in_chans == 1 else "RGB")
    w, h = img.size
    scale = img_size / min(w, h)
    img = img.resize((max(img_size, round(w * scale)), max(img_size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - img_size) // 2, (h - img_size) // 2
    img = img.crop((left, top, left + img_size, top + img_size))
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return arr.unsqueeze(0) if arr.ndim == 2 else arr.permute(2, 0, 1)


def prepare_image(img: Image.Image, img_size: int, in_chans: int) -> torch.Tensor:
    """One decoded image -> the normalised (1, in_chans, img_size, img_size) batch the explainers take."""
    return _normalise(_to_tensor(img, img_size, in_chans).unsqueeze(0), "image")


def _spread(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over the data set (an ImageFolder is sorted by class)."""
    return sorted({int(i) for i in np.linspace(0, n_items - 1, min(n, n_items)).round()})


def load_images(
    image: str | None = None,
    data_root: str | None = None,
    num_images: int = 8,
    img_size: int = 224,
    in_chans: int = 3,
    dataset: str = "fashion_mnist",
) -> torch.Tensor:
    """Normalised float (N, in_chans, img_size, img_size): one ``image`` file, or ``num_images`` images spread
    over a data set: Fashion-MNIST's test split (``dataset='fashion_mnist'``; its default folder when
    ``data_root`` is None) or an ImageFolder (``dataset='imagefolder'``: ``data_root``/val, /train or the root
    itself holding class folders). An unreadable image is a one-line DatasetError."""
    if num_images < 1 or img_size < 1 or in_chans not in (1, 3):
        raise UsageError(
            f"num_images and img_size must be positive and in_chans 1 or 3, got {num_images}, {img_size}, {in_chans}"
        )
    if image is not None:
        from ..data import load_image

        if not os.path.isfile(image):
            raise DatasetError("image file not found", image)
        try:
            pil = load_image(image, "L" if in_chans == 1 else "RGB")
        except (OSError, ValueError, SyntaxError) as e:  # PIL's decoders raise all three
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DatasetError(f"unreadable image ({why})", image) from None
        return prepare_image(pil, img_size, in_chans)
    if dataset == "fashion_mnist":
        from ..data import FashionMNIST

        ds = FashionMNIST(data_root, "test")
    elif dataset == "imagefolder":
        from ..data import RobustImageFolder

        if data_root is None:
            raise UsageError("an ImageFolder needs a data root")
        split = next((s for s in ("val", "train") if os.path.isdir(os.path.join(data_root, s))), None)
        ds = RobustImageFolder(data_root, split, mode="L" if in_chans == 1 else "RGB")
    else:
        raise UsageError(f"dataset must be 'fashion_mnist' or 'imagefolder', got {dataset!r}")
    if len(ds) == 0:
        raise DatasetError("no images", data_root)
    if num_images > len(ds):
        log.info("%d images asked for, the data set holds %d: using them all", num_images, len(ds))
    batch = [_to_tensor(ds[i][0], img_size, in_chans) for i in _spread(len(ds), num_images)]
    return _normalise(torch.stack(batch), dataset)


# --- stage outputs ------------------------------------------------------------------------------------------


def num_stages(model: nn.Module) -> int:
    """Stages an explainer can pick: a hierarchical model's stages, an isotropic model's 4 feature blocks
    (after blocks depth/4, depth/2, 3 depth/4 and the last), or any module with ``stages`` and
    ``forward_stages``."""
    if hasattr(model, "forward_blocks") and hasattr(model, "feature_blocks"):
        return len(model.feature_blocks)
    if hasattr(model, "forward_stages") and hasattr(model, "stages"):
        return len(model.stages)
    raise UsageError(f"{getattr(model, 'model_name', type(model).__name__)} has no stages to explain")


def pick(index: int, n: int, what: str = "stage", owner: str = "this model") -> int:
    """``index`` of ``n`` (negative counts from the end) -> 0..n-1; out of range is a one-line UsageError (the
    same words for every explainer's stages and blocks)."""
    if not isinstance(index, (int, np.integer)) or not -n <= index < n:
        raise UsageError(f"{what} {index} out of range: {owner} has {n} {what}s (0..{n - 1}, or -{n}..-1)")
    return int(index) % n


def resolve_stage(model: nn.Module, stage: int) -> int:
    return pick(stage, num_stages(model))


def stage_output(model: nn.Module, images: torch.Tensor, stage: int = -1) -> torch.Tensor:
    """The output of ``stage`` for ``images``: a channels-last map (N, h, w, C). An isotropic model's token
    grid is already a map; its last feature block is taken after the final norm, as in its features."""
    index = resolve_stage(model, stage)
    if hasattr(model, "forward_blocks") and hasattr(model, "feature_blocks"):
        _, outs = model.forward_blocks(images, tuple(model.feature_blocks))
        return outs[index]
    return model.forward_stages(images)[index]
