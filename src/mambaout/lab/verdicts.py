"""Verdicts under the issue #17 rules: comparisons with CIs and equivalence tests, Holm across a report.

A *comparison* is ``b - a`` over seeds (:func:`comparison`): the difference, its (1 - alpha) CI, the
two-sided p (Welch over independent seeds; the paired t where both sides share each seed's data) and the TOST p for equivalence within the margin the preset states before the run. A
*family* (every comparison of one report) is Holm-corrected over both p-values of every comparison
(:func:`adjust`); each comparison's outcome is then

- ``equivalent``: TOST rejects |b - a| >= margin (adjusted p < alpha);
- ``b better`` / ``a better``: Welch rejects b = a (adjusted p < alpha), in the metric's good direction;
- ``inconclusive``: neither.

A *claim* names a rule and its comparisons; :func:`decide` turns the outcomes into a verdict. The rule
texts live in the presets (``verdict.rules``) and are printed by the reports; :data:`RULES` is the code
that applies them.
"""

from __future__ import annotations

from .stats import ci, holm, p_two_sided, paired_t, tost, welch


def comparison(
    key: str,
    a_name: str,
    b_name: str,
    a: list[float] | dict,
    b: list[float] | dict,
    margin: float,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    paired: bool = False,
    **extra,
) -> dict:
    """``paired``: a and b are {seed: value} and the test is the paired t over their common seeds."""
    if paired:
        w = paired_t(a, b)
    else:
        w = welch(list(a.values()) if isinstance(a, dict) else a, list(b.values()) if isinstance(b, dict) else b)
    c95 = ci(w, 1 - alpha)
    return dict(
        key=key,
        a=a_name,
        b=b_name,
        diff=w["diff"],
        se=w["se"],
        df=w["df"],
        n_a=w["n_a"],
        n_b=w["n_b"],
        ci=list(c95) if c95 else None,
        margin=margin,
        alpha=alpha,
        higher_is_better=higher_is_better,
        test="paired t" if paired else "Welch",
        p_diff=p_two_sided(w),
        p_equiv=tost(w, margin),
        **extra,
    )


def adjust(records: list[dict], alpha: float | None = None) -> list[dict]:
    """Holm over the 2 p-values of every record (in place); sets ``p_diff_adj``, ``p_equiv_adj``,
    ``outcome`` and ``family`` (the number of hypotheses)."""
    ps = [r["p_diff"] for r in records] + [r["p_equiv"] for r in records]
    adj = holm(ps)
    m = sum(p is not None for p in ps)
    for i, r in enumerate(records):
        r["p_diff_adj"], r["p_equiv_adj"], r["family"] = adj[i], adj[len(records) + i], m
        a = alpha if alpha is not None else r["alpha"]
        if r["se"] is None:
            r["outcome"] = "inconclusive (fewer than 2 seeds)"
        elif r["p_equiv_adj"] < a:
            r["outcome"] = "equivalent"
        elif r["p_diff_adj"] < a:
            r["outcome"] = "b better" if (r["diff"] > 0) == r["higher_is_better"] else "a better"
        else:
            r["outcome"] = "inconclusive"
    return records


def _no_gain(outs: list[str], claim: dict) -> str:
    """Comparisons (non-SSM a, SSM b): supports when every SSM model is equivalent or worse. With
    ``claim['control']`` the first comparison is no token mixer (a) vs the non-SSM mixer (b): unless that mixer
    is shown better, the setting may not tell mixers apart and the verdict says so."""
    control, outs = (outs[0], outs[1:]) if claim.get("control") else (None, outs)
    if any(o == "b better" for o in outs):
        verdict = "contradicts"
    elif all(o in ("equivalent", "a better") for o in outs):
        verdict = "supports"
    else:
        verdict = "inconclusive (neither equivalence nor a difference shown)"
    if control is not None and control != "b better":
        verdict += " — weak: the token mixer itself is not shown to matter here (the no-mixer control)"
    return verdict


def _ssm_gain(outs: list[str], claim: dict) -> str:
    """First comparison: short Gated CNN (a) vs SSM (b); the rest: receptive-field baselines (a) vs SSM (b),
    ``claim['full_reach']`` flags the conv baselines that see the whole prefix."""
    if not claim.get("trained", True):
        return "did not train (every model at chance: no evidence either way)"
    first, rest = outs[0], outs[1:]
    if first in ("equivalent", "a better"):
        return "contradicts"
    if first != "b better":
        return "inconclusive (no clear gain over the Gated CNN)"
    if rest and all(o == "b better" for o in rest):
        return "supports (the SSM beats every receptive-field baseline)"
    reach = claim.get("full_reach") or [False] * len(rest)
    if any(o in ("equivalent", "a better") and f for o, f in zip(rest, reach)):
        return "receptive field explains it (a full-reach conv matches or beats the SSM)"
    return "gain over the short conv only (not separated from receptive field)"


def _b_better(outs: list[str], claim: dict) -> str:
    """b better than a in every comparison (causal_hurts: causal a, fully-visible b per model pair; gain: the
    baseline a, the start/method/model claimed better b)."""
    hurt, helped = outs.count("b better"), outs.count("a better")
    if hurt == len(outs):
        return "supports"
    if hurt and helped:
        return "mixed"
    if hurt:
        return "partly supports"
    if helped:
        return "contradicts"
    if all(o == "equivalent" for o in outs):
        return "contradicts (no effect: equivalent within the margin in every pair)"
    return "inconclusive (neither equivalence nor a difference shown)"


def _gain_grows(outs: list[str], claim: dict) -> str:
    """The first ``claim['levels']`` comparisons: short-range a vs SSM b at each L; the rest: the gap at a
    smaller L (a) vs at the next larger L (b), per seed."""
    k = claim["levels"]
    levels, growth = outs[:k], outs[k:]
    if "b better" in levels and "a better" in levels:
        return "mixed"
    if "b better" not in levels:
        if all(o in ("equivalent", "a better") for o in levels):
            return "contradicts"
        return "inconclusive (neither equivalence nor a difference shown)"
    if growth and all(o == "b better" for o in growth):
        return "supports"
    return "partly supports (the SSM is better at some L; a gap growing with L is not shown)"


RULES = {
    "no_gain": _no_gain,
    "ssm_gain": _ssm_gain,
    "causal_hurts": _b_better,
    "gain": _b_better,
    "gain_grows": _gain_grows,
}


def fmt(r: dict, digits: int = 2, unit: str = "") -> str:
    """'b − a = +x unit [lo, hi]; TOST ±m p=..; p=..' (Holm-adjusted p-values; 'paired' for a paired t)."""
    u = f" {unit}" if unit else ""
    how = "paired, " if r.get("test") == "paired t" else ""
    if r["se"] is None:
        return f"{r['b']} − {r['a']} = {r['diff']:+.{digits}f}{u} (one seed: no test)"
    lo, hi = r["ci"]
    lvl = round(100 * (1 - r["alpha"]))
    return (
        f"{r['b']} − {r['a']} = {r['diff']:+.{digits}f}{u} [{lvl}% CI {lo:+.{digits}f}, {hi:+.{digits}f}]; "
        f"TOST ±{r['margin']:g} p={r['p_equiv_adj']:.3g}, difference p={r['p_diff_adj']:.3g} ({how}Holm, "
        f"{r['family']} tests): {r['outcome']}"
    )


def decide(claims: list[dict], records: dict[str, dict], alpha: float = 0.05) -> list[dict]:
    """Holm over every record the claims use, then each claim's rule. Returns verdict dicts (claim,
    verdict, evidence, rule, comparisons)."""
    used = [records[k] for c in claims for k in c["comparisons"]]
    adjust(list({id(r): r for r in used}.values()), alpha)
    out = []
    for c in claims:
        recs = [records[k] for k in c["comparisons"]]
        # a claim whose models did not learn the task gets no verdict from its statistics
        verdict = c.get("blocked") or RULES[c["rule"]]([r["outcome"] for r in recs], c)
        digits = c.get("digits", 2)
        out.append(
            dict(
                claim=c["claim"],
                verdict=verdict,
                evidence="; ".join(fmt(r, digits, c.get("unit", "")) for r in recs)
                + (f" ({c['note']})" if c.get("note") else ""),
                rule=c["rule"],
                rule_text=c.get("rule_text", ""),
                comparisons=list(c["comparisons"]),
            )
        )
    return out


def comparisons_table(records: list[dict], digits: int = 2) -> str:
    """A Markdown table of (already adjusted) comparisons."""
    from ..utils.table import markdown_table

    rows = []
    for r in records:
        lo, hi = r["ci"] if r["ci"] else (None, None)
        rows.append(
            dict(
                cmp=f"{r['b']} − {r['a']}",
                diff=f"{r['diff']:+.{digits}f}",
                ci="-" if lo is None else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]",
                margin=f"±{r['margin']:g}",
                p_equiv="-" if r.get("p_equiv_adj") is None else f"{r['p_equiv_adj']:.3g}",
                p_diff="-" if r.get("p_diff_adj") is None else f"{r['p_diff_adj']:.3g}",
                outcome=r.get("outcome", "-"),
            )
        )
    return markdown_table(
        rows,
        ["cmp", "diff", "ci", "margin", "p_equiv", "p_diff", "outcome"],
        ["comparison (b − a)", "diff", "95% CI", "margin", "TOST p (Holm)", "diff p (Holm)", "outcome"],
    )


def rules_text(verdict_cfg: dict) -> str:
    """The preset's verdict rules and margins, as the report prints them."""
    lines = [
        f"Verdict rules (preset `verdict`, {verdict_cfg.get('when', 'fixed before the run')}): "
        f"alpha = {verdict_cfg.get('alpha', 0.05)}, "
        "Holm's correction over every comparison of the report (two hypotheses each: difference and "
        "equivalence); margins: "
        + ", ".join(f"{k} ±{v:g}" for k, v in (verdict_cfg.get("margins") or {}).items())
        + "."
    ]
    for name, text in (verdict_cfg.get("rules") or {}).items():
        lines.append(f"- **{name}**: {text}")
    return "\n".join(lines)
