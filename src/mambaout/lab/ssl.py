"""Experiment 5, ssl: does masked-image pre-training help when labels are scarce, and does the SSM change it?

Per seed: MambaOut (Gated CNN) and its SSM pair (the same net with the conv + SSM mixer; MambaOut's widths
scaled to match its parameter count within 5%) are pre-trained on Fashion-MNIST's training images without
labels, with SimMIM and with FCMAE (:mod:`mambaout.tasks.pretrain`: the same masks, decoders and losses as
``mambaout pretrain``). Each encoder then fine-tunes on 1% and 10% of the labels (a labelled subset drawn per
seed, shared by every model and start) for the same number of steps as the from-scratch baseline. Transfer:
scikit-learn's bundled digits (8x8, upsampled to 28x28, padded to 32x32), a logistic-regression linear probe on
the frozen encoder's pooled features and a short fine-tune, from each start. Budgets are in steps, never time.

Verdicts (:mod:`.verdicts`): every comparison is paired by seed (a seed fixes the labelled subset, the data
order and the initialisation of the head), with the preset's ``verdict`` margins, alpha and rules; Holm over
every comparison of the report (and over the whole lab under ``lab all``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.rng import seed_everything
from ..errors import LabError
from ..tasks.pretrain.decoders import MaskedImageModel, masked_loss
from ..tasks.pretrain.masking import random_mask
from ..utils.table import markdown_table
from ..weights import load_state_dict_into
from .core import with_verdict_rules
from .models import assert_matched, build_image_model, match_width, param_count
from .report import bar_groups, curves, mean_curve, pm, write_csv, write_json, write_report
from .runner import lr_at, make_optimizer, mean_std, train_cell
from .tasks import ImageTask
from .verdicts import comparison, comparisons_table, decide, rules_text

log = logging.getLogger("mambaout.lab")

NAMES = dict(mambaout="MambaOut (Gated CNN)", mamba="Mamba pair (Gated CNN + SSM)")
SHORT = dict(mambaout="MambaOut", mamba="Mamba pair (+ SSM)")  # figure labels
STARTS = ("scratch", "simmim", "fcmae")
LABEL = dict(scratch="scratch", simmim="SimMIM", fcmae="FCMAE")


def _meta_params(build) -> int:
    with torch.device("meta"):
        return param_count(build())


def matched_builds(specs: dict) -> dict:
    """{key: (build(), params)}: the SSM pair as specified, MambaOut's widths scaled to its parameter count."""
    target_build = partial(build_image_model, specs["mamba"], None)
    target = _meta_params(target_build)
    base = _meta_params(partial(build_image_model, specs["mambaout"], 1.0))
    guess = round(100 * math.sqrt(target / base))  # parameters grow about as width squared: search around it
    m = match_width(
        lambda w: build_image_model(specs["mambaout"], w),
        target,
        candidates=[k / 100 for k in range(max(50, guess - 6), guess + 7)],
    )
    builds = {"mambaout": (partial(build_image_model, specs["mambaout"], m["width"]), m["params"])}
    builds["mamba"] = (target_build, target)
    assert_matched({k: v[1] for k, v in builds.items()})
    return builds


def labelled(data, n: int, seed: int):
    """The first ``n`` of a seeded shuffle of the training images, with their labels (same test set)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(data.train_y), generator=g)[:n].to(data.train_y.device)
    return SimpleNamespace(
        train_x=data.train_x[idx], train_y=data.train_y[idx], test_x=data.test_x, test_y=data.test_y, device=data.device
    )


def digits(device, n_train: int, n_test: int | None = None, seed: int = 0):
    """scikit-learn's bundled 8x8 digits (1797 images, 0..16) -> 28x28 uint8 (bilinear), a fixed split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise LabError("lab ssl needs scikit-learn for its digits transfer: pip install 'mambaout[lab]'") from None
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 255).round().to(torch.uint8)
    y = torch.tensor(d.target, dtype=torch.long)
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, te = idx[:n_train], idx[n_train:][:n_test]
    return SimpleNamespace(
        train_x=x[tr, 0].to(device),
        train_y=y[tr].to(device),
        test_x=x[te, 0].to(device),
        test_y=y[te].to(device),
        device=device,
    )


def pretrain_cell(build, method: str, task: ImageTask, grid: int, p: dict, seed: int, device, optim: dict) -> dict:
    """Pre-train one encoder (labels unused) for ``p['steps']`` steps; returns its state dict (decoder
    included: :func:`mambaout.weights.load_state_dict_into` keeps the encoder), the loss curve and timings."""
    seed_everything(seed)
    encoder = build()
    encoder.head = None  # the classifier's keys minus head.*, as `mambaout pretrain` saves them
    model = MaskedImageModel(encoder, method, p.get("decoder_dim", 64)).to(device)
    lr, steps = p.get("lr", optim["lr"]), p["steps"]
    opt = make_optimizer(model, lr, optim.get("weight_decay", 0.05))
    gen = torch.Generator(device=device).manual_seed(seed)
    batches, every, curve, run, n = task.batches(seed), max(1, steps // 20), [], 0.0, 0
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, optim.get("warmup_frac", 0.05))
        x, _ = next(batches)
        mask = random_mask(x.shape[0], (grid, grid), p["mask_ratio"], device, gen)
        err, count = masked_loss(model, x, mask, p.get("norm_pix", True))
        loss = err / count
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), optim.get("clip_grad", 1.0) or math.inf)
        opt.step()
        run, n = run + loss.item(), n + 1
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append(dict(step=step + 1, train_loss=run / n))
            run, n = 0.0, 0
    return dict(
        state=model.state_dict(), curve=curve, final_loss=curve[-1]["train_loss"], train_s=time.perf_counter() - t0
    )


def from_start(build, state):
    """A fresh classifier (head initialised from the seed) with the pre-trained encoder loaded, if any."""
    model = build()
    if state is not None:
        load_state_dict_into(model, state, source="pre-trained encoder")
    return model


@torch.no_grad()
def linear_probe(model: nn.Module, data, batch: int = 500) -> float:
    """Test accuracy (%) of a logistic regression on the frozen model's pooled last-stage features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model.eval()
    prep = ImageTask(data, batch)

    def feats(xs):
        return torch.cat(
            [model.forward_features(prep.inputs(xs[i : i + batch])).mean((1, 2)) for i in range(0, len(xs), batch)]
        )

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(feats(data.train_x).cpu().numpy(), data.train_y.cpu().numpy())
    return 100.0 * float(clf.score(feats(data.test_x).cpu().numpy(), data.test_y.cpu().numpy()))


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("ssl")
    d, p, ft, dg, optim = cfg["data"], cfg["pretrain"], cfg["finetune"], cfg["digits"], cfg["optim"]
    seeds, fractions = cfg["seeds"], cfg["label_fractions"]
    if cfg.get("epochs") is not None:
        log.warning(
            "lab ssl counts steps, not epochs: --epochs is ignored (--set ssl:pretrain.steps=N, finetune.steps=N)"
        )
    size = d.get("img_size", 32)
    if not 0 < p["mask_ratio"] < 1:
        raise LabError(f"ssl: pretrain.mask_ratio must be in (0, 1), got {p['mask_ratio']}")
    if size % p["mask_patch"]:
        raise LabError(f"ssl: data.img_size {size} is not divisible by pretrain.mask_patch {p['mask_patch']}")
    data = ctx.fashion(d.get("pretrain_images"), d.get("test_subset"))
    unlabelled = ImageTask(data, p["batch_size"], img_size=size)
    builds = matched_builds(cfg["models"])
    for key, (build, _) in builds.items():
        with torch.device("meta"):
            div = build().size_divisor
        if p["mask_patch"] % div:
            raise LabError(f"ssl: pretrain.mask_patch {p['mask_patch']} is not a multiple of {key}'s stride {div}")
    transfer = digits(ctx.device, dg["train_images"], dg.get("test_images"))
    rows, pre_rows, probe_rows = [], [], []
    for seed in seeds:
        states = {(k, "scratch"): None for k in builds}
        for key, (build, _) in builds.items():
            for method in STARTS[1:]:
                r = pretrain_cell(build, method, unlabelled, size // p["mask_patch"], p, seed, ctx.device, optim)
                states[(key, method)] = r.pop("state")
                pre_rows.append(dict(model=key, method=method, seed=seed, steps=p["steps"], **r))
                log.info(
                    "  pretrain %s/%s seed %d: loss %.3f (%.1fs)", key, method, seed, r["final_loss"], r["train_s"]
                )
        for frac in fractions:
            n = max(10, round(frac * len(data.train_y)))
            task = ImageTask(labelled(data, n, seed), min(ft["batch_size"], n), img_size=size)
            for (key, start), state in states.items():
                r = train_cell(
                    partial(from_start, builds[key][0], state),
                    task,
                    ft["steps"],
                    seed,
                    ctx.device,
                    optim,
                    label=f"{key}/{start}/{frac:g}",
                )
                rows.append(dict(part="fashion", fraction=frac, labels=n, model=key, start=start, **r))
        dtask = ImageTask(transfer, dg["batch_size"], img_size=size)
        for (key, start), state in states.items():
            seed_everything(seed)
            probe = linear_probe(from_start(builds[key][0], state), transfer)
            r = train_cell(
                partial(from_start, builds[key][0], state),
                dtask,
                dg["steps"],
                seed,
                ctx.device,
                optim,
                label=f"digits {key}/{start}",
            )
            probe_rows.append(dict(model=key, start=start, seed=seed, probe=probe, finetune=r["top1"]))
    sizes = dict(
        train=len(data.train_y),
        test=len(data.test_y),
        digits_train=len(transfer.train_y),
        digits_test=len(transfer.test_y),
        chance_fashion=chance(data.test_y),
        chance_digits=chance(transfer.test_y),
    )
    return _report(cfg, out, {k: v[1] for k, v in builds.items()}, sizes, rows, pre_rows, probe_rows)


def chance(labels: torch.Tensor) -> float:
    """Accuracy (%) of always answering the test split's most frequent class."""
    return 100.0 * float(torch.bincount(labels.cpu()).max()) / max(1, len(labels))


def rerender(folder: str) -> dict:
    """Write ``folder``'s report.md, results.json and bar charts again from its results.json (no training; the
    pre-training curves figure is redrawn only when the rows hold curves). A run saved before the preset had a
    ``verdict`` section is judged by the preset's current one (saved with the config)."""
    import json

    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    cfg = with_verdict_rules("ssl", res["config"])
    return _report(cfg, folder, res["params"], res["sizes"], res["runs"], res["pretrain"], res["probes"])


def _by_seed(rows, metric: str, **where) -> dict:
    return {r["seed"]: r[metric] for r in rows if all(r.get(k) == v for k, v in where.items()) and "error" not in r}


def _gains(rows, model, start, frac) -> dict:
    """{seed: top-1 of ``start`` - scratch} (same seed, same labelled subset)."""
    base = _by_seed(rows, "top1", model=model, start="scratch", fraction=frac)
    own = _by_seed(rows, "top1", model=model, start=start, fraction=frac)
    return {k: own[k] - base[k] for k in own if k in base}


def _report(cfg, out, params: dict, sizes: dict, rows, pre_rows, probe_rows) -> dict:
    builds = params
    p, ft, dg, fractions = cfg["pretrain"], cfg["finetune"], cfg["digits"], cfg["label_fractions"]
    vc = cfg["verdict"]
    m, alpha = vc["margins"], vc["alpha"]
    table, gain_table, records, panels = [], [], {}, []
    help_keys, method_keys, ssm_keys, probe_keys = [], [], [], []

    def rec(key, a_name, b_name, a, b, margin, **extra):
        records[key] = comparison(key, a_name, b_name, a, b, margin, True, alpha, paired=True, **extra)
        return key

    for frac in fractions:
        panel = {}
        for key in builds:
            seeds = {s: _by_seed(rows, "top1", model=key, start=s, fraction=frac) for s in STARTS}
            vals = {s: list(v.values()) for s, v in seeds.items()}
            panel[SHORT[key]] = vals
            table.append(
                dict(fraction=f"{frac:.0%}", model=NAMES[key], **{s: pm(mean_std(v)) for s, v in vals.items()})
            )
            for s in STARTS[1:]:
                k = f"ssl:pretrain:{key}:{s}:{frac:g}"
                help_keys.append(
                    rec(k, "scratch", f"{SHORT[key]} {frac:.0%} {LABEL[s]}", seeds["scratch"], seeds[s], m["top1"])
                )
                gain_table.append(dict(fraction=f"{frac:.0%}", model=NAMES[key], start=s, key=k))
            method_keys.append(
                rec(
                    f"ssl:method:{key}:{frac:g}",
                    "SimMIM",
                    f"{SHORT[key]} {frac:.0%} FCMAE",
                    seeds["simmim"],
                    seeds["fcmae"],
                    m["top1"],
                )
            )
        panels.append(panel)
        for s in STARTS[1:]:
            ssm_keys.append(
                rec(
                    f"ssl:ssm_gain:{s}:{frac:g}",
                    "MambaOut's",
                    f"SSM pair's {LABEL[s]} gain at {frac:.0%}",
                    _gains(rows, "mambaout", s, frac),
                    _gains(rows, "mamba", s, frac),
                    m["top1"],
                )
            )
    probe_table, probe_panels = [], [{}, {}]
    for key in builds:
        pseeds = {s: _by_seed(probe_rows, "probe", model=key, start=s) for s in STARTS}
        pv = {s: list(v.values()) for s, v in pseeds.items()}
        fv = {s: list(_by_seed(probe_rows, "finetune", model=key, start=s).values()) for s in STARTS}
        probe_panels[0][SHORT[key]], probe_panels[1][SHORT[key]] = pv, fv
        probe_table.append(
            dict(
                model=NAMES[key],
                **{f"probe_{s}": pm(mean_std(pv[s])) for s in STARTS},
                **{f"ft_{s}": pm(mean_std(fv[s])) for s in STARTS},
            )
        )
        probe_keys += [
            rec(
                f"ssl:probe:{key}:{s}",
                "scratch",
                f"{SHORT[key]} probe {LABEL[s]}",
                pseeds["scratch"],
                pseeds[s],
                m["digits"],
            )
            for s in STARTS[1:]
        ]
    claims = [
        dict(
            claim="Masked pre-training (same fine-tuning steps) beats training from scratch with 1% / 10% of the labels",
            comparisons=help_keys,
        ),
        dict(claim="The SSM pair gains more from pre-training than MambaOut", comparisons=ssm_keys),
        dict(claim="FCMAE (sparse encoder) fine-tunes better than SimMIM", comparisons=method_keys),
        dict(
            claim="Pre-trained features transfer to digits (linear probe beats a random-init encoder)",
            comparisons=probe_keys,
        ),
    ]
    for c in claims:
        c.update(rule="gain", unit="pt", rule_text=vc["rules"]["gain"])
    verdicts = decide(claims, records, alpha)
    for g in gain_table:
        r = records[g.pop("key")]
        g.update(
            diff=r["diff"],
            ci="-" if not r["ci"] else f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]",
            p_diff="-" if r["p_diff_adj"] is None else f"{r['p_diff_adj']:.3g}",
            outcome=r["outcome"].replace("b better", "pre-training better").replace("a better", "scratch better"),
        )
    pre_table = [
        dict(
            model=NAMES[k],
            method=m,
            loss=pm(mean_std(list(_by_seed(pre_rows, "final_loss", model=k, method=m).values())), 3),
            train_s=mean_std(list(_by_seed(pre_rows, "train_s", model=k, method=m).values()))["mean"],
        )
        for k in builds
        for m in STARTS[1:]
    ]

    bar_groups(
        {},
        os.path.join(out, "ssl_finetune.png"),
        "Fashion-MNIST test top-1 (%)",
        title=f"fine-tuned from scratch / SimMIM / FCMAE ({ft['steps']} steps each, {len(cfg['seeds'])} seed(s))",
        panels=panels,
        panel_titles=[f"{f:.0%} of the labels" for f in fractions],
    )
    bar_groups(
        {},
        os.path.join(out, "ssl_digits.png"),
        ["digits test accuracy (%)"] * 2,
        title="transfer to scikit-learn digits",
        panels=probe_panels,
        panel_titles=["linear probe (frozen encoder)", f"fine-tuned ({dg['steps']} steps)"],
    )
    if all("curve" in r for r in pre_rows):
        curves(
            {
                f"{r_key}/{m}": mean_curve([r["curve"] for r in pre_rows if (r["model"], r["method"]) == (r_key, m)])
                for r_key in builds
                for m in STARTS[1:]
            },
            os.path.join(out, "ssl_pretrain_curves.png"),
            title="pre-training loss (mean over seeds)",
        )

    flat = [{k: v for k, v in r.items() if k != "curve"} for r in rows]
    write_csv(
        flat,
        os.path.join(out, "runs.csv"),
        ["part", "fraction", "labels", "model", "start", "seed", "steps", "top1", "loss", "train_s", "error"],
    )
    write_json(
        dict(
            config=cfg,
            params=params,
            sizes=sizes,
            summary=table,
            gains=gain_table,
            digits=probe_table,
            pretrain=pre_rows,
            verdicts=verdicts,
            comparisons=records,
            runs=flat,
            probes=probe_rows,
        ),
        os.path.join(out, "results.json"),
    )
    images_seen, n_train = p["steps"] * p["batch_size"], sizes["train"]
    body = [
        "## Setup\n\n"
        f"Pre-training: {n_train} Fashion-MNIST training images without labels, {p['steps']} steps of "
        f"{p['batch_size']} ({images_seen} images seen, {images_seen / n_train:.2f} epochs), mask ratio "
        f"{p['mask_ratio']} on {p['mask_patch']}px patches of the {cfg['data'].get('img_size', 32)}px image. "
        f"Fine-tuning: {', '.join(f'{f:.0%}' for f in fractions)} of the labels, {ft['steps']} steps of batch "
        f"{ft['batch_size']} for every start; test set: {sizes['test']} images (chance, the most frequent class: "
        f"{sizes['chance_fashion']:.1f}%). Digits: {sizes['digits_train']} training / {sizes['digits_test']} test "
        f"images (chance {sizes['chance_digits']:.1f}%), linear probe (logistic regression on pooled features) and "
        f"{dg['steps']} fine-tuning steps. AdamW lr {cfg['optim']['lr']}, seeds {cfg['seeds']}. Budgets are steps.\n\n"
        + markdown_table(
            [dict(model=NAMES[k], params=v) for k, v in params.items()],
            ["model", "params"],
            ["model", "params (classifier)"],
        ),
        "## Pre-training\n\n"
        + markdown_table(
            pre_table,
            ["model", "method", "loss", "train_s"],
            ["model", "method", "final train loss", "seconds (mean)"],
            digits=1,
        ),
        "## Fine-tuning on Fashion-MNIST (test top-1 %, mean ± std over seeds)\n\n"
        + markdown_table(table, ["fraction", "model", *STARTS], ["labels", "model", "scratch", "SimMIM", "FCMAE"]),
        "## Pre-trained − scratch (paired by seed)\n\n"
        + markdown_table(
            gain_table,
            ["fraction", "model", "start", "diff", "ci", "p_diff", "outcome"],
            ["labels", "model", "start", "gain (pt)", "95% CI", "diff p (Holm)", "outcome"],
        ),
        "## Transfer to digits (test accuracy %)\n\n"
        + markdown_table(
            probe_table,
            ["model", *[f"probe_{s}" for s in STARTS], *[f"ft_{s}" for s in STARTS]],
            [
                "model",
                "probe scratch",
                "probe SimMIM",
                "probe FCMAE",
                "fine-tune scratch",
                "fine-tune SimMIM",
                "fine-tune FCMAE",
            ],
        )
        + "\n\nFigures: `ssl_finetune.png`, `ssl_digits.png`, `ssl_pretrain_curves.png`.",
    ]
    body.insert(0, "## Verdict rules\n\n" + rules_text(vc))
    body.append(
        "## All comparisons (paired by seed)\n\n"
        + comparisons_table([records[k] for c in claims for k in c["comparisons"]])
    )
    write_report(
        os.path.join(out, "report.md"),
        "Lab: self-supervised pre-training under label scarcity",
        body
        + ["## Verdicts\n\n" + "\n".join(f"- **{x['claim']}**: {x['verdict']}. {x['evidence']}" for x in verdicts)],
    )
    return dict(
        name="ssl",
        title="Self-supervised pre-training under label scarcity",
        sections=body,
        verdicts=verdicts,
        figures=["ssl_finetune.png", "ssl_digits.png", "ssl_pretrain_curves.png"],
        summary="",
        claims=claims,
        records=records,
        verdict_cfg=vc,
    )
