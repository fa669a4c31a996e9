"""The main job: MambaOut-Femto vs its SSM counterpart (``mamba_femto``) on Fashion-MNIST.

    from mambaout.tasks.classification import compare
    result = compare.run()                       # CPU: a few minutes (subset); CUDA: full data

Both models get the same preset (``fashion_mnist``: 28x28 resized to 32x32, one input channel, stem
stride 2 so the stages see 16/8/4/2; on CPU a 1000-image subset, stride-4 stem, 2 epochs). Every model
name and the recipe are checked before the first model trains; a model that cannot be built with the
recipe is skipped and the result says why.
Prints a comparison table and writes ``<out>/compare_curves.png`` and ``<out>/compare.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from ...engine.logging import read_metrics
from ...engine.plots import plot_curves
from ...engine.recipe import check_file, check_output, check_run_folder
from ...errors import ConfigError, UsageError
from ...registry import model_info
from ...utils.table import markdown_table
from .task import build_model, resolve_config, train

log = logging.getLogger("mambaout")
DEFAULT_MODELS = ("mambaout_femto", "mamba_femto")


def run(
    models: Sequence[str] = DEFAULT_MODELS,
    preset: str = "fashion_mnist",
    overrides: list[str] | None = None,
    output: str = "runs/compare",
    data_root: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> dict:
    """Train and evaluate each model with the same recipe; returns {'rows': [...], 'skipped': {...}, ...}."""
    overrides = list(overrides or [])
    flags = {k: v for k, v in (("data.root", data_root), ("sched.epochs", epochs)) if v is not None}
    configs = _configs(models, preset, overrides, flags, output, device)  # every mistake before the first run
    rows, runs, skipped = [], {}, {}
    for name, cfg in configs.items():
        if isinstance(cfg, str):
            skipped[name] = cfg
            continue
        summary = train(cfg, quiet=quiet, if_exists="suffix")  # a second compare keeps the first one's runs
        final = summary["final"] or {}
        rows.append(
            {
                "model": name,
                "params_m": summary["params_m"],
                "epochs": summary["epochs"],
                "top1": final.get("val_top1"),
                "top5": final.get("val_top5"),
                "best_top1": (summary["best"] or {}).get("value"),
                "wall_s": summary["wall_time_s"],
                "img_per_s": _mean_speed(summary["run_dir"]),
            }
        )
        runs[name] = read_metrics(summary["run_dir"])
        with open(os.path.join(output, "compare.json"), "w") as f:  # partial results survive a later failure
            json.dump({"rows": rows, "skipped": skipped}, f, indent=2)
    os.makedirs(output, exist_ok=True)
    curves = None
    if runs:
        curves = plot_curves(
            runs,
            os.path.join(output, "compare_curves.png"),
            panels=(("train_loss",), ("val_top1",)),
            title="Fashion-MNIST",
        )
    result = {"rows": rows, "skipped": skipped, "curves": curves, "preset": preset, "overrides": overrides}
    with open(os.path.join(output, "compare.json"), "w") as f:
        json.dump(result, f, indent=2)
    print()
    print(
        markdown_table(
            rows,
            ["model", "params_m", "epochs", "top1", "top5", "best_top1", "wall_s", "img_per_s"],
            ["model", "params (M)", "epochs", "test top-1 %", "top-5 %", "best top-1 %", "wall (s)", "train img/s"],
            digits=2,
        )
    )
    for name, why in skipped.items():
        print(
            f"note: {name} {why}; {rows[0]['model']} was trained alone." if len(rows) == 1 else f"note: {name} {why}."
        )
    if curves:
        print(f"curves: {curves}")
    return result


def _configs(models, preset, overrides, flags, output, device) -> dict:
    """Each model's resolved config, checked before any training: an unknown model or a bad recipe stops here
    (one line); a model that cannot be built with the recipe (e.g. stem_stride) maps to why it is skipped."""
    if not models:
        raise UsageError("compare: name at least one model")
    twice = sorted({m for m in models if list(models).count(m) > 1})
    if twice:
        raise UsageError(f"compare: {', '.join(twice)} named twice (each model gets one run folder)")
    for name in models:
        model_info(name)  # an unknown name: one line with a suggestion
    check_output(output, f"compare --output {output!r}")
    configs: dict = {}
    for name in models:
        cfg = resolve_config(
            preset, overrides, dict(flags, **{"model.name": name, "train.output": output, "train.name": name}), device
        )
        check_run_folder(cfg.train)
        check_file(cfg.model.pretrained, "model.pretrained")
        try:  # a family that does not take an option of the recipe (e.g. stem_stride) is skipped
            build_model(cfg)
            configs[name] = cfg
        except (ConfigError, TypeError, ValueError) as e:
            configs[name] = f"cannot be built with this recipe ({e})"
            log.warning("%s skipped: %s", name, configs[name])
    if all(isinstance(c, str) for c in configs.values()):
        why = "; ".join(f"{name} {c}" for name, c in configs.items())
        raise ConfigError(f"compare: no model can be built with preset {preset!r}: {why}")
    return configs


def _mean_speed(run_dir: str):
    rows = read_metrics(run_dir)
    speeds = [r["train_img_per_s"] for r in rows[1:] or rows if "train_img_per_s" in r]  # the first: warm-up
    return sum(speeds) / len(speeds) if speeds else None
