"""Model weights: reading checkpoints safely, converting their layout and loading them into models.

Formats detected from the keys: this project's layout (= timm's for MambaOut), the official MambaOut
release (``downsample_layers.*``, ``stages.S.B.*``), wrapped in ``{'model': ...}``/``{'state_dict': ...}``
or not; files are ``.safetensors`` or torch pickles read with ``weights_only=True`` (a pickle that tries
to build arbitrary objects is refused).
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping

import torch
from torch import nn

from .errors import CheckpointError, first_line

log = logging.getLogger("mambaout")

_WRAPPER_KEYS = ("model", "state_dict", "model_state", "module")
_MAX_LISTED = 4


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (.safetensors, or a torch file read with weights_only=True)."""
    path = os.fspath(path)
    _check_file(path)
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {path!r}: not a valid safetensors file, truncated or corrupt ({_first_line(e)})"
            ) from None
    return unwrap_state_dict(load_torch(path), path)


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r}: a folder, not a file")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r}: no such file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint {path!r}: cannot be read (permission denied)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path!r}: an empty file (0 bytes: an interrupted copy or download?)")


def load_torch(path: str, **kwargs):
    """``torch.load(path, weights_only=True)`` whose failures are one line in our words: a truncated file, a
    pickle that would run code, an object that is not plain tensor data. Never torch's advice to lower the
    guard (``weights_only=False`` would run whatever the file asks)."""
    path = os.fspath(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them itself
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=kwargs.pop("map_location", "cpu"), weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        text = str(e)
        blocked = re.search(r"GLOBAL ([\w.]+)", text)
        if blocked and "is blocked" in text:
            why = "code, not tensor data: the file may be malicious"
        elif blocked:
            why = "a pickled object, not plain tensor data (save a state_dict() instead)"
        else:
            raise CheckpointError(
                f"checkpoint {path!r}: not a checkpoint (a plain Python pickle or an unknown format; only files of "
                "tensors written by torch.save or safetensors are read)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path!r}: refused, it asks to load {blocked.group(1)}, {why}; nothing in it was run"
        ) from None
    except (EOFError, zipfile.BadZipFile):
        raise CheckpointError(_TRUNCATED.format(path=path)) from None
    except RuntimeError as e:
        if "PytorchStreamReader" in str(e) or "zip archive" in str(e):
            raise CheckpointError(_TRUNCATED.format(path=path)) from None
        raise CheckpointError(f"checkpoint {path!r}: not a checkpoint or corrupt ({_first_line(e)})") from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {path!r}: cannot be read ({e.strerror or _first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - random bytes can fail the unpickler in any way (IndexError, KeyError, ...)
        raise CheckpointError(f"checkpoint {path!r}: not a checkpoint ({type(e).__name__} while reading)") from None


_TRUNCATED = "checkpoint {path!r}: truncated or corrupt (not a complete PyTorch file: an interrupted copy or download?)"


def _first_line(e: BaseException) -> str:
    return first_line(e) or type(e).__name__


def unwrap_state_dict(obj, path: str = "<object>") -> dict[str, torch.Tensor]:
    """Accept a raw state dict or one wrapped under a conventional key; require name -> tensor."""
    for _ in range(2):  # e.g. {'state_dict': {'model': ...}} nests once more at most
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"checkpoint {path!r}: not a checkpoint (no state dict found)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint {path!r}: not a checkpoint (it holds no tensors)")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


# Official MambaOut release -> timm/this project. Order matters: the first matching rule wins.
_OFFICIAL_RULES = [
    (r"^downsample_layers\.0\.", "stem."),
    (r"^downsample_layers\.([1-9])\.", r"stages.\1.downsample."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"^norm\.", "head.norm."),
    (r"^head\.fc1\.", "head.pre_logits.fc."),
    (r"^head\.norm\.", "head.pre_logits.norm."),
    (r"^head\.fc2\.", "head.fc."),
]


def detect_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    if any(k.startswith("downsample_layers.") for k in state_dict):
        return "official"
    if any(k.startswith("encoder.") for k in state_dict) and any(k.startswith("decoder.") for k in state_dict):
        return "pretrain"  # `mambaout pretrain`: encoder.* (a zoo model without head), decoder.*, mask_token
    return "native"


def convert_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _OFFICIAL_RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out


def to_native(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported layout -> this project's key layout (a pre-training checkpoint: its encoder only)."""
    fmt = detect_format(state_dict)
    if fmt == "pretrain":
        return {k.removeprefix("encoder."): v for k, v in state_dict.items() if k.startswith("encoder.")}
    return convert_official(state_dict) if fmt == "official" else dict(state_dict)


def _list(keys) -> str:
    keys = sorted(keys)
    more = f", ... (+{len(keys) - _MAX_LISTED})" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more


def load_state_dict_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """Load a (converted) state dict; a classifier of another size is replaced, anything else must match.
    A pre-training checkpoint gives the encoder; its decoder is dropped and the head starts fresh."""
    pretrain = detect_format(state_dict) == "pretrain"
    dropped = sum(not k.startswith("encoder.") for k in state_dict)
    state_dict = to_native(state_dict)
    own = model.state_dict()
    if pretrain:
        log.info(
            "%s: pre-training checkpoint: decoder dropped (%d tensors), encoder loaded, head fresh", source, dropped
        )
        own = {k: v for k, v in own.items() if not k.startswith("head.")}
    classifier = [k for k in ("head.fc.weight", "head.fc.bias") if k in state_dict]
    got = state_dict["head.fc.weight"].shape[0] if "head.fc.weight" in state_dict else None
    want = own["head.fc.weight"].shape[0] if "head.fc.weight" in own else 0
    # only another class count replaces it: a classifier of another width (another model) is a mismatch below
    if classifier and got != want:
        got = "?" if got is None else got
        if want:
            log.warning(
                "%s: replacing the classifier (checkpoint has %s classes, model has %s); head.fc is freshly "
                "initialised",
                source,
                got,
                want,
            )
        else:  # num_classes=0: the model has no classifier, nothing is replaced
            log.info("%s: its classifier (%s classes) is not used: the model has none", source, got)
        state_dict = {k: v for k, v in state_dict.items() if k not in classifier}
        own = {k: v for k, v in own.items() if k not in ("head.fc.weight", "head.fc.bias")}
    _refuse_nan(state_dict, source)
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    mismatched = {k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape}
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_list(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_list(unexpected)})")
        if mismatched:
            detail = [f"{k}: {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}" for k in sorted(mismatched)]
            parts.append(f"{len(mismatched)} shape mismatches ({_list(detail)})")
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(f"{source} does not fit {name}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=False)
    return model


def _refuse_nan(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """NaN anywhere in the weights turns every output into NaN: refuse now rather than after a wasted run.
    (Infinities are left alone: attention masks hold -inf by design.)"""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and torch.isnan(v).any()]
    if bad:
        whole = sum(bool(torch.isnan(state_dict[k]).all()) for k in bad)
        raise CheckpointError(
            f"{source}: {len(bad)} of {len(state_dict)} tensors hold NaN ({whole} entirely NaN: {_list(bad)}); "
            "the model would output NaN, so it is not loaded"
        )


def load_pretrained(model: nn.Module, path: str) -> nn.Module:
    return load_state_dict_into(model, read_state_dict(path), source=f"checkpoint {os.fspath(path)!r}")


def save_safetensors(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str, metadata=None):
    """Write weights as .safetensors atomically (temp file + rename)."""
    from safetensors.torch import save_file

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    state, seen = {k: v.detach().contiguous().cpu() for k, v in state.items()}, set()
    for k, v in state.items():  # a module shared by two parents (a multi-task backbone): one copy per name
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen and v.numel():
            state[k] = v.clone()
        seen.add(key)
    path = os.fspath(path)
    # the engine's temp naming (engine.state.temp_path): a leftover of a killed write is removed at the next start
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp{os.getpid()}.{os.path.basename(path)}")
    try:
        save_file(state, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    except Exception as e:
        text = str(e).lower()
        full = ("os error 28", "code: 28", "storagefull", "no space left")
        if not isinstance(e, OSError) and any(m in text for m in full):
            raise OSError(errno.ENOSPC, "No space left on device", path) from None  # safetensors' Rust IoError
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
