"""The protocol of one matched comparison (issue #17): a fixed step budget, a per-model learning rate
chosen on held-out training data, every seed trained once and tested once, and each model's cost
(parameters, MACs per sample, measured step time) beside its score.
"""

from __future__ import annotations

from ..utils.table import markdown_table
from .budget import steps_of
from .cost import cell_costs, fmt_macs, step_ms
from .report import pm
from .runner import mean_std, run_group, values
from .tuning import tune_lr


def part_record(res: dict) -> dict:
    """What a report's results.json keeps of a :func:`run_part` result (beside the part's own fields)."""
    return {k: res[k] for k in ("plan", "steps", "tuning", "costs")}


def run_part(
    name: str,
    cells: list[dict],
    task,
    val_task,
    part_cfg: dict,
    seeds: list[int],
    device,
    optim: dict,
    tune_cfg: dict | None,
    sample,
    keep_seed: int | None = None,
) -> dict:
    """Tune (when ``val_task`` and a grid of > 1 lr), cost and train every cell; returns run_group's record
    plus ``steps``, ``tuning`` and ``costs`` ({label: params, macs, step_ms, lr})."""
    steps = steps_of(part_cfg, task)
    lower = getattr(task, "lower_is_better", False)
    tune_cfg = tune_cfg or {}
    grid = tune_cfg.get("grid") or [optim["lr"]]
    tune_steps = max(1, int(round(steps * float(tune_cfg.get("steps_frac", 1.0)))))
    tuning = tune_lr(cells, val_task, tune_steps, device, optim, grid if val_task is not None else None, lower)
    cell_costs(cells, sample)
    res = run_group(name, cells, task, seeds, steps, None, device, optim, keep_seed=keep_seed)
    tuned = val_task is not None and len(grid) > 1
    res["steps"], res["tune_steps"], res["tuning"] = steps, tune_steps if tuned else 0, tuning
    res["costs"] = {
        c["label"]: dict(
            params=c["params"], macs=c["macs"], step_ms=step_ms(res["rows"], c["label"]), lr=c["optim"]["lr"]
        )
        for c in cells
    }
    return res


def cells_table(res: dict, cells: list[dict], metric: str, header: str, names: dict, digits: int = 2, extra=()) -> str:
    """Model | [extra columns] | params | MACs/sample | step ms | lr | val score | test mean ± std | seeds."""
    rows = []
    for c in cells:
        cost, tun = res["costs"][c["label"]], res["tuning"].get(c["label"], {})
        val = tun.get("scores", {}).get(tun.get("lr"))
        row = dict(
            model=names.get(c["label"], c["label"]),
            params=cost["params"],
            macs=fmt_macs(cost["macs"]),
            ms=None if cost["step_ms"] is None else f"{cost['step_ms']:.1f}",
            lr=f"{cost['lr']:g}",
            val="-" if val is None else f"{val:.{digits}f}",
            result=pm(mean_std(values(res["rows"], c["label"], metric)), digits),
            n=len(values(res["rows"], c["label"], metric)),
        )
        for key, _, fn in extra:
            row[key] = fn(c)
        rows.append(row)
    keys = ["model"] + [k for k, _, _ in extra] + ["params", "macs", "ms", "lr", "val", "result", "n"]
    heads = (
        ["model"]
        + [h for _, h, _ in extra]
        + ["params", "MACs/sample", "step (ms)", "lr (tuned)", "val score", header, "seeds"]
    )
    return markdown_table(rows, keys, heads)
