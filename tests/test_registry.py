import pytest
import torch

from mambaout.errors import UnknownModelError
from mambaout.registry import create_model, list_models, match_models


def test_match_models_keeps_order_drops_repeats_and_refuses_empty_patterns():
    femto = match_models(["mambaout_femto", "mamba_*", "mambaout_femto"])
    assert femto[0] == "mambaout_femto" and femto.count("mambaout_femto") == 1
    assert femto[1:] == list_models("mamba_*")
    assert match_models(None) == list_models() and match_models("mambaout_tiny") == ["mambaout_tiny"]
    with pytest.raises(UnknownModelError, match="no model matches 'zz\\*'"):
        match_models(["mambaout_*", "zz*"])
    with pytest.raises(UnknownModelError, match="did you mean mambaout_tiny"):
        match_models("mambaout_tny")
    assert list_models("zz*") == []  # the library call stays timm's: an empty list


def test_pretrained_cfg_is_timms_for_every_mambaout_so_timm_preprocesses_alike():
    timm = pytest.importorskip("timm")
    keys = ("input_size", "test_input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
    keys += ("num_classes", "first_conv", "classifier")
    for name in list_models("mambaout_*"):
        if name not in timm.list_models("mambaout_*"):
            continue
        with torch.device("meta"):
            ours, theirs = create_model(name), timm.create_model(name)
        assert {k: ours.pretrained_cfg.get(k) for k in keys} == {k: theirs.pretrained_cfg.get(k) for k in keys}, name
        assert timm.data.resolve_data_config(model=ours) == timm.data.resolve_data_config(model=theirs)


def test_pretrained_cfg_of_other_families_and_inputs():
    with torch.device("meta"):
        vim = create_model("vim_tiny", num_classes=10)
        gray = create_model("mambaout_femto", in_chans=1)
    assert vim.pretrained_cfg["crop_pct"] == 0.875 and vim.pretrained_cfg["num_classes"] == 10
    assert vim.pretrained_cfg["first_conv"] == "patch_embed.proj" and vim.pretrained_cfg["classifier"] == "head"
    assert gray.pretrained_cfg["input_size"] == (1, 224, 224) and len(gray.pretrained_cfg["mean"]) == 1
