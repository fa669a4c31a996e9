"""Per-model learning rate on held-out training data (issue #17): the test split is touched once per
final run.

:func:`holdout` splits a Fashion-MNIST tensor set's training images into a train part and a validation
part (the test images are never read); :func:`tune_lr` trains every cell once per lr of the grid on the
train part (one seed, the part's step budget) and keeps the lr with the best validation score.
"""

from __future__ import annotations

import logging
import math

from .runner import train_cell

log = logging.getLogger("mambaout.lab")

TUNE_SEED = 1000  # not one of the final seeds


class Holdout:
    """A view of a :class:`~.tasks.FashionTensors` set: its training images minus the first ``n_val``
    (train_x/train_y) and those ``n_val`` images as the evaluation set (test_x/test_y)."""

    def __init__(self, data, n_val: int):
        n = len(data.train_y)
        if not 0 < n_val < n:
            from ..errors import LabError

            raise LabError(f"validation split of {n_val} needs 0 < n_val < {n} training images")
        self.device = data.device
        self.train_x, self.train_y = data.train_x[n_val:], data.train_y[n_val:]
        self.test_x, self.test_y = data.train_x[:n_val], data.train_y[:n_val]


def holdout(data, n_val: int) -> Holdout:
    return Holdout(data, n_val)


def tune_lr(
    cells: list[dict], val_task, steps: int, device, optim: dict, grid, lower_is_better: bool = False
) -> dict[str, dict]:
    """Set ``cell['optim']`` to ``optim`` with the best lr of ``grid`` for every cell; returns
    {label: {lr, scores: {lr: validation score}}}. A grid of one value is not searched."""
    grid = list(grid or [optim["lr"]])
    out = {}
    for c in cells:
        scores = {}
        if len(grid) > 1:
            for lr in grid:
                o = dict(optim, lr=lr)
                try:
                    r = train_cell(c["build"], val_task, steps, TUNE_SEED, device, o, label=f"{c['label']} lr={lr:g}")
                    scores[lr] = r[val_task.metric]
                except Exception as e:  # a diverging lr is a bad lr, not a failed experiment
                    log.warning("tuning %s at lr %g failed: %s", c["label"], lr, e)
            finite = {k: v for k, v in scores.items() if v is not None and math.isfinite(v)}
            best = (min if lower_is_better else max)(finite, key=finite.get) if finite else optim["lr"]
        else:
            best = grid[0]
        c["optim"] = dict(optim, lr=best)
        out[c["label"]] = dict(lr=best, scores=scores)
    return out
