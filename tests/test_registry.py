import pytest

from mambaout.errors import UnknownModelError
from mambaout.registry import list_models, match_models


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
