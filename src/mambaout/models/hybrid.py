"""Hybrids: MambaOut's gated-CNN stages early, token mixing with global reach late.

The paper argues SSMs suit long-sequence, causal tasks; at 224² only the late stages (14² and 7²
tokens) come near the regime where global mixing is cheap. Both hybrids are ``mambaout_tiny`` with
the mixer of stages 3-4 replaced, so they differ from it only in those mixers:

* ``hybrid_mambaout_ssm_tiny``: stages 3-4 use 'conv_ssm' (7x7 conv + SSM) with VMamba's 4-direction
  cross scan (``scan=`` to change it), d_state 16.
* ``hybrid_mambaout_attn_tiny``: stages 3-4 use 'attention' (multi-head self-attention on the mixed
  channels c, 32 channels per head; ``causal=True`` for the causal variant).
"""

from __future__ import annotations

from ..registry import register_model
from .mambaout import TINY_DEPTHS, TINY_DIMS, gated_net

_NO_PAPER = dict(source="no published figure: this project's hybrid")


@register_model("hybrid", _NO_PAPER, dict(drop_path=0.2))
def hybrid_mambaout_ssm_tiny(scan="cross", d_state: int = 16, **kwargs):
    ssm = dict(type="conv_ssm", kernel_size=7, scan=scan, d_state=d_state)
    return gated_net(TINY_DEPTHS, TINY_DIMS, mixer=["dwconv", "dwconv", ssm, ssm], **kwargs)


@register_model("hybrid", _NO_PAPER, dict(drop_path=0.2))
def hybrid_mambaout_attn_tiny(causal: bool = False, head_dim: int = 32, **kwargs):
    attn = dict(type="attention", head_dim=head_dim, causal=causal)
    return gated_net(TINY_DEPTHS, TINY_DIMS, mixer=["dwconv", "dwconv", attn, attn], **kwargs)
