"""Mixed precision with the same meaning on every task and device.

``train.amp``: null (fp32), ``bf16`` (autocast on CUDA and CPU) or ``fp16`` (CUDA, with a GradScaler;
on a CPU it falls back to fp32 with a warning, as CPU fp16 autocast is slow and unscaled).
"""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger("mambaout")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def effective_amp(amp: str | None, device: torch.device, warn: bool = True) -> str | None:
    if amp == "fp16" and device.type != "cuda":
        if warn:
            log.warning("fp16 autocast needs CUDA; running in fp32 on %s", device.type)
        return None
    return amp


def autocast(device: torch.device, amp: str | None):
    """The autocast context for ``amp`` (already made effective for ``device``)."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str | None, device: torch.device):
    return torch.amp.GradScaler("cuda") if amp == "fp16" and device.type == "cuda" else None
