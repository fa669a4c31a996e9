"""The hypothesis lab: small, repeatable experiments around the MambaOut paper's claims.

    mambaout lab long-seq|causal|framing|zoo|length|ssl|dense-long|all [--tiny | --mode cpu] [--seeds 3] [--epochs 2] [--out DIR] [--device cuda]

Each experiment writes ``OUT/<experiment>/`` with ``report.md``, ``results.json``, CSV files and PNG
figures; ``all`` runs every experiment and writes ``OUT/report.md`` with the claim-by-claim verdicts.
Presets: ``presets/lab/<experiment>.yaml`` (``tiny``, ``cpu`` and ``full`` sections).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import time

import torch

from .core import EXPERIMENTS, RUN_BY_ALL, LabContext, load_lab_preset, parse_seeds  # noqa: F401
from .report import write_json, write_report
from .verdicts import decide, rules_text

log = logging.getLogger("mambaout.lab")

_MODULES = {
    "long-seq": "long_seq",
    "causal": "causal",
    "framing": "framing",
    "zoo": "zoo_plot",
    "ssl": "ssl",
    "dense-long": "dense_long",
    "length": "length",
}


def run_experiment(ctx: LabContext, name: str) -> dict:
    cfg = ctx.config(name)
    setup_device(ctx)
    log.info("lab %s (%s preset) -> %s", name, cfg["mode"], os.path.join(ctx.out, name))
    t0 = time.time()
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    result = module.run(ctx, cfg)
    result["wall_s"] = time.time() - t0
    result["mode"] = cfg["mode"]
    result["seeds"] = cfg.get("seeds")
    log.info("lab %s done in %.1fs", name, result["wall_s"])
    return result


def environment(ctx: LabContext) -> dict:
    env = dict(torch=torch.__version__, python=platform.python_version(), device=str(ctx.device))
    if ctx.device.type == "cuda":
        env["card"] = torch.cuda.get_device_name(ctx.device)
    return env


def setup_device(ctx: LabContext) -> None:
    """TF32 matmuls/convs and cuDNN autotuning on CUDA (fixed shapes: many short runs)."""
    if ctx.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def combined_verdicts(results: list[dict]) -> tuple[list[dict], int]:
    """Every experiment's verdicts; those that come with claims and comparison records (issue #17) are decided
    again with Holm over all of them together. Returns (verdicts, number of hypotheses in that family)."""
    claims, records = [], {}
    for r in results:
        claims += r.get("claims") or []
        records.update(r.get("records") or {})
    if not claims:
        return [v for r in results for v in r["verdicts"]], 0
    alpha = next(r["verdict_cfg"].get("alpha", 0.05) for r in results if r.get("verdict_cfg"))
    redone = iter(decide(claims, records, alpha))
    out = []
    for r in results:
        out += [next(redone) for _ in r["claims"]] if r.get("claims") else list(r["verdicts"])
    family = sum((x["p_diff"] is not None) + (x["p_equiv"] is not None) for x in records.values())
    return out, family


def run_all(ctx: LabContext, names: list[str] = RUN_BY_ALL) -> dict:
    os.makedirs(ctx.out, exist_ok=True)
    t0 = time.time()
    results = [run_experiment(ctx, n) for n in names]
    wall = time.time() - t0
    env = environment(ctx)
    verdicts, family = combined_verdicts(results)
    head = [
        f"Mode: **{results[0]['mode'] if results else '-'}**; device: {env.get('card', env['device'])}; torch "
        f"{env['torch']}; wall time {wall:.0f} s; seeds {sorted({s for r in results for s in (r.get('seeds') or [])})}.",
        "## Claim by claim\n\n"
        + (
            f"Verdicts under the presets' rules (below), Holm-corrected over all {family} hypotheses of this "
            "report (every comparison's difference and equivalence test), so a verdict here can be more "
            "conservative than in its experiment's own report.\n\n"
            if family
            else ""
        )
        + "| claim | verdict at this scale | evidence |\n|---|---|---|\n"
        + "\n".join(f"| {v['claim']} | {v['verdict']} | {v['evidence']} |" for v in verdicts),
    ]
    rules = {}
    for r in results:
        for name, text in ((r.get("verdict_cfg") or {}).get("rules") or {}).items():
            rules.setdefault(name, text)
    if rules:
        margins = {k: m for r in results for k, m in ((r.get("verdict_cfg") or {}).get("margins") or {}).items()}
        alpha = next(r["verdict_cfg"].get("alpha", 0.05) for r in results if r.get("verdict_cfg"))
        head.append(
            rules_text(dict(alpha=alpha, margins=margins, rules=rules)).replace("Verdict rules", "### Verdict rules", 1)
        )
    sections = []
    for r in results:
        text = [f"## {r['title']} (`{r['name']}/`, {r['wall_s']:.0f} s)"]
        for s in r["sections"]:
            text.append(s.replace("\n## ", "\n### ").replace("## ", "### ", 1) if s.startswith("## ") else s)
        for fig in r["figures"]:
            text.append(f"![{fig}]({r['name']}/{fig})")
        if r.get("summary"):
            text.append(r["summary"])
        sections.append("\n\n".join(text))
    write_report(os.path.join(ctx.out, "report.md"), "MambaOut hypothesis lab", head + sections)
    write_json(
        dict(
            environment=env,
            wall_s=wall,
            verdicts=verdicts,
            experiments={r["name"]: dict(wall_s=r["wall_s"], mode=r["mode"], seeds=r.get("seeds")) for r in results},
        ),
        os.path.join(ctx.out, "summary.json"),
    )
    return dict(results=results, verdicts=verdicts, wall_s=wall, environment=env)
