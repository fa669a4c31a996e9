"""What the typed config accepts on purpose, and what it warns about (refusals: tests/test_bad_inputs.py)."""

import logging
import tempfile

import pytest

from mambaout.engine import config as C
from mambaout.engine import recipe
from mambaout.errors import ConfigError


def test_a_users_preset_inherits_a_shipped_one_and_reads_yaml11_numbers(tmp_path):
    from mambaout.tasks.classification import resolve_config

    # YAML 1.1 reads 2e-3 (no dot) as a string: a number field takes it as the number
    (tmp_path / "mine.yaml").write_text("_base_: synthetic\noptim:\n  lr: 2e-3\n  betas: [9e-1, 0.99]\n")
    cfg = resolve_config(str(tmp_path / "mine.yaml"))
    assert cfg.optim.lr == 0.002 and isinstance(cfg.optim.lr, float) and cfg.optim.betas == (0.9, 0.99)
    assert cfg.model.name == "mambaout_test"  # the shipped synthetic preset, not found next to mine.yaml
    # a copy named like the preset it edits inherits the shipped one (not itself)
    (tmp_path / "imagenet.yaml").write_text("_base_: imagenet\nmodel:\n  name: mambaout_test\n")
    cfg = resolve_config(str(tmp_path / "imagenet.yaml"))
    assert cfg.model.name == "mambaout_test" and cfg.sched.epochs == 300
    (tmp_path / "local.yaml").write_text("model: {name: mambaout_femto}\ndata: {dataset: synthetic}\n")
    (tmp_path / "top.yaml").write_text("_base_: [synthetic, local]\n")  # a file next to it wins
    assert resolve_config(str(tmp_path / "top.yaml")).model.name == "mambaout_femto"


@pytest.mark.parametrize("text", ["nan", "NaN", ".nan"])
def test_nan_is_never_a_number(text):
    from mambaout.tasks.classification import ClassificationConfig

    cfg = C.from_dict(ClassificationConfig, {})
    with pytest.raises(ConfigError, match="expected a number"):
        C.apply_sets(cfg, [f"optim.clip_grad={text}"])
    with pytest.raises(ConfigError, match="expected a number"):
        C.from_dict(ClassificationConfig, {"aug": {"hflip": C.yaml_value(text)}})


def test_a_warmup_as_long_as_the_run_warns_once(caplog, monkeypatch):
    from mambaout.tasks.classification import resolve_config
    from mambaout.tasks.dense.task import resolve_config as resolve_dense

    monkeypatch.setattr(recipe, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="mambaout"):
        for _ in range(2):  # e.g. `compare` resolves one config per model
            resolve_config("imagenet", ["sched.epochs=2"])
        resolve_config("imagenet", ["sched.epochs=30"])  # 20 warm-up epochs of 30: fine
        resolve_dense("segmentation", "synthetic_shapes", ["sched.max_iters=3"])  # warmup_iters 5
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "sched.warmup_epochs 20 >= sched.epochs 2: the whole run is warm-up, the lr never reaches its peak "
        "(lower it, e.g. --set sched.warmup_epochs=0)",
        "sched.warmup_iters 5 >= sched.max_iters 3: the whole run is warm-up, the lr never reaches its peak "
        "(lower it, e.g. --set sched.warmup_iters=0)",
    ]


def test_section_checks_name_the_full_key():
    from mambaout.tasks.dense.config import DenseConfig

    with pytest.raises(ConfigError, match=r"^tasks\.detection\.head\.min_size must be positive, got 0$"):
        C.from_dict(DenseConfig, {"tasks": {"detection": {"head": {"min_size": 0}}}})
    cfg = C.from_dict(DenseConfig, {"tasks": {"segmentation": {}}})
    with pytest.raises(ConfigError, match=r"^tasks\.segmentation\.eval\.stride must be positive"):
        C.apply_sets(cfg, ["tasks.segmentation.eval.stride=[0, 4]"])


def test_check_output_refuses_files_and_read_only_folders(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    recipe.check_output(str(tmp_path / "new" / "deeper"), "out")  # created later: its parent decides
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        recipe.check_output(str(tmp_path / "f" / "runs"), "out")
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **k: (_ for _ in ()).throw(OSError(30, "Read-only")))
    with pytest.raises(ConfigError, match=r"^out: cannot write in .* \(read-only\)$"):
        recipe.check_output(str(tmp_path), "out")
