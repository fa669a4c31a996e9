"""The MambaOut family: structure, API and equivalence with timm's implementation."""

import pytest
import timm
import torch

import mambaout
from mambaout.analysis.complexity import build_meta, param_count
from mambaout.errors import InputError, UnknownModelError
from mambaout.models.blocks import GatedBlock

MAMBAOUT = [n for n in mambaout.list_models("mambaout_*")]


def test_registry_has_the_timm_names():
    expected = {
        "mambaout_femto",
        "mambaout_kobe",
        "mambaout_tiny",
        "mambaout_small",
        "mambaout_base",
        "mambaout_small_rw",
        "mambaout_base_short_rw",
        "mambaout_base_tall_rw",
        "mambaout_base_wide_rw",
        "mambaout_base_plus_rw",
        "mambaout_test",
    }
    assert expected <= set(MAMBAOUT)


@pytest.mark.parametrize("name", [n for n in MAMBAOUT if n != "mambaout_test"])
def test_params_match_paper_within_1_percent(name):
    model = build_meta(name)
    reported = mambaout.model_info(name).paper["params"]
    assert abs(param_count(model) / 1e6 - reported) / reported < 0.01


@pytest.mark.parametrize("name", MAMBAOUT)
def test_state_dict_layout_equals_timm(name):
    ours = build_meta(name).state_dict()
    with torch.device("meta"):
        theirs = timm.create_model("test_mambaout" if name == "mambaout_test" else name).state_dict()
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_block_split_and_shapes_tiny_stage1():
    block = GatedBlock(96)
    assert block.split_indices == (256, 160, 96)
    assert block.fc1.weight.shape == (512, 96) and block.conv.weight.shape == (96, 1, 7, 7)
    assert block.fc2.weight.shape == (96, 256)
    assert GatedBlock(128).split_indices == (341, 213, 128)  # base: int() rounds 341.33 down


def test_layernorm_eps_and_init():
    model = mambaout.create_model("mambaout_test")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in linears)
    w = torch.cat([m.weight.flatten() for m in linears])
    assert 0.015 < float(w.std()) < 0.025 and float(w.abs().max()) <= 2.0


def test_forward_any_size_divisible_by_32_and_features():
    model = mambaout.create_model("mambaout_test", num_classes=7).eval()
    for h, w in [(64, 64), (96, 160)]:
        assert model(torch.randn(2, 3, h, w)).shape == (2, 7)
    feats = mambaout.create_model("mambaout_test", features_only=True)(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 16, 24), (1, 32, 8, 12), (1, 48, 4, 6), (1, 64, 2, 3)]
    nhwc = mambaout.create_model("mambaout_test", features_only=True, feature_format="NHWC", out_indices=(1, 3))
    assert [tuple(f.shape) for f in nhwc(torch.randn(1, 3, 64, 64))] == [(1, 8, 8, 32), (1, 2, 2, 64)]
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]


@pytest.mark.parametrize("shape", [(1, 3, 60, 64), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shape_is_a_clear_error(shape):
    model = mambaout.create_model("mambaout_test")
    with pytest.raises(InputError, match="divisible|expected input"):
        model(torch.randn(*shape))


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean mambaout_tiny"):
        mambaout.create_model("mambaout_tiy")


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = mambaout.create_model("mambaout_test", num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, p in zip(ref, model.parameters()):
        torch.testing.assert_close(p.grad, a, rtol=1e-5, atol=1e-6)


def test_reset_classifier():
    model = mambaout.create_model("mambaout_test")
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, model.head.num_features)


def test_drop_path_rises_linearly_to_the_rate():
    model = mambaout.create_model("mambaout_test", drop_path_rate=0.3)
    rates = [
        b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0 for s in model.stages for b in s.blocks
    ]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert all(b > a for a, b in zip(rates, rates[1:]))


def test_causal_dwconv_ignores_future_pixels():
    from mambaout.models.mixers import build_mixer

    mixer = build_mixer("dwconv", 4, causal=True)
    x = torch.randn(1, 8, 8, 4)
    y = mixer(x)
    x2 = x.clone()
    x2[:, 5:, :, :] += 1.0  # rows after row 4
    x2[:, 4, 4:, :] += 1.0  # pixels right of (4, 3)
    assert torch.allclose(mixer(x2)[:, 4, 3], y[:, 4, 3]) and torch.allclose(mixer(x2)[:, :4], y[:, :4])
