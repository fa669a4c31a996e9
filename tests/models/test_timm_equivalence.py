"""Same weights -> same logits as timm, from both the timm and the official key layouts."""

import re

import pytest
import timm
import torch

import mambaout
from mambaout.weights import save_safetensors

# timm -> official (the inverse of the converter's rules); the official release has no _rw models.
_TO_OFFICIAL = [
    (r"^stem\.", "downsample_layers.0."),
    (r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
    (r"^head\.pre_logits\.fc\.", "head.fc1."),
    (r"^head\.pre_logits\.norm\.", "head.norm."),
    (r"^head\.norm\.", "norm."),
    (r"^head\.fc\.", "head.fc2."),
]


def to_official(state):
    out = {}
    for k, v in state.items():
        for pat, rep in _TO_OFFICIAL:
            k2, n = re.subn(pat, rep, k)
            if n:
                k = k2
                break
        out[k] = v
    return out


def _randomise(model):
    """Perturb biases, norms and layer scales too (timm inits them to constants) so nothing matches by accident."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize(
    "name,layout",
    [
        ("mambaout_femto", "official"),
        ("mambaout_tiny", "official"),
        ("mambaout_tiny", "timm"),
        ("mambaout_small_rw", "timm"),
        ("mambaout_test", "timm"),
    ],
)
def test_logits_equal_timm(name, layout, tmp_path):
    torch.manual_seed(1)
    reference = _randomise(timm.create_model("test_mambaout" if name == "mambaout_test" else name)).eval()
    state = reference.state_dict()
    path = tmp_path / "w.pth"
    torch.save({"model": to_official(state)} if layout == "official" else state, path)
    if layout == "official":
        assert "downsample_layers.0.conv1.weight" in torch.load(path, weights_only=True)["model"]
    ours = mambaout.create_model(name, pretrained=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    assert diff <= 1e-4

    # and the same through a .safetensors export of our model
    st = tmp_path / "w.safetensors"
    save_safetensors(ours, str(st))
    again = mambaout.create_model(name, pretrained=str(st)).eval()
    with torch.no_grad():
        assert torch.equal(again(x), ours(x))
