"""The framing experiment's ERF section: where the matched image models look, before and after training.

For each image model of the framing experiment's part (a) (MambaOut, its SSM pair, the ViT), the effective
receptive field (:func:`mambaout.explain.erf.erf`: RepLKNet's method) of a stage's centre output over N real
test images, twice: at random init (built after ``seed_everything(seed)``, exactly as the lab's trainer
builds the model it trains) and after the lab's training (the trained model of that seed). The lab's
models expose what ``explain.inputs.stage_output`` reads (the hierarchical nets their ``stages``, the ViT
its four feature blocks), so no adapter is needed: :func:`check_stages` says so, or raises.

Output: a record for results.json (one row per model x weights x stage with RepLKNet's 20/30/50/99% table),
a Markdown section (the table and a paragraph written from the numbers), ``erf.png`` (a row per model,
columns untrained / trained, last stage, log scale, the 50% square outlined) and ``erf_maps.npz`` (the maps).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..engine.rng import seed_everything
from ..errors import LabError
from ..explain.erf import THRESHOLDS, ERFResult, erf, log_scaled
from ..explain.inputs import num_stages, resolve_stage
from ..utils.table import markdown_table

WEIGHTS = ("untrained", "trained")


def untrained_model(build, seed: int, device) -> nn.Module:
    """The model ``train_cell(build, ..., seed)`` starts from: the same build after the same seeding."""
    seed_everything(seed)
    return build().to(device)


def check_stages(model: nn.Module, label: str) -> int:
    """The model's stage count as ``explain`` sees it; a LabError when it exposes none."""
    try:
        return num_stages(model)
    except Exception as e:  # noqa: BLE001 - explain's UsageError, in the lab's words
        raise LabError(f"ERF: the lab's {label} model exposes no stages to explain ({e})") from None


def _fmt(side) -> str:
    return "-" if side is None else f"{side:.2f}"


def _stage_name(index: int, n: int) -> str:
    return f"{index} (last)" if index == n - 1 else str(index)


def _square(ax, side: float | None, shape: tuple[int, int], **style) -> None:
    """Outline the centred square of ``side`` (a fraction of the longer image side), clipped as side_table
    clips it."""
    if side is None:
        return
    from matplotlib.patches import Rectangle

    h, w = shape
    r = (round(side * max(h, w)) - 1) // 2
    top, left = max(h // 2 - r, 0), max(w // 2 - r, 0)
    bottom, right = min(h // 2 + r + 1, h), min(w // 2 + r + 1, w)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, **style))


def figure(maps: dict, names: dict, path: str, stage_text: str, num_images: int) -> None:
    """A row per model, columns untrained / trained: the ERF map on a log scale, the 50% square dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(maps)
    fig, axes = plt.subplots(
        len(labels), 2, figsize=(6.2, 2.7 * len(labels) + 0.5), squeeze=False, layout="constrained"
    )
    im = None
    for i, label in enumerate(labels):
        for j, weights in enumerate(WEIGHTS):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            res: ERFResult | None = maps[label].get(weights)
            if res is None:
                ax.text(0.5, 0.5, "no trained model", ha="center", va="center", transform=ax.transAxes)
                continue
            im = ax.imshow(log_scaled(res.map), cmap="RdYlGn", vmin=0, vmax=1)
            _square(ax, res.table.get(0.5), res.map.shape, edgecolor="black", linestyle="--", linewidth=1.2)
            ax.set_title(f"{weights}: 50% side {_fmt(res.table.get(0.5))}", fontsize=9)
            if j == 0:
                ax.set_ylabel(names.get(label, label), fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.05, label="log10(1 + 1000 ERF / max) / 3")
    fig.suptitle(f"ERF at the {stage_text}, mean over {num_images} test images (dashed: 50% square)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _names_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def paragraph(rows: list[dict], names: dict) -> str:
    """Plain sentences from the numbers: the 50% squares at the last stage after training (largest and
    smallest), their change from random init, and the 99% squares. No claims beyond the table."""
    t50, t99 = "0.5", "0.99"

    def side(label, weights, key):  # at the model's last stage
        for r in rows:
            if r["label"] == label and r["weights"] == weights and r["stage"] == r["num_stages"] - 1:
                return r["table"].get(key)
        return None

    labels = list(dict.fromkeys(r["label"] for r in rows))
    out = []
    for weights in ("trained", "untrained"):
        got = {lab: side(lab, weights, t50) for lab in labels}
        got = {lab: s for lab, s in got.items() if s is not None}
        if len(got) < 2:
            continue
        hi, lo = max(got.values()), min(got.values())
        when = "After training" if weights == "trained" else "At random init"
        if hi == lo:
            out.append(f"{when}, the 50% square at the last stage has the same side for every model ({_fmt(hi)}).")
        else:
            big = _names_list([names.get(k, k) for k, s in got.items() if s == hi])
            small = _names_list([names.get(k, k) for k, s in got.items() if s == lo])
            out.append(
                f"{when}, the 50% square at the last stage is largest for {big} ({_fmt(hi)} of the image side) "
                f"and smallest for {small} ({_fmt(lo)})."
            )
    pair = [(lab, side(lab, "trained", t50)) for lab in ("mambaout", "mamba") if lab in labels]
    if len(pair) == 2 and None not in (pair[0][1], pair[1][1]):
        (a_lab, a), (_, b) = pair
        a_name = names.get(a_lab, a_lab)
        rel = "the same as" if a == b else "larger than" if a > b else "smaller than"
        out.append(f"Trained, {a_name}'s 50% square ({_fmt(a)}) is {rel} its SSM pair's ({_fmt(b)}).")
    changes = []
    for lab in labels:
        a, b = side(lab, "untrained", t50), side(lab, "trained", t50)
        if a is None or b is None:
            continue
        verb = "grows" if b > a else "shrinks" if b < a else "stays"
        changes.append(f"{names.get(lab, lab)} {verb} ({_fmt(a)} → {_fmt(b)})")
    if changes:
        out.append(
            "From random init to trained, each model's 50% square at the last stage: " + "; ".join(changes) + "."
        )
    whole = [names.get(lab, lab) for lab in labels if side(lab, "trained", t99) == 1.0]
    if whole:
        out.append(f"After training, the 99% square covers the whole image for {_names_list(whole)}.")
    return " ".join(out)


def erf_section(
    cells: list[dict],
    trained: dict[str, nn.Module],
    images: torch.Tensor,
    seed: int,
    device,
    names: dict,
    png_path: str,
    stages: Sequence[int] = (0, -1),
    npz_path: str | None = None,
) -> tuple[dict, str]:
    """ERF of every cell's model at random init (seed ``seed``) and trained (``trained[label]``, the models of
    that seed; a missing one is reported), at ``stages`` (negative counts from the end), over ``images``
    (normalised, N x C x H x W). Returns (record for results.json, Markdown section); writes the figure."""
    t0 = time.time()
    rows, maps = [], {}
    for c in cells:
        label = c["label"]
        models = {"untrained": untrained_model(c["build"], seed, device), "trained": trained.get(label)}
        n = check_stages(models["untrained"], label)
        maps[label] = {}
        picked = sorted({resolve_stage(models["untrained"], s) for s in stages})
        for weights in WEIGHTS:
            model = models[weights]
            if model is None:
                continue
            for index in picked:
                res = erf(model, images, index)
                res.model = label
                rows.append(
                    dict(
                        label=label,
                        model=names.get(label, label),
                        params=c["params"],
                        weights=weights,
                        stage=index,
                        num_stages=n,
                        table={str(t): s for t, s in res.table.items()},
                    )
                )
                if index == n - 1:
                    maps[label][weights] = res
        del models
    h, w = images.shape[-2:]
    figure(maps, names, png_path, "last stage", len(images))
    if npz_path:
        np.savez_compressed(
            npz_path, **{f"{lab}_{wt}": r.map.astype(np.float32) for lab, m in maps.items() for wt, r in m.items()}
        )
    missing = [names.get(c["label"], c["label"]) for c in cells if c["label"] not in trained]
    record = dict(
        num_images=len(images),
        seed=seed,
        image_size=[int(h), int(w)],
        thresholds=list(THRESHOLDS),
        stages=sorted({r["stage"] for r in rows}),
        rows=rows,
        missing_trained=missing,
        wall_s=time.time() - t0,
    )
    table_rows = [
        dict(
            model=r["model"],
            weights=r["weights"],
            stage=_stage_name(r["stage"], r["num_stages"]),
            **{f"t{t}": _fmt(r["table"][str(t)]) for t in THRESHOLDS},
        )
        for r in sorted(
            rows, key=lambda r: (-r["stage"], r["label"] != "mambaout", r["label"], r["weights"] != "untrained")
        )
    ]
    cols = ["model", "weights", "stage"] + [f"t{t}" for t in THRESHOLDS]
    heads = ["model", "weights", "stage"] + [f"{t:.0%}" for t in THRESHOLDS]
    note = f" No trained model for {_names_list(missing)} (its run failed)." if missing else ""
    md = (
        "## (a) Effective receptive fields of the image models\n\n"
        f"RepLKNet's ERF (Ding et al., CVPR 2022; `mambaout.explain.erf`): |d centre of a stage's output / d input|, "
        f"averaged over {len(images)} test images at {h}×{w}, for the matched models of (a) at random init "
        f"(seed {seed}) and after the training above (seed {seed}). Each cell is the side of the smallest square "
        f"centred on the image that holds 20/30/50/99% of the map's total, as a fraction of the image side "
        f"({max(h, w)} px); larger means the output draws on a wider area. Stages are 0-based; the ViT's stages are "
        f"its blocks depth/4, depth/2, 3·depth/4 and the last (after the final norm).{note}\n\n"
        + markdown_table(table_rows, cols, heads)
        + "\n\n"
        + paragraph(rows, names)
        + "\n\nFigure: `erf.png` (last stage; a row per model, untrained | trained; log scale, dashed: the 50% square)."
    )
    return record, md
