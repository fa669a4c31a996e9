"""Experiment 3, framing: one dataset, two framings, plus two long causal (autoregressive) tasks.

(a) Fashion-MNIST as images (short sequences, non-causal): MambaOut vs its SSM counterpart (the same
    net with the conv + SSM mixer) vs a ViT; MambaOut's and the ViT's widths are searched so their
    parameter counts match the SSM model's within 5%. Their effective receptive fields (``erf_section``),
    untrained and trained (the first seed), on ``images.erf_images`` test images: ``erf.png``.
(b) Fashion-MNIST as a pixel sequence (784 steps at full size; causal; the class is read at the last
    step): a causal Gated CNN stack (GatedBlock + ``lab_causal_conv1d``) vs the same stack with the SSM
    (GatedBlock + ``mamba1d``: the same causal conv1d, then the SSM). The Gated CNN is widened to match.
(c) Selective copying (L >= 1024 at full size): K data tokens among blanks must be emitted in order at
    the end, so the memory has to span the sequence. Same two stacks.
(d) Next-pixel prediction on Fashion-MNIST (L = 784 at full size): the raster sequence quantised to Q grey
    levels, read shifted right behind a start token, the level predicted at every step (strictly causal);
    metric: test bits per pixel, lower is better. A causal conv stack of depth D and kernel k sees only
    D(k-1) pixels back (12 at full size) -- not the pixel above (28 back) nor the object's shape; an SSM's
    state can carry both. Same two stacks.
All pairs: same steps, batch, optimiser and schedule; parameter counts asserted within 5% and reported.
"""

from __future__ import annotations

import math
import os
from functools import partial

import torch

from ..utils.table import markdown_table
from .causal import image_steps
from .erf_section import erf_section
from .models import assert_matched, build_image_model, build_seq_model, match_width, param_count
from .report import bar_groups, curves, mean_curve, pm, write_csv, write_json, write_report
from .runner import compare, mean_std, run_group, values
from .tasks import CopyTask, ImageTask, NextPixelTask, PixelSeqTask

IMAGE_NAMES = dict(mambaout="MambaOut (Gated CNN)", mamba="Mamba (Gated CNN + SSM)", vit="ViT")
SEQ_NAMES = dict(gated_cnn="Gated CNN (causal conv1d)", ssm="Gated CNN + SSM (mamba1d)")


def _meta_params(build) -> int:
    with torch.device("meta"):
        return param_count(build())


def _image_cells(cfg: dict, img_size: int):
    specs = cfg["models"]
    target_build = partial(build_image_model, specs["mamba"], None, False, img_size)
    target = _meta_params(target_build)
    cells = [dict(label="mamba", model="mamba", variant="images", params=target, build=target_build, width=None)]
    for key in ("mambaout", "vit"):
        spec = specs[key]
        if key == "vit":  # token width, a multiple of the head count
            m = match_width(
                lambda w, s=spec: build_image_model(s, w, False, img_size),
                target,
                spec["dim"],
                spec.get("num_heads", 1),
            )
        else:  # every stage width scaled by one factor (0.5 .. 2, steps of 0.005)
            m = match_width(
                lambda w, s=spec: build_image_model(s, w, False, img_size),
                target,
                candidates=[k / 200 for k in range(100, 401)],
            )
        cells.append(
            dict(
                label=key,
                model=key,
                variant="images",
                params=m["params"],
                width=m["width"],
                build=partial(build_image_model, spec, m["width"], False, img_size),
            )
        )
    order = {"mambaout": 0, "mamba": 1, "vit": 2}
    return sorted(cells, key=lambda c: order[c["label"]])


def _seq_cells(spec: dict, num_outputs: int, vocab: int, readout: str):
    target_build = partial(build_seq_model, spec, "ssm", None, num_outputs, vocab, readout)
    target = _meta_params(target_build)
    m = match_width(lambda w: build_seq_model(spec, "gated_cnn", w, num_outputs, vocab, readout), target, spec["dim"])
    return [
        dict(
            label="gated_cnn",
            model="gated_cnn",
            variant=readout,
            params=m["params"],
            width=m["width"],
            build=partial(build_seq_model, spec, "gated_cnn", m["width"], num_outputs, vocab, readout),
        ),
        dict(label="ssm", model="ssm", variant=readout, params=target, width=spec["dim"], build=target_build),
    ]


def _summ(rows, cells, metric, names, digits=2):
    out = []
    for c in cells:
        v = values(rows, c["label"], metric)
        out.append(
            dict(
                model=names.get(c["label"], c["label"]),
                width=_width(c),
                params=c["params"],
                result=pm(mean_std(v), digits),
                n=len(v),
            )
        )
    return out


def _se(cmp_: dict, digits: int = 2) -> str:
    se = cmp_["se"]
    return f" (SE {se:.{digits}f})" if se is not None else ""


def _width(c: dict) -> str:
    w = c.get("width")
    if w is None:
        return "preset"
    if isinstance(w, float):
        with torch.device("meta"):
            dims = list(c["build"]().dims)
        return f"x{w:.3f}: {dims}"
    return str(w)


def _ssm_verdict(claim: str, cmp_: dict, lower_is_better: bool = False, unit: str = "pt") -> dict:
    """``cmp_`` = compare(Gated CNN, SSM): 'b>a' means the SSM's metric is higher, a gain unless lower is
    better (bits per pixel), where it is a loss."""
    o = cmp_["outcome"]
    gain, loss = ("a>b", "b>a") if lower_is_better else ("b>a", "a>b")
    word = {
        gain: "supports",
        loss: "contradicts",
        "no clear difference": "not seen at this scale",
        "inconclusive": "inconclusive (fewer than 2 seeds)",
    }[o]
    note, digits = (" (lower is better)", 3) if lower_is_better else ("", 2)
    return dict(
        claim=claim,
        verdict=word,
        evidence=f"SSM − Gated CNN = {cmp_['diff']:+.{digits}f} {unit}{_se(cmp_, digits)}{note}",
    )


def _seq_part(
    group, cells, task, part_cfg, budget, metric, metric_label, ctx, seeds, optim, verdicts, claim, unit="pt", extra=()
):
    """A sequence part of the experiment: matched Gated CNN vs SSM stacks trained alike, compared, tabulated.
    Returns the part's record for results.json (plan, rows, compare, params_gap) and its Markdown table.
    ``task.lower_is_better`` flips the verdict; ``part_cfg['min_effect']`` is the smallest difference that
    counts (in the metric's unit; default 0.3); ``extra``: (metric, header) columns added to the table."""
    gap = assert_matched({c["label"]: c["params"] for c in cells})
    res = run_group(group, cells, task, seeds, image_steps(part_cfg, task), budget, ctx.device, optim)
    cmp_ = compare(
        values(res["rows"], "gated_cnn", metric),
        values(res["rows"], "ssm", metric),
        min_effect=part_cfg.get("min_effect", 0.3),
    )
    lower = getattr(task, "lower_is_better", False)
    verdicts.append(_ssm_verdict(claim, cmp_, lower, unit))
    rows = _summ(res["rows"], cells, metric, SEQ_NAMES, digits=3 if lower else 2)
    for r, c in zip(rows, cells):
        for m, _ in extra:
            r[m] = pm(mean_std(values(res["rows"], c["label"], m)))
    table = markdown_table(
        rows,
        ["model", "width", "params", "result"] + [m for m, _ in extra] + ["n"],
        ["model", "width", "params", metric_label] + [h for _, h in extra] + ["seeds"],
    )
    return dict(plan=res["plan"], rows=res["rows"], compare=cmp_, params_gap=gap), table


def _steps_text(part: dict) -> str:
    """'N steps[ (capped by the time budget)]; parameter gap G' for a part's report paragraph."""
    capped = " (capped by the time budget)" if part["plan"]["capped"] else ""
    return f"{part['plan']['steps']} steps{capped}; parameter gap {part['params_gap']:.1%}"


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("framing")
    seeds, optim = cfg["seeds"], cfg["optim"]
    if cfg.get("epochs") is not None:  # --epochs applies to every part
        for part in ("images", "pixels", "copy", "next_pixel"):
            cfg[part]["epochs"] = cfg["epochs"]
    budgets = cfg.get("budget_s") or {}
    d = cfg["data"]
    data = ctx.fashion(d.get("train_subset"), d.get("test_subset"))
    img_size = d.get("img_size", 32)
    body, verdicts, everything = [], [], {}

    # (a) images
    a_cfg = cfg["images"]
    task_a = ImageTask(data, d["batch_size"], img_size=img_size)
    cells_a = _image_cells(a_cfg, img_size)
    gap_a = assert_matched({c["label"]: c["params"] for c in cells_a})
    erf_n = a_cfg.get("erf_images") or 0  # ERF section: N real test images (0: no section)
    res_a = run_group(
        "framing-a",
        cells_a,
        task_a,
        seeds,
        image_steps(a_cfg, task_a),
        budgets.get("images"),
        ctx.device,
        optim,
        keep_seed=seeds[0] if erf_n else None,
    )
    trained_a = res_a.pop("models", {})  # seed seeds[0]'s trained models, for the ERF section
    mo, ma = values(res_a["rows"], "mambaout", "top1"), values(res_a["rows"], "mamba", "top1")
    cmp_a = compare(mo, ma)
    word = {
        "b>a": "contradicts",
        "a>b": "supports (MambaOut better)",
        "no clear difference": "supports",
        "inconclusive": "inconclusive (fewer than 2 seeds)",
    }[cmp_a["outcome"]]
    verdicts.append(
        dict(
            claim="No SSM gain on 2-D image classification (H1)",
            verdict=word,
            evidence=f"Mamba − MambaOut = {cmp_a['diff']:+.2f} pt{_se(cmp_a)} on Fashion-MNIST images",
        )
    )
    tab_a = _summ(res_a["rows"], cells_a, "top1", IMAGE_NAMES)
    body.append(
        "## (a) Fashion-MNIST as images (short, non-causal)\n\n"
        f"{len(data.train_y)} train / {len(data.test_y)} test images at {img_size}², batch {d['batch_size']}, "
        f"{res_a['plan']['steps']} steps per run{' (capped by the time budget)' if res_a['plan']['capped'] else ''}, "
        f"seeds {seeds}; parameter gap {gap_a:.1%} (≤ 5% asserted).\n\n"
        + markdown_table(
            tab_a, ["model", "width", "params", "result", "n"], ["model", "width", "params", "test top-1 (%)", "seeds"]
        )
    )
    everything["images"] = dict(plan=res_a["plan"], rows=res_a["rows"], compare=cmp_a, params_gap=gap_a)
    figures = ["framing.png", "framing_curves.png"]
    if erf_n:
        images = task_a.inputs(data.test_x[:erf_n])
        everything["erf"], erf_md = erf_section(
            cells_a,
            trained_a,
            images,
            seeds[0],
            ctx.device,
            IMAGE_NAMES,
            os.path.join(out, "erf.png"),
            stages=a_cfg.get("erf_stages", (0, -1)),
            npz_path=os.path.join(out, "erf_maps.npz"),
        )
        body.append(erf_md)
        figures.append("erf.png")
    del trained_a

    # (b) pixel sequence
    b_cfg = cfg["pixels"]
    task_b = PixelSeqTask(data, b_cfg["batch_size"], pool=b_cfg.get("pool", 1))
    cells_b = _seq_cells(b_cfg["model"], 10, 0, "last")
    part_b, table_b = _seq_part(
        "framing-b",
        cells_b,
        task_b,
        b_cfg,
        budgets.get("pixels"),
        "top1",
        "test top-1 (%)",
        ctx,
        seeds,
        optim,
        verdicts,
        f"SSM gain on a long causal task: pixel-sequence classification (L={task_b.length})",
    )
    body.append(
        f"## (b) Fashion-MNIST as a pixel sequence (L = {task_b.length}, causal, read out at the last step)\n\n"
        f"Stacks of {b_cfg['model']['depth']} GatedBlocks (expansion 2, all hidden channels mixed, SiLU gate), "
        f"conv kernel {b_cfg['model'].get('kernel_size', 4)}, batch {b_cfg['batch_size']}, "
        f"{_steps_text(part_b)}.\n\n" + table_b
    )
    everything["pixels"] = part_b

    # (c) selective copying
    c_cfg = cfg["copy"]
    task_c = CopyTask(
        c_cfg["length"],
        c_cfg["tokens"],
        c_cfg["vocab"],
        c_cfg["batch_size"],
        c_cfg["steps_per_epoch"],
        ctx.device,
        eval_size=c_cfg.get("eval_size", 1024),
    )
    cells_c = _seq_cells(c_cfg["model"], task_c.num_outputs, task_c.num_inputs, "all")
    part_c, table_c = _seq_part(
        "framing-c",
        cells_c,
        task_c,
        c_cfg,
        budgets.get("copy"),
        "acc",
        "copy accuracy (%)",
        ctx,
        seeds,
        optim,
        verdicts,
        f"SSM gain on a long causal task: selective copying (L={task_c.length})",
    )
    body.append(
        f"## (c) Selective copying (L = {task_c.length}, {task_c.k} tokens from a vocabulary of {task_c.vocab})\n\n"
        f"Chance: {100 / task_c.vocab:.1f}% per token. Batch {c_cfg['batch_size']}, {_steps_text(part_c)}. "
        f"Metric: token accuracy on the K output steps of {c_cfg.get('eval_size', 1024)} held-out sequences.\n\n"
        + table_c
    )
    everything["copy"] = part_c

    # (d) next-pixel prediction
    d_cfg = cfg["next_pixel"]
    task_d = NextPixelTask(
        data,
        d_cfg["batch_size"],
        levels=d_cfg["levels"],
        pool=d_cfg.get("pool", 1),
        eval_images=d_cfg.get("eval_images"),
    )
    cells_d = _seq_cells(d_cfg["model"], task_d.num_outputs, task_d.num_inputs, "all")
    part_d, table_d = _seq_part(
        "framing-d",
        cells_d,
        task_d,
        d_cfg,
        budgets.get("next_pixel"),
        "bpp",
        "test bits/pixel (lower is better)",
        ctx,
        seeds,
        optim,
        verdicts,
        f"SSM gain on a long causal task: next-pixel prediction (L={task_d.length})",
        unit="bits/pixel",
        extra=[("acc", "next-level accuracy (%)")],
    )
    md, kd = d_cfg["model"]["depth"], d_cfg["model"].get("kernel_size", 4)
    side = 28 // task_d.pool
    pooled = f" (average-pooled {task_d.pool}×{task_d.pool})" if task_d.pool > 1 else ""
    n_eval = len(data.test_y) if task_d.eval_images is None else min(task_d.eval_images, len(data.test_y))
    body.append(
        f"## (d) Next-pixel prediction (L = {task_d.length}, {task_d.levels} grey levels, autoregressive)\n\n"
        f"Each {side}×{side} image{pooled} "
        f"is a raster sequence of levels floor(v/256·{task_d.levels}); the model reads a start token and levels "
        f"0..t−1 and predicts level t at every step. A uniform guess costs {math.log2(task_d.levels):.3g} bits/pixel. "
        f"The conv stack sees {md * (kd - 1)} pixels back (depth {md} × (kernel {kd} − 1)); the pixel above is "
        f"{side} back. Batch {d_cfg['batch_size']}, {_steps_text(part_d)}. "
        f"Metric: negative log-likelihood on {n_eval} test images, in bits per pixel (lower is better).\n\n" + table_d
    )
    everything["next_pixel"] = part_d

    panels = [
        {"images": {IMAGE_NAMES[c["label"]]: values(res_a["rows"], c["label"], "top1") for c in cells_a}},
        {
            f"pixels L={task_b.length}": {
                SEQ_NAMES[c["label"]]: values(part_b["rows"], c["label"], "top1") for c in cells_b
            }
        },
        {
            f"copy L={task_c.length}": {
                SEQ_NAMES[c["label"]]: values(part_c["rows"], c["label"], "acc") for c in cells_c
            }
        },
        {
            f"next pixel L={task_d.length}": {
                SEQ_NAMES[c["label"]]: values(part_d["rows"], c["label"], "bpp") for c in cells_d
            }
        },
    ]
    bar_groups(
        {},
        os.path.join(out, "framing.png"),
        ["test top-1 (%)", "test top-1 (%)", "copy accuracy (%)", "test bits/pixel (lower is better)"],
        title="one dataset, two framings, and two long causal tasks",
        panels=panels,
        panel_titles=["(a) images", "(b) pixel sequence", "(c) selective copying", "(d) next-pixel prediction"],
    )
    runs = {}
    for key, res, cells in (
        ("a", res_a, cells_a),
        ("b", part_b, cells_b),
        ("c", part_c, cells_c),
        ("d", part_d, cells_d),
    ):
        for c in cells:
            runs[f"({key}) {c['label']}"] = mean_curve(
                [r["curve"] for r in res["rows"] if r["label"] == c["label"] and "curve" in r]
            )
    curves(runs, os.path.join(out, "framing_curves.png"), title="training loss (mean over seeds)")

    flat = [
        {k: v for k, v in r.items() if k != "curve"} for res in (res_a, part_b, part_c, part_d) for r in res["rows"]
    ]
    write_csv(
        flat,
        os.path.join(out, "runs.csv"),
        [
            "group",
            "label",
            "model",
            "variant",
            "params",
            "seed",
            "steps",
            "top1",
            "acc",
            "bpp",
            "loss",
            "train_s",
            "error",
        ],
    )
    write_json(dict(config=cfg, verdicts=verdicts, **everything), os.path.join(out, "results.json"))
    errors = [f"- {r['group']} {r['label']} seed {r['seed']}: {r['error']}" for r in flat if "error" in r]
    if errors:
        body.append("## Failed runs\n\n" + "\n".join(errors))
    body[-1] += "\n\nFigures: " + ", ".join(f"`{f}`" for f in figures) + "."
    vtext = "\n".join(f"- **{v['claim']}**: {v['verdict']}. {v['evidence']}" for v in verdicts)
    write_report(os.path.join(out, "report.md"), "Lab: one dataset, two framings", body + ["## Verdicts\n\n" + vtext])
    return dict(
        name="framing",
        title="One dataset, two framings",
        sections=body,
        verdicts=verdicts,
        figures=figures,
        summary="",
    )
