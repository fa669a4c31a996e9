"""ERF: exact footprints of known mixers, causality, RepLKNet's square table, real models on the CPU."""

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from mambaout.errors import UsageError
from mambaout.explain.erf import erf, side_table
from mambaout.explain.inputs import stage_output
from mambaout.models.mixers import build_mixer

pytestmark = pytest.mark.usefixtures("one_thread")


class OneMixer(nn.Module):
    """A network of one stage: a single token mixer on the raw channels (channels-last, as the zoo's)."""

    def __init__(self, mixer, chans: int = 2, **kwargs):
        super().__init__()
        self.stages = nn.Sequential(build_mixer(mixer, chans, **kwargs))

    def forward_stages(self, x):
        return [self.stages[0](x.permute(0, 2, 3, 1))]


def test_erf_of_one_7x7_depthwise_conv_is_its_footprint():
    net = OneMixer("dwconv", kernel_size=7)
    with torch.no_grad():
        net.stages[0].weight.uniform_(0.1, 1.0)  # positive: no tap can cancel
    with torch.no_grad():  # erf takes its gradients whatever the caller's mode
        result = erf(net, torch.randn(3, 2, 15, 16))
    assert net.training  # and leaves the model's mode as it was
    c = (7, 8)
    inside = np.zeros((15, 16), bool)
    inside[c[0] - 3 : c[0] + 4, c[1] - 3 : c[1] + 4] = True
    assert (result.map[inside] > 0).all()
    assert (result.map[~inside] == 0).all()
    # |grad| is the kernel itself (a cross-correlation: not flipped), summed over the channels, for every image
    kernel = net.stages[0].weight.detach().abs().sum((0, 1)).double().numpy()
    np.testing.assert_allclose(result.map[inside].reshape(7, 7), kernel, rtol=1e-6)


def _future(h, w):
    """Pixels after the centre (h // 2, w // 2) in raster order."""
    rows, cols = np.mgrid[:h, :w]
    ch, cw = h // 2, w // 2
    return (rows > ch) | ((rows == ch) & (cols > cw))


@pytest.mark.parametrize("causal", [True, False])
def test_causal_ssm_mixer_has_no_erf_on_the_future_side(causal):
    net = OneMixer("conv_ssm", chans=4, kernel_size=3, d_state=4, causal=causal).eval()
    result = erf(net, torch.randn(2, 4, 12, 12))
    future = _future(12, 12)
    assert result.map[0, 0] > 0  # the scan reaches far past the 3x3 conv into the past
    if causal:
        assert (result.map[future] == 0).all()
    else:  # the same mixer unmasked sees the pixels after it (so the check above can fail)
        assert (result.map[future] > 0).any()


@pytest.mark.parametrize("n", [31, 32])
def test_table_of_a_uniform_map_is_analytic(n):
    table = side_table(np.ones((n, n)))

    def analytic(t):  # odd sides around pixel n // 2; an even image's last square is the whole image
        s = next(s for s in range(1, n + 2, 2) if min(s, n) ** 2 >= t * n * n)
        return min(s, n) / n

    assert table == {t: pytest.approx(analytic(t)) for t in (0.2, 0.3, 0.5, 0.99)}
    if n == 31:  # sqrt(t) * 31 = 13.9, 17.0, 21.9, 30.8 -> the next odd sides
        assert table == pytest.approx({0.2: 15 / 31, 0.3: 17 / 31, 0.5: 23 / 31, 0.99: 1.0})


def test_table_of_a_point_and_of_nothing():
    m = np.zeros((9, 9))
    m[4, 4] = 2.0
    assert side_table(m) == {t: pytest.approx(1 / 9) for t in (0.2, 0.3, 0.5, 0.99)}
    m[0, 0] = 2.0  # half the mass in a corner: 0.99 needs the whole image
    assert side_table(m)[0.5] == pytest.approx(1 / 9) and side_table(m)[0.99] == 1.0
    assert set(side_table(np.zeros((4, 4))).values()) == {None}


def _tiny_ssm():
    from mambaout.models.mamba_pairs import mamba_net

    model = mamba_net((1, 1, 1, 1), (8, 16, 24, 32), num_classes=3, in_chans=1, d_state=4).eval()
    model.model_name = "tiny_ssm"
    return model


def _tiny_vim():
    from mambaout.models.vim import vim

    model = vim(16, depth=4, d_state=4, num_classes=3, in_chans=1, img_size=32).eval()
    model.model_name = "tiny_vim"
    return model


@pytest.mark.parametrize("build", ["mambaout_test", "ssm", "vim"])
def test_erf_of_real_models_on_cpu(build, tmp_path):
    from mambaout.registry import create_model

    if build == "mambaout_test":
        model = create_model("mambaout_test", num_classes=3, in_chans=1).eval()
    else:
        model = _tiny_ssm() if build == "ssm" else _tiny_vim()
    images = torch.randn(2, 1, 32, 32)
    start = time.perf_counter()
    result = erf(model, images, stage=-1)
    assert time.perf_counter() - start < 20
    assert result.map.shape == (32, 32) and np.isfinite(result.map).all() and result.map.sum() > 0
    assert result.stage == 3 and result.num_images == 2
    sides = [result.table[t] for t in (0.2, 0.3, 0.5, 0.99)]
    assert all(0 < s <= 1 for s in sides) and sides == sorted(sides)
    if build == "mambaout_test":  # stage 0 (stride 4, a few 7x7 convs) sees less than stage 3
        early = erf(model, images, stage=0)
        assert early.table[0.99] < result.table[0.99] or early.table[0.5] < result.table[0.5]
        assert (early.map[0, :] == 0).all()  # a stem + one 7x7 block cannot reach 16 pixels away
    path = tmp_path / "erf.png"
    result.save_png(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("stage", [4, -5])
def test_bad_stage_is_one_line(stage):
    net = OneMixer("dwconv")
    with pytest.raises(UsageError, match=r"stage .* out of range: .* 1 stages \(0\.\.0, or -1\.\.-1\)"):
        erf(net, torch.randn(1, 2, 8, 8), stage=stage)


def test_isotropic_stage_output_is_the_feature_blocks_grid():
    model = _tiny_vim()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        outs = [stage_output(model, x, s) for s in range(4)]
    assert all(o.shape == (1, 2, 2, 16) for o in outs)
    assert not math.isclose(float((outs[0] - outs[3]).abs().sum()), 0.0)
