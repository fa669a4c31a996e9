"""Verdict rules of issue #17: outcomes from Holm-adjusted difference and equivalence tests."""

from __future__ import annotations

import pytest

from mambaout.lab.verdicts import adjust, comparison, decide, rules_text

SAME = ([80.0, 80.1, 79.9, 80.05, 79.95], [80.02, 80.12, 79.92, 80.07, 79.97])
GAIN = ([70.0, 70.5, 69.5, 70.2, 69.8], [75.0, 75.5, 74.5, 75.2, 74.8])
NOISY = ([70.0, 79.0, 61.0], [72.0, 60.0, 84.0])


def _rec(key, ab, margin=0.5, higher=True):
    return comparison(key, "a", "b", list(ab[0]), list(ab[1]), margin, higher)


@pytest.mark.parametrize(
    "ab, higher, outcome",
    [
        (SAME, True, "equivalent"),
        (GAIN, True, "b better"),
        (GAIN, False, "a better"),  # lower is better (bits per pixel): b's larger value is worse
        (NOISY, True, "inconclusive"),
    ],
)
def test_outcomes(ab, higher, outcome):
    (r,) = adjust([_rec("x", ab, higher=higher)])
    assert r["outcome"] == outcome and r["family"] == 2
    lo, hi = r["ci"]
    assert lo < r["diff"] < hi


def test_holm_makes_a_family_more_conservative():
    borderline = ([70.0, 70.6, 69.4], [71.0, 71.7, 70.4])
    alone = adjust([_rec("x", borderline)])[0]["p_diff_adj"]
    crowd = adjust([_rec("x", borderline)] + [_rec(f"n{i}", NOISY) for i in range(5)])[0]["p_diff_adj"]
    assert crowd > alone


def test_claim_rules():
    recs = {
        "same": _rec("same", SAME),
        "gain": _rec("gain", GAIN),
        "noisy": _rec("noisy", NOISY),
        "gain2": _rec("gain2", GAIN),
    }
    claims = [
        dict(claim="no gain", rule="no_gain", comparisons=["same"]),
        dict(claim="no gain?", rule="no_gain", comparisons=["gain"]),
        dict(claim="ssm", rule="ssm_gain", comparisons=["gain", "gain2"], full_reach=[True]),
        dict(claim="rf", rule="ssm_gain", comparisons=["gain", "same"], full_reach=[True]),
        dict(claim="short only", rule="ssm_gain", comparisons=["gain", "noisy"], full_reach=[True]),
        dict(claim="chance", rule="ssm_gain", comparisons=["gain"], trained=False),
        dict(claim="causal", rule="causal_hurts", comparisons=["gain", "same"]),
        dict(claim="causal none", rule="causal_hurts", comparisons=["same"]),
    ]
    got = {v["claim"]: v["verdict"] for v in decide(claims, recs)}
    assert got["no gain"] == "supports"
    assert got["no gain?"] == "contradicts"
    assert got["ssm"].startswith("supports")
    assert got["rf"].startswith("receptive field explains it")
    assert got["short only"].startswith("gain over the short conv only")
    assert got["chance"].startswith("did not train")
    assert got["causal"] == "partly supports"
    assert got["causal none"].startswith("contradicts (no effect")
    text = rules_text(dict(alpha=0.05, margins=dict(images=0.5), rules=dict(no_gain="equivalent or worse")))
    assert "images ±0.5" in text and "no_gain" in text and "Holm" in text


def test_paired_records_and_gain_rules():
    a = {0: 70.0, 1: 75.0, 2: 80.0, 3: 72.0, 4: 78.0}
    up = {k: v + 3.0 + 0.1 * k for k, v in a.items()}  # +3 pt on every seed, spread 10 pt across seeds
    flat = {k: v + 0.01 * (k - 2) for k, v in a.items()}
    recs = {
        "up": comparison("up", "a", "b", a, up, 0.5, paired=True),
        "up_welch": comparison("up_welch", "a", "b", a, up, 0.5),
        "flat": comparison("flat", "a", "b", a, flat, 0.5, paired=True),
        "down": comparison("down", "a", "b", up, a, 0.5, paired=True),
        "grow": comparison("grow", "a", "b", {k: 1.0 + 0.01 * k for k in a}, up, 0.5, paired=True),
    }
    claims = [
        dict(claim="gain", rule="gain", comparisons=["up"]),
        dict(claim="gain partly", rule="gain", comparisons=["up", "up_welch"]),
        dict(claim="gain none", rule="gain", comparisons=["flat"]),
        dict(claim="grows", rule="gain_grows", levels=1, comparisons=["up", "grow"]),
        dict(claim="level only", rule="gain_grows", levels=2, comparisons=["up", "flat"]),
        dict(claim="no level", rule="gain_grows", levels=1, comparisons=["down", "grow"]),
        dict(claim="blocked", rule="gain", comparisons=["up"], blocked="not seen (undertrained)"),
    ]
    got = {v["claim"]: v for v in decide(claims, recs)}
    assert recs["up"]["test"] == "paired t" and recs["up"]["outcome"] == "b better"
    assert recs["up_welch"]["test"] == "Welch" and recs["up_welch"]["outcome"] == "inconclusive"  # seeds' spread
    assert got["gain"]["verdict"] == "supports" and "paired, Holm" in got["gain"]["evidence"]
    assert got["gain partly"]["verdict"] == "partly supports"
    assert got["gain none"]["verdict"].startswith("contradicts (no effect")
    assert got["grows"]["verdict"] == "supports"
    assert got["level only"]["verdict"].startswith("partly supports")
    assert got["no level"]["verdict"] == "contradicts"
    assert got["blocked"]["verdict"] == "not seen (undertrained)"


def test_no_gain_with_a_no_mixer_control():
    """The control comes first: a mixer shown better than no mixer leaves the verdict as it is; a control
    without a difference marks it weak (the setting may not tell mixers apart)."""
    recs = {"mixer helps": _rec("mixer helps", GAIN), "mixer inert": _rec("mixer inert", SAME)}
    recs["same"] = _rec("same", SAME)
    claims = [
        dict(claim="sensitive", rule="no_gain", comparisons=["mixer helps", "same"], control=True),
        dict(claim="insensitive", rule="no_gain", comparisons=["mixer inert", "same"], control=True),
    ]
    got = {v["claim"]: v["verdict"] for v in decide(claims, recs)}
    assert got["sensitive"] == "supports"
    assert got["insensitive"].startswith("supports — weak: the token mixer itself is not shown to matter")
