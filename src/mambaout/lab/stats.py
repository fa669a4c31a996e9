"""Statistics for the lab's verdicts: Welch comparisons, confidence intervals, equivalence (TOST) and
Holm's correction. Pure Python (no SciPy): the Student t CDF is the regularised incomplete beta function
(continued fraction, Numerical Recipes' ``betacf`` scheme), its quantile a bisection on the CDF.

A comparison is ``b - a``: over independent seeds with :func:`welch` (unequal variances,
Welch-Satterthwaite degrees of freedom), or with :func:`paired_t` where both sides ran on the same seeds and a
seed fixes what they share (data subset, batch order): the one-sample t on the per-seed differences, n - 1 df.
Both return the same dict, so :func:`ci`, :func:`p_two_sided` and :func:`tost` serve either. TOST (two one-sided tests, Schuirmann 1987) with margin m rejects "|b - a| >= m":
its p is the larger of the two one-sided p-values, and p < alpha is equivalent to the (1 - 2 alpha) CI
lying inside (-m, m).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (df may be fractional: Welch)."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t (bisection on :func:`t_cdf`, |t| <= 1e6)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def _moments(x: Sequence[float]) -> tuple[int, float, float]:
    vals = [float(v) for v in x if v is not None and math.isfinite(v)]
    n = len(vals)
    m = sum(vals) / n if n else float("nan")
    var = sum((v - m) ** 2 for v in vals) / (n - 1) if n > 1 else float("nan")
    return n, m, var


def welch(a: Sequence[float], b: Sequence[float]) -> dict:
    """``b - a``: difference of means, its standard error and the Welch-Satterthwaite df (None with < 2
    values on a side)."""
    na, ma, va = _moments(a)
    nb, mb, vb = _moments(b)
    diff = mb - ma
    if na < 2 or nb < 2:
        return dict(diff=diff, se=None, df=None, n_a=na, n_b=nb)
    qa, qb = va / na, vb / nb
    se = math.sqrt(qa + qb)
    df = (qa + qb) ** 2 / (qa * qa / (na - 1) + qb * qb / (nb - 1)) if se > 0 else float(na + nb - 2)
    return dict(diff=diff, se=se, df=df, n_a=na, n_b=nb)


def paired_t(a: dict, b: dict) -> dict:
    """``b - a`` over the seeds both have ({seed: value}): the mean per-seed difference, its standard error
    sd / sqrt(n) and n - 1 df (se None with fewer than 2 common seeds)."""
    common = sorted(k for k in set(a) & set(b) if _finite(a[k]) and _finite(b[k]))
    n, diff, var = _moments([b[k] - a[k] for k in common])
    if n < 2:
        return dict(diff=diff, se=None, df=None, n_a=n, n_b=n)
    return dict(diff=diff, se=math.sqrt(var / n), df=float(n - 1), n_a=n, n_b=n)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def ci(w: dict, level: float = 0.95) -> tuple[float, float] | None:
    """Two-sided ``level`` confidence interval of ``b - a`` from a :func:`welch` result."""
    if w["se"] is None:
        return None
    half = t_ppf(0.5 + level / 2.0, w["df"]) * w["se"]
    return (w["diff"] - half, w["diff"] + half)


def _upper_tail(stat: float, df: float) -> float:
    return 1.0 - t_cdf(stat, df)


def _z(num: float, se: float) -> float:
    """num / se, with se = 0 (identical values on both sides) read as an exact result."""
    if se > 0:
        return num / se
    return math.copysign(math.inf, num) if num else 0.0


def p_two_sided(w: dict) -> float | None:
    """Welch's two-sided p for ``b - a != 0``."""
    if w["se"] is None:
        return None
    return min(1.0, 2.0 * _upper_tail(abs(_z(w["diff"], w["se"])), w["df"]))


def tost(w: dict, margin: float) -> float | None:
    """TOST p for equivalence within ``(-margin, margin)``: max of P(T >= (d + m)/se) under d = -m
    ("b - a <= -m") and P(T <= (d - m)/se) under d = +m."""
    if w["se"] is None:
        return None
    if margin <= 0:
        raise ValueError(f"equivalence margin must be positive, got {margin}")
    p_low = _upper_tail(_z(w["diff"] + margin, w["se"]), w["df"])
    p_high = t_cdf(_z(w["diff"] - margin, w["se"]), w["df"])
    return max(p_low, p_high)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (same order; None stays None and does not count)."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
