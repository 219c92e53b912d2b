"""Holdout and A/B lift: rates, absolute and relative lift, CIs, z and Welch tests, Holm correction, sample size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray, column, numeric_column


@dataclass(frozen=True)
class MetricLift:
    """One metric of one treatment group against the control group."""

    test: str  # "z" (two-proportion z-test, for 0/1 metrics) or "welch" (Welch's t-test)
    rate: float  # treatment mean (a conversion rate for 0/1 metrics)
    control_rate: float
    lift_abs: float
    lift_rel: float | None
    ci_low: float  # confidence interval of lift_abs
    ci_high: float
    statistic: float
    p_value: float
    p_value_holm: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """JSON shape: rate, lift_abs, lift_rel, ci_low, ci_high, statistic, p_value (+ test, holm, control)."""
        return {
            "rate": self.rate,
            "lift_abs": self.lift_abs,
            "lift_rel": self.lift_rel,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_holm": self.p_value_holm,
            "control_rate": self.control_rate,
            "test": self.test,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def two_proportion(x_t: float, n_t: int, x_c: float, n_c: int, confidence: float = 0.95) -> MetricLift:
    """Two-proportion z-test (pooled variance) and Wald interval for the difference of rates."""
    if n_t == 0 or n_c == 0:
        raise NotEnoughData("both groups need at least one member")
    p_t, p_c = x_t / n_t, x_c / n_c
    pooled = (x_t + x_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    diff = p_t - p_c
    z = diff / se0 if se0 > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    q = float(stats.norm.ppf(0.5 + confidence / 2))
    rel = diff / p_c if p_c else math.nan
    return MetricLift("z", p_t, p_c, diff, _finite(rel), diff - q * se, diff + q * se, z, p_value)


def welch(t_values: FloatArray, c_values: FloatArray, confidence: float = 0.95) -> MetricLift:
    """Welch's unequal-variance t-test and interval for the difference of means."""
    n_t, n_c = len(t_values), len(c_values)
    if n_t < 2 or n_c < 2:
        raise NotEnoughData("Welch's t-test needs at least two members in each group")
    m_t, m_c = float(t_values.mean()), float(c_values.mean())
    v_t, v_c = float(t_values.var(ddof=1)) / n_t, float(c_values.var(ddof=1)) / n_c
    se = math.sqrt(v_t + v_c)
    diff = m_t - m_c
    if se == 0:
        return MetricLift("welch", m_t, m_c, diff, _finite(diff / m_c if m_c else math.nan), diff, diff, 0.0, 1.0)
    df = (v_t + v_c) ** 2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))
    t = diff / se
    p_value = float(2 * stats.t.sf(abs(t), df))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    rel = diff / m_c if m_c else math.nan
    return MetricLift("welch", m_t, m_c, diff, _finite(rel), diff - q * se, diff + q * se, t, p_value)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def is_binary(values: FloatArray) -> bool:
    """True when every value is 0 or 1 (a conversion flag)."""
    return bool(np.all((values == 0) | (values == 1)))


def lift_report(
    groups: FloatArray | list[str],
    metrics: dict[str, FloatArray],
    control: str,
    confidence: float = 0.95,
    amounts: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Lift of every non-control group for every metric; Holm-adjusted p-values across the treatment groups.
    A metric of only 0/1 values is a rate (z-test) unless named in AMOUNTS (Welch's t-test)."""
    labels = np.asarray([str(g) for g in groups], dtype=object)
    names = sorted(set(labels.tolist()))
    if control not in names:
        raise InvalidInput(f"control group {control!r} is not in the data; groups are {', '.join(names)}")
    treatments = [g for g in names if g != control]
    if not treatments:
        raise InvalidInput("the data has only the control group")
    if not 0 < confidence < 1:
        raise InvalidInput("confidence must be between 0 and 1")
    c_mask = labels == control
    out: list[dict[str, Any]] = [{"group": g, "n": int(np.sum(labels == g)), "metrics": {}} for g in treatments]
    for metric, values in metrics.items():
        binary = metric not in amounts and is_binary(values)
        results: list[MetricLift] = []
        for g in treatments:
            t_mask = labels == g
            if binary:
                res = two_proportion(
                    float(values[t_mask].sum()),
                    int(t_mask.sum()),
                    float(values[c_mask].sum()),
                    int(c_mask.sum()),
                    confidence,
                )
            else:
                res = welch(values[t_mask], values[c_mask], confidence)
            results.append(res)
        adjusted = holm([r.p_value for r in results])
        for entry, res, adj in zip(out, results, adjusted, strict=True):
            entry["metrics"][metric] = MetricLift(**{**res.__dict__, "p_value_holm": adj}).as_dict()
    return {
        "control": control,
        "control_n": int(c_mask.sum()),
        "confidence": confidence,
        "treatments": out,
    }


def lift_from_table(
    table: pa.Table, group_col: str, control: str, metrics: list[str], confidence: float = 0.95
) -> dict[str, Any]:
    """Lift from a table with a group column and one column per metric (0/1 flags or amounts)."""
    if not metrics:
        raise InvalidInput("name at least one metric column")
    groups = column(table, group_col)
    if groups.null_count:
        raise InvalidInput(f"column {group_col!r} has empty values")
    labels = pc.cast(groups, pa.string()).to_pylist()
    return lift_report(labels, {m: numeric_column(table, m) for m in metrics}, control, confidence)


def sample_size_proportions(baseline: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Members per group to detect an absolute change EFFECT of a BASELINE rate (two-sided z-test)."""
    p1, p2 = baseline, baseline + effect
    if not (0 < p1 < 1 and 0 < p2 < 1) or effect == 0:
        raise InvalidInput("baseline and baseline + effect must be rates strictly between 0 and 1, effect non-zero")
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    pbar = (p1 + p2) / 2
    num = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return math.ceil(num / effect**2)


def sample_size_means(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Members per group to detect a difference EFFECT of means with standard deviation SD (normal approximation)."""
    if sd <= 0 or effect == 0:
        raise InvalidInput("sd must be > 0 and effect non-zero")
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    return math.ceil(2 * (za + zb) ** 2 * sd**2 / effect**2)


def lift_from_counts(
    counts: dict[str, tuple[int, int]], control: str, metric: str = "converted", confidence: float = 0.95
) -> dict[str, Any]:
    """Lift from (members, conversions) per group — e.g. a journey against its holdout — in the lift_report shape."""
    if control not in counts:
        raise InvalidInput(f"control group {control!r} is not among {', '.join(sorted(counts))}")
    n_c, x_c = counts[control]
    treatments = sorted(g for g in counts if g != control)
    if not treatments:
        raise InvalidInput("there is no group besides the control group")
    results = []
    for g in treatments:
        n_t, x_t = counts[g]
        if n_t == 0 or n_c == 0:
            raise NotEnoughData(f"group {g if n_t == 0 else control!r} has no members yet")
        results.append(two_proportion(x_t, n_t, x_c, n_c, confidence))
    adjusted = holm([r.p_value for r in results])
    return {
        "control": control,
        "control_n": n_c,
        "confidence": confidence,
        "treatments": [
            {
                "group": g,
                "n": counts[g][0],
                "metrics": {metric: MetricLift(**{**r.__dict__, "p_value_holm": a}).as_dict()},
            }
            for g, r, a in zip(treatments, results, adjusted, strict=True)
        ],
    }


def stratified_lift(strata: list[tuple[int, int, int, int]], confidence: float = 0.95) -> dict[str, Any] | None:
    """Conversion lift pooled over several holdout tests, each (treated n, treated conversions, control n, control
    conversions): the Mantel-Haenszel risk difference (weights n_t n_c / (n_t + n_c)), its variance from the
    tests' Wald variances, z-test and interval. One test gives exactly the two-proportion test; tests with an empty
    group are left out; None when none is left."""
    used = [(nt, xt, nc, xc) for nt, xt, nc, xc in strata if nt > 0 and nc > 0]
    if not used:
        return None
    n_t, n_c = sum(s[0] for s in used), sum(s[2] for s in used)
    if len(used) == 1:
        nt, xt, nc, xc = used[0]
        return {**two_proportion(xt, nt, xc, nc, confidence).as_dict(), "n": n_t, "control_n": n_c, "tests": 1}
    w = np.array([nt * nc / (nt + nc) for nt, _, nc, _ in used])
    p_t = np.array([xt / nt for nt, xt, _, _ in used])
    p_c = np.array([xc / nc for _, _, nc, xc in used])
    var = np.array([pt * (1 - pt) / s[0] + pc * (1 - pc) / s[2] for pt, pc, s in zip(p_t, p_c, used, strict=True)])
    diff = float(np.sum(w * (p_t - p_c)) / np.sum(w))
    control_rate = float(np.sum(w * p_c) / np.sum(w))
    se = float(math.sqrt(np.sum(w**2 * var)) / np.sum(w))
    z = diff / se if se > 0 else 0.0
    q = float(stats.norm.ppf(0.5 + confidence / 2))
    return {
        "rate": sum(s[1] for s in used) / n_t,
        "lift_abs": diff,
        "lift_rel": diff / control_rate if control_rate else None,
        "ci_low": diff - q * se,
        "ci_high": diff + q * se,
        "statistic": z,
        "p_value": float(2 * stats.norm.sf(abs(z))) if se > 0 else 1.0,
        "control_rate": sum(s[3] for s in used) / n_c,
        "test": "mantel_haenszel",
        "n": n_t,
        "control_n": n_c,
        "tests": len(used),
    }


def lift_of_members(
    groups: dict[str, list[str]],
    outcome: dict[str, tuple[int, float]],
    control: str,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Lift of member groups (profile ids per group label) on "converted" (0/1: any conversion) and "revenue"
    (amount per member) given each member's (conversions, revenue); members without an outcome count as 0."""
    labels: list[str] = []
    converted: list[float] = []
    revenue: list[float] = []
    for label, members in groups.items():
        for member in members:
            n, value = outcome.get(member, (0, 0.0))
            labels.append(label)
            converted.append(1.0 if n > 0 else 0.0)
            revenue.append(value)
    metrics = {"converted": np.asarray(converted, dtype=np.float64), "revenue": np.asarray(revenue, dtype=np.float64)}
    if control in groups and any(len(groups[g]) < 2 for g in groups):
        metrics.pop("revenue")  # Welch needs two members per group
    return lift_report(labels, metrics, control, confidence, amounts=frozenset({"revenue"}))
