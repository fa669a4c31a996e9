"""The lab's statistics against closed forms and hand-computed values (no SciPy needed)."""

from __future__ import annotations

import math

import pytest

from mambaout.lab.stats import betainc, ci, holm, p_two_sided, paired_t, t_cdf, t_ppf, tost, welch


def _cdf4(t):
    """Student t CDF with 4 df in closed form: 1/2 + (3/8) u (1 - t^2 / (12 (1 + t^2/4))), u = t / sqrt(1 + t^2/4)."""
    s = 1 + t * t / 4
    return 0.5 + 3 / 8 * (t / math.sqrt(s)) * (1 - t * t / (12 * s))


@pytest.mark.parametrize("t", [-3.0, -0.7, 0.0, 0.4, 1.5, 12.0])
def test_t_cdf_closed_forms(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert t_cdf(t, 4) == pytest.approx(_cdf4(t), abs=1e-12)


def test_t_ppf_and_betainc():
    assert t_ppf(0.975, 4) == pytest.approx(2.776445105, abs=1e-8)  # the familiar table value
    assert t_ppf(0.95, 1) == pytest.approx(math.tan(math.pi * 0.45), rel=1e-9)  # Cauchy quantile
    assert t_ppf(0.5, 7.3) == pytest.approx(0.0, abs=1e-6)
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert betainc(2, 1, 0.5) == pytest.approx(0.25)  # x^a for b = 1
    with pytest.raises(ValueError):
        t_ppf(1.0, 3)


def test_welch_ci_p_and_tost_by_hand():
    # a = 0, 1, 2 and b = 1, 2, 3: means 1 and 2, variances 1 and 1 -> diff 1, se = sqrt(1/3 + 1/3) = 0.816497,
    # Welch df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4 exactly.
    w = welch([0, 1, 2], [1, 2, 3])
    assert w["diff"] == 1 and w["se"] == pytest.approx(math.sqrt(2 / 3)) and w["df"] == pytest.approx(4)
    lo, hi = ci(w, 0.95)  # 1 -+ 2.776445 * 0.816497 = 1 -+ 2.266958
    assert lo == pytest.approx(-1.266958, abs=1e-6) and hi == pytest.approx(3.266958, abs=1e-6)
    t = 1 / math.sqrt(2 / 3)  # 1.224745
    assert p_two_sided(w) == pytest.approx(2 * (1 - _cdf4(t)), abs=1e-12)  # 0.287864
    assert p_two_sided(w) == pytest.approx(0.287864, abs=1e-6)
    # TOST, margin 2: max(P(T >= (1 + 2)/se), P(T <= (1 - 2)/se)) = F4(-1.224745) = 0.143932
    assert tost(w, 2.0) == pytest.approx(1 - _cdf4(t), abs=1e-12)
    assert tost(w, 2.0) == pytest.approx(0.143932, abs=1e-6)
    # a tight pair well inside a wide margin is equivalent; the same pair is not within a tiny margin
    tight = welch([10.0, 10.1, 9.9, 10.05, 9.95], [10.02, 10.12, 9.92, 10.07, 9.97])
    assert tost(tight, 0.5) < 0.001 and tost(tight, 0.01) > 0.5
    assert ci(welch([1.0], [2.0, 3.0])) is None and tost(welch([1.0], [2.0, 3.0]), 1.0) is None


def test_identical_values_are_exact():
    w = welch([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert p_two_sided(w) == 1.0 and tost(w, 0.1) == 0.0
    w = welch([1.0, 1.0], [2.0, 2.0])
    assert p_two_sided(w) == 0.0 and tost(w, 0.5) == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 x (4, 3, 2, 1) = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx([0.03, 0.06, 0.06, 0.02, None])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_paired_t_by_hand():
    # per-seed differences 1, 2, 1 (seed 3 only in a, seed 4 not finite: left out): mean 4/3, sd^2 = 1/3,
    # se = sqrt(1/3 / 3) = 1/3, df 2, t = 4.
    a = {0: 1.0, 1: 2.0, 2: 4.0, 3: 9.0, 4: float("nan")}
    b = {0: 2.0, 1: 4.0, 2: 5.0, 4: 1.0}
    w = paired_t(a, b)
    assert w["diff"] == pytest.approx(4 / 3) and w["se"] == pytest.approx(1 / 3) and w["df"] == 2
    assert w["n_a"] == w["n_b"] == 3

    def cdf2(t):
        return 0.5 + t / (2 * math.sqrt(2 + t * t))

    assert p_two_sided(w) == pytest.approx(2 * (1 - cdf2(4.0)), abs=1e-12)  # 0.057191
    assert p_two_sided(w) == pytest.approx(0.057191, abs=1e-6)
    lo, hi = ci(w)  # 4/3 -+ 4.302653 / 3
    assert lo == pytest.approx(-0.100884, abs=1e-6) and hi == pytest.approx(2.767551, abs=1e-6)
    # TOST, margin 2: max(P(T >= 10), P(T <= -2)) = F2(-2) = 0.5 - 1/sqrt(6) = 0.091752
    assert tost(w, 2.0) == pytest.approx(cdf2(-2.0), abs=1e-12)
    assert tost(w, 2.0) == pytest.approx(0.091752, abs=1e-6)
    # pairing removes the between-seed spread that Welch keeps: same data, a much smaller standard error
    assert welch([1.0, 2.0, 4.0], [2.0, 4.0, 5.0])["se"] > 3 * w["se"]
    assert paired_t({0: 1.0}, {0: 2.0, 1: 3.0})["se"] is None
