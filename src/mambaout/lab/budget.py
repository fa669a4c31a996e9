"""Training budgets in steps (issue #17): never wall-clock, so a run does the same work on every machine.

A part's preset gives ``steps`` (or ``epochs``: epochs x the task's steps per epoch, rounded). The
``tiny``/``cpu``/``full`` sections differ in data and steps; :func:`budget_text` states them in the report.
"""

from __future__ import annotations

from ..errors import LabError


def steps_of(cfg: dict, task) -> int:
    """The part's training steps: ``cfg['steps']`` when given, else ``epochs x task.steps_per_epoch``."""
    if "budget_s" in cfg and cfg["budget_s"]:
        raise LabError("wall-clock budgets (budget_s) are gone: give the part a step count (steps)")
    if cfg.get("steps") is not None:
        steps = int(cfg["steps"])
    else:
        steps = int(round(float(cfg["epochs"]) * task.steps_per_epoch))
    if steps < 1:
        raise LabError(f"a part needs at least 1 training step, got {steps}")
    return steps


def budget_text(steps: int, batch_size: int, tune_steps: int | None = None, grid=None, val: int | None = None) -> str:
    """'N steps at batch B (fixed: no wall-clock cap)[; lr tuned over G on V held-out ...]' for a report."""
    text = f"{steps} steps at batch {batch_size} per run (a fixed step budget)"
    if grid and len(grid) > 1:
        held = f"{val} held-out training samples" if val else "a held-out validation set"
        text += f"; lr per model from {list(grid)} by the score on {held} ({tune_steps} steps, one seed)"
    return text
