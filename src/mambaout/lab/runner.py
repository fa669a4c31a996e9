"""A compact in-process trainer for the lab's many small runs and summaries (budgets are steps: budget.py).

Every cell of an experiment (model x variant x seed) trains with the same optimiser (AdamW, no decay on
1-D / flagged parameters, the classification task's grouping), the same linear-warmup + cosine
schedule, batch size and number of steps, so the comparison is matched in training budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from ..bench.timing import sync
from ..engine.rng import seed_everything

log = logging.getLogger("mambaout.lab")


def resolve_device(name: str | None) -> torch.device:
    from ..errors import LabError

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise LabError(f"bad --device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError(f"--device {name}: CUDA is not available here")
    return dev


def make_optimizer(model: nn.Module, lr: float, weight_decay: float):
    from ..engine.optim import param_groups

    groups = param_groups(model, weight_decay)
    for g in groups:
        g.pop("lr_scale", None)
        g.pop("name", None)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def lr_at(step: int, total: int, lr: float, warmup_frac: float) -> float:
    warm = max(1, int(warmup_frac * total))
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return lr * 0.5 * (1 + math.cos(math.pi * t))


def train_cell(
    build: Callable[[], nn.Module],
    task,
    steps: int,
    seed: int,
    device,
    optim: dict,
    log_points: int = 20,
    label: str = "",
    keep_model: bool = False,
) -> dict:
    """Train one model for ``steps`` steps and evaluate; returns metrics, the loss curve and timings (and the
    trained model under ``'model'`` with ``keep_model``). The model is built right after
    ``seed_everything(seed)``: building it the same way again gives its initial weights."""
    seed_everything(seed)
    model = build().to(device)
    opt = make_optimizer(model, optim["lr"], optim.get("weight_decay", 0.05))
    clip = optim.get("clip_grad", 1.0)
    every = max(1, steps // log_points)
    curve, run_loss, n_loss = [], 0.0, 0
    batches = task.batches(seed)
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, optim["lr"], optim.get("warmup_frac", 0.05))
        x, y = next(batches)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        run_loss += loss.detach()
        n_loss += 1
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append(dict(step=step + 1, train_loss=float(run_loss) / n_loss))
            run_loss, n_loss = 0.0, 0
    sync(device)
    train_s = time.perf_counter() - t0
    result = task.evaluate(model)
    sync(device)
    result.update(
        train_s=train_s,
        eval_s=time.perf_counter() - t0 - train_s,
        steps=steps,
        seed=seed,
        final_train_loss=curve[-1]["train_loss"] if curve else float("nan"),
        curve=curve,
    )
    if keep_model:
        result["model"] = model
    log.info("  %s seed %d: %s %.2f (%d steps, %.1fs)", label, seed, task.metric, result[task.metric], steps, train_s)
    return result


def step_time(build: Callable[[], nn.Module], task, device, optim: dict, warmup: int = 3, timed: int = 5) -> float:
    """Seconds per training step of a fresh model (after ``warmup`` steps: kernel compiles, caches)."""
    seed_everything(0)
    model = build().to(device)
    opt = make_optimizer(model, optim["lr"], optim.get("weight_decay", 0.05))
    batches = task.batches(0)
    model.train()
    for i in range(warmup + timed):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x, y = next(batches)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - t0) / timed


def mean_std(values: list[float]) -> dict:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if not n:
        return dict(mean=float("nan"), std=float("nan"), n=0)
    m = sum(vals) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return dict(mean=m, std=sd, n=n)


def run_group(
    name: str,
    cells: list[dict],
    task,
    seeds: list[int],
    wanted_steps: int,
    budget_s: float | None,
    device,
    optim: dict,
    keep_seed: int | None = None,
) -> dict:
    """Train every cell (dict with 'label', 'model', 'variant', 'params', 'build'; optional 'optim': its own
    tuned optimiser settings) for every seed with one shared step count (``budget_s`` must be None: budgets
    are steps). ``plan['step_s']`` is each cell's measured seconds per training step. A failing cell is
    recorded (``error``) and the rest go on. With ``keep_seed``, the trained models of that seed are returned under ``'models'`` ({label: model}; a failed cell is absent)."""
    if budget_s:
        from ..errors import LabError

        raise LabError(f"{name}: wall-clock budgets (budget_s) are gone; the preset's step count is the budget")
    errors = {}
    plan = dict(steps=wanted_steps, capped=False, step_s={})
    log.info("%s: %d steps per run (a fixed step budget)", name, wanted_steps)
    rows, models = [], {}
    for c in cells:
        for seed in seeds:
            row = dict(
                group=name, label=c["label"], model=c["model"], variant=c["variant"], params=c["params"], seed=seed
            )
            row["lr"] = c.get("optim", optim)["lr"]
            if c["label"] in errors:
                row["error"] = errors[c["label"]]
                rows.append(row)
                continue
            try:
                keep = seed == keep_seed
                row.update(
                    train_cell(
                        c["build"],
                        task,
                        plan["steps"],
                        seed,
                        device,
                        c.get("optim", optim),
                        label=c["label"],
                        keep_model=keep,
                    )
                )
                model = row.pop("model") if keep else None  # the trained module replaced the name
                row["model"] = c["model"]
                if not math.isfinite(row[task.metric]):
                    row["error"] = "non-finite metric"
                elif model is not None:
                    models[c["label"]] = model
            except Exception as e:
                log.exception("%s seed %d failed", c["label"], seed)
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
    for c in cells:
        ts = [r["train_s"] / r["steps"] for r in rows if r["label"] == c["label"] and "train_s" in r]
        if ts:
            plan["step_s"][c["label"]] = sum(ts) / len(ts)
    out = dict(plan=plan, rows=rows, errors=errors)
    if keep_seed is not None:
        out["models"] = models
    return out


def values(rows: list[dict], label: str, metric: str) -> list[float]:
    return [r[metric] for r in rows if r["label"] == label and "error" not in r and metric in r]
