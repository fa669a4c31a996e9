"""Experiment 3, framing: one dataset, two framings, plus two long causal (autoregressive) tasks.

(a) Fashion-MNIST as images (non-causal): MambaOut vs its SSM counterpart (the same net with the conv +
    SSM mixer, one raster scan) vs the VMamba-style four-direction counterpart (``scan: cross``) [vs a
    ViT]; every width is searched so the parameter counts match the one-direction SSM model's within 5%.
    Their effective receptive fields (``erf_section``), untrained and trained (the first seed).
(b) Fashion-MNIST as a pixel sequence (784 steps at full size; causal; the class is read at the last step).
(c) Selective copying (L >= 1024 at full size): K data tokens among blanks, emitted in order at the end.
(d) Next-pixel prediction (L = 784 at full size): the raster sequence quantised to Q grey levels, the level
    predicted at every step (strictly causal); metric: test bits per pixel, lower is better.
Sequence parts compare the same GatedBlock stack with five token mixers (issue #17): the Gated CNN
(causal conv1d, kernel k: sees depth x (k-1) tokens back), the receptive-field baselines of
:mod:`.baselines` (a long causal conv and a dilated causal conv stack that both see the whole prefix,
causal attention) and the SSM (``mamba1d``). Every model is matched to the SSM's parameter count.
All parts: a fixed step budget, a per-model lr from the preset's grid chosen on held-out training data,
the test split read once per final run; verdicts from :mod:`.verdicts` with the preset's margins.
"""

from __future__ import annotations

import math
import os
from functools import partial

import torch

from .baselines import reach_text, seq_reach
from .budget import budget_text
from .erf_section import erf_section
from .models import assert_matched, build_image_model, build_seq_model, match_width, param_count
from .protocol import cells_table, part_record, run_part
from .report import bar_groups, curves, mean_curve, pm, write_csv, write_json, write_report
from .runner import mean_std, values
from .tasks import CopyTask, ImageTask, NextPixelTask, PixelSeqTask
from .tuning import holdout
from .verdicts import comparison, comparisons_table, decide, rules_text

IMAGE_NAMES = dict(
    no_mixer="Gated CNN, no token mixer (control)",
    mambaout="MambaOut (Gated CNN)",
    mamba="Mamba (Gated CNN + SSM, 1 direction)",
    mamba4="Mamba (Gated CNN + SSM, 4 directions)",
    vit="ViT",
)
SEQ_NAMES = dict(
    gated_cnn="Gated CNN (causal conv1d)",
    long_conv="long causal conv",
    dilated_conv="dilated causal conv stack",
    attention="conv + causal attention",
    ssm="Gated CNN + SSM (mamba1d)",
)
SEQ_ORDER = ("gated_cnn", "long_conv", "dilated_conv", "attention", "ssm")
PARTS = ("images", "pixels", "copy", "next_pixel")


def _meta_params(build) -> int:
    with torch.device("meta"):
        return param_count(build())


def _image_cells(cfg: dict, img_size: int):
    """Every image model of ``cfg['models']``, widths matched to the one-direction SSM model ('mamba')."""
    specs = {k: v for k, v in cfg["models"].items() if v is not None}  # a model set to null is dropped
    target_build = partial(build_image_model, specs["mamba"], None, False, img_size)
    target = _meta_params(target_build)
    cells = []
    for key, spec in specs.items():
        if key == "mamba":
            cells.append(dict(label=key, model=key, variant="images", params=target, build=target_build, width=None))
            continue
        if spec.get("kind") == "vit":  # token width, a multiple of the head count
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
        build = partial(build_image_model, spec, m["width"], False, img_size)
        cells.append(dict(label=key, model=key, variant="images", params=m["params"], width=m["width"], build=build))
    order = list(IMAGE_NAMES)
    return sorted(cells, key=lambda c: order.index(c["label"]) if c["label"] in order else len(order))


def _seq_cells(spec: dict, kinds, num_outputs: int, vocab: int, readout: str, length: int):
    """The SSM stack and every other ``kinds`` stack, widened or narrowed to the SSM's parameter count."""
    target_build = partial(build_seq_model, spec, "ssm", None, num_outputs, vocab, readout, length)
    target = _meta_params(target_build)
    cells = []
    for kind in sorted(kinds, key=SEQ_ORDER.index):
        sp = spec
        if kind == "ssm":
            m = dict(width=spec["dim"], params=target)
        elif kind == "long_conv" and not spec.get("long_kernel"):
            sp = _match_long_kernel(spec, target, num_outputs, vocab, readout, length)
            m = dict(
                width=sp["dim"],
                params=_meta_params(partial(build_seq_model, sp, kind, None, num_outputs, vocab, readout, length)),
            )
        else:
            m = match_width(
                lambda w, k=kind: build_seq_model(spec, k, w, num_outputs, vocab, readout, length),
                target,
                spec["dim"],
                span=3.0,
            )
        cells.append(
            dict(
                label=kind,
                model=kind,
                variant=readout,
                params=m["params"],
                width=m["width"],
                reach=seq_reach(kind, sp, length),
                build=partial(build_seq_model, sp, kind, m["width"], num_outputs, vocab, readout, length),
            )
        )
    return cells


def _match_long_kernel(spec: dict, target: int, num_outputs: int, vocab: int, readout: str, length: int) -> dict:
    """The long conv's (width, kernel) closest to ``target`` parameters with a kernel at least long enough to
    see the whole prefix: each extra tap adds 2 x width x depth parameters (fine-grained), so the width is
    chosen first and the kernel lengthened to fill the gap (the reach only grows)."""
    from .baselines import long_kernel_for

    k0 = long_kernel_for(length, spec["depth"])
    best = None
    for w in range(max(2, spec["dim"] // 3), 3 * spec["dim"] + 1):
        s0, s1 = dict(spec, dim=w, long_kernel=k0), dict(spec, dim=w, long_kernel=k0 + 1)
        p0 = _meta_params(partial(build_seq_model, s0, "long_conv", None, num_outputs, vocab, readout, length))
        if p0 > target * 1.05:
            break
        tap = _meta_params(partial(build_seq_model, s1, "long_conv", None, num_outputs, vocab, readout, length)) - p0
        k = k0 + max(0, round((target - p0) / tap))
        p = p0 + (k - k0) * tap
        if best is None or abs(p - target) < abs(best[2] - target):
            best = (w, k, p)
    if best is None:
        from ..errors import LabError

        raise LabError(f"a long conv seeing {length - 1} tokens back has more than {target} parameters")
    return dict(spec, dim=best[0], long_kernel=best[1])


def _width(c: dict) -> str:
    w = c.get("width")
    if w is None:
        return "preset"
    if isinstance(w, float):
        with torch.device("meta"):
            dims = list(c["build"]().dims)
        return f"x{w:.3f}: {dims}"
    return str(w)


def _stage1_text(cells: list[dict], spec: dict, img_size: int) -> str:
    """L/6D at stage 1 of the hierarchical image models: the lab's own 'long sequence' criterion."""
    tokens = (img_size // spec.get("stem_stride", 4)) ** 2
    parts, ratios = [], []
    for c in cells:
        with torch.device("meta"):
            dims = getattr(c["build"](), "dims", None)
        if not dims:  # isotropic models (ViT): no stage 1
            continue
        d0 = list(dims)[0]
        ratios.append(tokens / (6 * d0))
        parts.append(f"{IMAGE_NAMES.get(c['label'], c['label'])} {tokens}/(6·{d0}) = {ratios[-1]:.2f}")
    if not parts:
        return ""
    tail = (
        "above 1, so by the lab's own criterion (L > 6D) stage 1 is **not** a short sequence; the 'short 2-D' "
        "framing holds from stage 2 on (4x fewer tokens, wider channels)."
        if max(ratios) > 1
        else "all at most 1, so every stage is a short sequence by the lab's criterion (L ≤ 6D)."
    )
    return f"Stage 1 has L = {tokens} tokens; L/6D: " + "; ".join(parts) + f" — {tail}"


def _seq_part(key, title, task, val_task, part_cfg, num_outputs, vocab, readout, ctx, seeds, optim, tune, v):
    """One sequence part: matched stacks, tuned, trained, costed; comparisons SSM vs every other stack."""
    kinds = part_cfg.get("models") or list(SEQ_ORDER)
    if "ssm" not in kinds or "gated_cnn" not in kinds:
        from ..errors import LabError

        raise LabError(f"framing {key}: models must include gated_cnn and ssm, got {kinds}")
    cells = _seq_cells(part_cfg["model"], kinds, num_outputs, vocab, readout, task.length)
    gap = assert_matched({c["label"]: c["params"] for c in cells})
    sample = next(iter(task.eval_batches(1))) if hasattr(task, "eval_batches") else task._eval[0]
    seeds = part_cfg.get("seeds") or seeds  # a part may run fewer seeds (the CPU preset's costly SSM parts)
    res = run_part(f"framing-{key}", cells, task, val_task, part_cfg, seeds, ctx.device, optim, tune, sample[0])
    lower = getattr(task, "lower_is_better", False)
    metric, margin = task.metric, v["margins"][key]
    ssm = values(res["rows"], "ssm", metric)
    records, comps = {}, []
    for c in cells:
        if c["label"] == "ssm":
            continue
        rk = f"framing:{key}:{c['label']}"
        records[rk] = comparison(
            rk,
            SEQ_NAMES[c["label"]],
            "SSM",
            values(res["rows"], c["label"], metric),
            ssm,
            margin,
            not lower,
            v["alpha"],
        )
        comps.append(rk)
    chance = getattr(task, "chance", None)
    means = [mean_std(values(res["rows"], c["label"], metric))["mean"] for c in cells]
    trained = chance is None or any(m > chance + margin for m in means if math.isfinite(m))
    claim = dict(
        claim=title,
        rule="ssm_gain",
        comparisons=comps,
        full_reach=[
            c["label"] in ("long_conv", "dilated_conv") and (c["reach"] or 0) >= task.length - 1
            for c in cells
            if c["label"] not in ("ssm", "gated_cnn")
        ],
        trained=trained,
        digits=3 if lower else 2,
        unit="bits/pixel" if metric == "bpp" else "pt",
        rule_text=v["rules"]["ssm_gain"],
        note=None if trained else f"every model within {margin:g} of chance ({chance:.1f})",
    )
    table = cells_table(
        res,
        cells,
        metric,
        {"top1": "test top-1 (%)", "acc": "copy accuracy (%)", "bpp": "test bits/pixel (lower is better)"}[metric],
        SEQ_NAMES,
        digits=3 if lower else 2,
        extra=[
            ("width", "width", lambda c: str(c["width"])),
            ("reach", "reach (tokens back)", lambda c: reach_text(c["reach"], task.length)),
        ]
        + (
            [("acc", "next-level accuracy (%)", lambda c: pm(mean_std(values(res["rows"], c["label"], "acc"))))]
            if metric == "bpp"
            else []
        ),
    )
    part = dict(
        **part_record(res),
        rows=res["rows"],
        params_gap=gap,
        reach={c["label"]: c["reach"] for c in cells},
        length=task.length,
        comparisons=comps,
        tune_steps=res["tune_steps"],
    )
    return part, cells, table, records, claim


def _budget(part: dict, batch_size: int, tune: dict | None, n_val: int | None) -> str:
    grid = (tune or {}).get("grid") if part["tune_steps"] else None
    return budget_text(part["steps"], batch_size, part["tune_steps"], grid, n_val) + (
        f"; parameter gap {part['params_gap']:.1%} (≤ 5% asserted)"
    )


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("framing")
    seeds, optim, v = cfg["seeds"], cfg["optim"], cfg["verdict"]
    if cfg.get("epochs") is not None:  # --epochs applies to every part (steps = epochs x steps per epoch)
        for part in PARTS:
            if cfg.get(part):
                cfg[part]["epochs"] = cfg["epochs"]
                cfg[part].pop("steps", None)
    tune = cfg.get("tune") or {}
    d = cfg["data"]
    data = ctx.fashion(d.get("train_subset"), d.get("test_subset"))
    n_val = tune.get("val") if len(tune.get("grid") or []) > 1 else None
    val_data = holdout(data, n_val) if n_val else None
    img_size = d.get("img_size", 32)
    body, records, claims, everything, panels, curve_sets = [rules_text(v)], {}, [], {}, [], []
    body[0] = "## Verdict rules\n\n" + body[0]

    parts = list(cfg.get("parts") or PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        from ..errors import LabError

        raise LabError(f"framing: unknown parts {unknown}; known: {', '.join(PARTS)}")
    figures = ["framing.png", "framing_curves.png"]
    if "images" in parts:
        # (a) images
        a_cfg = cfg["images"]
        task_a = ImageTask(data, d["batch_size"], img_size=img_size)
        val_a = ImageTask(val_data, d["batch_size"], img_size=img_size) if val_data else None
        cells_a = _image_cells(a_cfg, img_size)
        gap_a = assert_matched({c["label"]: c["params"] for c in cells_a})
        erf_n = a_cfg.get("erf_images") or 0  # ERF section: N real test images (0: no section)
        res_a = run_part(
            "framing-a",
            cells_a,
            task_a,
            val_a,
            a_cfg,
            seeds,
            ctx.device,
            optim,
            tune,
            task_a.inputs(data.test_x[:1]),
            keep_seed=seeds[0] if erf_n else None,
        )
        res_a["params_gap"] = gap_a
        trained_a = res_a.pop("models", {})
        mo = values(res_a["rows"], "mambaout", "top1")
        comps_a = []
        if any(c["label"] == "no_mixer" for c in cells_a):  # first: does the token mixer matter at all here?
            records["framing:images:control"] = comparison(
                "framing:images:control",
                IMAGE_NAMES["no_mixer"],
                "MambaOut",
                values(res_a["rows"], "no_mixer", "top1"),
                mo,
                v["margins"]["images"],
                True,
                v["alpha"],
            )
            comps_a.append("framing:images:control")
        for c in cells_a:
            if c["label"].startswith("mamba") and c["label"] != "mambaout":
                rk = f"framing:images:{c['label']}"
                records[rk] = comparison(
                    rk,
                    "MambaOut",
                    IMAGE_NAMES[c["label"]],
                    mo,
                    values(res_a["rows"], c["label"], "top1"),
                    v["margins"]["images"],
                    True,
                    v["alpha"],
                )
                comps_a.append(rk)
        claims.append(
            dict(
                claim="No SSM gain on 2-D image classification (H1)",
                rule="no_gain",
                comparisons=comps_a,
                control="framing:images:control" in comps_a,
                unit="pt",
                rule_text=v["rules"]["no_gain"],
            )
        )
        spec0 = a_cfg["models"]["mamba"]
        body.append(
            "## (a) Fashion-MNIST as images (short, non-causal)\n\n"
            f"{len(data.train_y)} train / {len(data.test_y)} test images at {img_size}²; "
            f"{_budget(res_a, d['batch_size'], tune, n_val)}; seeds {seeds}.\n\n"
            + cells_table(res_a, cells_a, "top1", "test top-1 (%)", IMAGE_NAMES, extra=[("width", "width", _width)])
            + "\n\n"
            + _stage1_text(cells_a, spec0, img_size)
        )
        everything["images"] = dict(
            **part_record(res_a),
            rows=res_a["rows"],
            params_gap=gap_a,
            comparisons=comps_a,
        )
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
        panels.append(
            (
                "(a) images",
                "test top-1 (%)",
                {"images": {IMAGE_NAMES[c["label"]]: values(res_a["rows"], c["label"], "top1") for c in cells_a}},
            )
        )
        curve_sets.append(("a", res_a, cells_a))

    def seq(key, title, task, val_task, pcfg, n_out, vocab, readout, intro, unit):
        part, cells, table, recs, claim = _seq_part(
            key, title, task, val_task, pcfg, n_out, vocab, readout, ctx, seeds, optim, tune, v
        )
        records.update(recs)
        claims.append(claim)
        everything[key] = part
        body.append(
            intro
            + f" {_budget(part, pcfg['batch_size'], tune, None if key == 'copy' else n_val)}; seeds "
            + f"{pcfg.get('seeds') or seeds}.\n\n"
            + table
        )
        metric = task.metric
        panels.append(
            (
                f"({'bcd'[['pixels', 'copy', 'next_pixel'].index(key)]}) {key.replace('_', '-')} L={task.length}",
                unit,
                {key: {SEQ_NAMES[c["label"]]: values(part["rows"], c["label"], metric) for c in cells}},
            )
        )
        curve_sets.append(("bcd"[["pixels", "copy", "next_pixel"].index(key)], part, cells))

    b_cfg = cfg.get("pixels") if "pixels" in parts else None
    if b_cfg:
        pool = b_cfg.get("pool", 1)
        task_b = PixelSeqTask(data, b_cfg["batch_size"], pool=pool)
        val_b = PixelSeqTask(val_data, b_cfg["batch_size"], pool=pool) if val_data else None
        m = b_cfg["model"]
        seq(
            "pixels",
            f"SSM gain on a long causal task: pixel-sequence classification (L={task_b.length})",
            task_b,
            val_b,
            b_cfg,
            10,
            0,
            "last",
            f"## (b) Fashion-MNIST as a pixel sequence (L = {task_b.length}, causal, read out at the last step)\n\n"
            f"Stacks of {m['depth']} GatedBlocks (expansion 2, all hidden channels mixed, SiLU gate); the "
            f"Gated CNN's conv kernel is {m.get('kernel_size', 4)}.",
            "test top-1 (%)",
        )

    c_cfg = cfg.get("copy") if "copy" in parts else None
    if c_cfg:
        mk = partial(
            CopyTask,
            c_cfg["length"],
            c_cfg["tokens"],
            c_cfg["vocab"],
            c_cfg["batch_size"],
            c_cfg["steps_per_epoch"],
            ctx.device,
        )
        task_c = mk(eval_size=c_cfg.get("eval_size", 1024))
        val_c = mk(eval_size=c_cfg.get("eval_size", 1024), eval_seed=777) if n_val else None
        seq(
            "copy",
            f"SSM gain on a long causal task: selective copying (L={task_c.length})",
            task_c,
            val_c,
            c_cfg,
            task_c.num_outputs,
            task_c.num_inputs,
            "all",
            f"## (c) Selective copying (L = {task_c.length}, {task_c.k} tokens from a vocabulary of {task_c.vocab})\n\n"
            f"Chance: {task_c.chance:.1f}% per token; a part where every model stays within the margin of chance "
            f'reads "did not train". Metric: token accuracy on the K output steps of '
            f"{c_cfg.get('eval_size', 1024)} held-out sequences (validation: another {c_cfg.get('eval_size', 1024)}).",
            "copy accuracy (%)",
        )
    else:
        body.append(
            "## (c) Selective copying\n\nNot run in this mode (`parts` leaves it out): at the step budgets a "
            "CPU allows, every model stays at chance (earlier runs), which is no evidence either way."
        )

    d_cfg = cfg.get("next_pixel") if "next_pixel" in parts else None
    if d_cfg:
        kw = dict(levels=d_cfg["levels"], pool=d_cfg.get("pool", 1), eval_images=d_cfg.get("eval_images"))
        task_d = NextPixelTask(data, d_cfg["batch_size"], **kw)
        val_d = NextPixelTask(val_data, d_cfg["batch_size"], **kw) if val_data else None
        md, kd = d_cfg["model"]["depth"], d_cfg["model"].get("kernel_size", 4)
        side = 28 // task_d.pool
        pooled = f" (average-pooled {task_d.pool}×{task_d.pool})" if task_d.pool > 1 else ""
        n_eval = len(data.test_y) if task_d.eval_images is None else min(task_d.eval_images, len(data.test_y))
        seq(
            "next_pixel",
            f"SSM gain on a long causal task: next-pixel prediction (L={task_d.length})",
            task_d,
            val_d,
            d_cfg,
            task_d.num_outputs,
            task_d.num_inputs,
            "all",
            f"## (d) Next-pixel prediction (L = {task_d.length}, {task_d.levels} grey levels, autoregressive)\n\n"
            f"Each {side}×{side} image{pooled} is a raster sequence of levels floor(v/256·{task_d.levels}); the "
            f"model reads a start token and levels 0..t−1 and predicts level t at every step. A uniform guess costs "
            f"{math.log2(task_d.levels):.3g} bits/pixel. The Gated CNN sees {md * (kd - 1)} pixels back (depth {md} "
            f"× (kernel {kd} − 1)); the pixel above is {side} back. Metric: negative log-likelihood on {n_eval} "
            f"test images, in bits per pixel (lower is better).",
            "test bits/pixel",
        )

    verdicts = decide(claims, records, v["alpha"])
    body.append(
        "## Comparisons (Holm-corrected over this report)\n\n"
        + comparisons_table([records[k] for c in claims for k in c["comparisons"]], digits=3)
    )
    bar_groups(
        {},
        os.path.join(out, "framing.png"),
        [p[1] for p in panels],
        title="one dataset, two framings, and long causal tasks",
        panels=[p[2] for p in panels],
        panel_titles=[p[0] for p in panels],
    )
    runs = {}
    for key, res, cells in curve_sets:
        for c in cells:
            runs[f"({key}) {c['label']}"] = mean_curve(
                [r["curve"] for r in res["rows"] if r["label"] == c["label"] and "curve" in r]
            )
    curves(runs, os.path.join(out, "framing_curves.png"), title="training loss (mean over seeds)")

    flat = [{k: v_ for k, v_ in r.items() if k != "curve"} for _, res, _ in curve_sets for r in res["rows"]]
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
            "lr",
            "steps",
            "top1",
            "acc",
            "bpp",
            "loss",
            "train_s",
            "error",
        ],
    )
    write_json(
        dict(config=cfg, verdicts=verdicts, comparisons=records, **everything), os.path.join(out, "results.json")
    )
    errors = [f"- {r['group']} {r['label']} seed {r['seed']}: {r['error']}" for r in flat if "error" in r]
    if errors:
        body.append("## Failed runs\n\n" + "\n".join(errors))
    body[-1] += "\n\nFigures: " + ", ".join(f"`{f}`" for f in figures) + "."
    vtext = "\n".join(f"- **{x['claim']}**: {x['verdict']}. {x['evidence']}" for x in verdicts)
    write_report(os.path.join(out, "report.md"), "Lab: one dataset, two framings", body + ["## Verdicts\n\n" + vtext])
    return dict(
        name="framing",
        title="One dataset, two framings",
        sections=body,
        verdicts=verdicts,
        figures=figures,
        summary="",
        claims=claims,
        records=records,
        verdict_cfg=v,
    )
