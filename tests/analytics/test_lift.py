"""Lift statistics against hand computations with the normal distribution and scipy's own Welch test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from accord.analytics.errors import InvalidInput
from accord.analytics.lift import (
    holm,
    lift_from_table,
    sample_size_means,
    sample_size_proportions,
    two_proportion,
    welch,
)
from accord.analytics.paths import read_table


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_two_proportion_z_test_by_hand() -> None:
    # 120/1000 treated vs 100/1000 control: pooled 0.11, se0 = sqrt(.11*.89*.002)
    res = two_proportion(120, 1000, 100, 1000)
    se0 = math.sqrt(0.11 * 0.89 * 0.002)
    z = 0.02 / se0
    assert res.statistic == pytest.approx(z)
    assert res.statistic == pytest.approx(1.4293, abs=1e-4)
    assert res.p_value == pytest.approx(normal_two_sided_p(z))
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.1 * 0.9 / 1000)
    assert res.ci_low == pytest.approx(0.02 - 1.959964 * se, abs=1e-6)
    assert res.ci_high == pytest.approx(0.02 + 1.959964 * se, abs=1e-6)
    assert res.lift_rel == pytest.approx(0.2)
    assert res.rate == pytest.approx(0.12)


def test_welch_matches_scipy_and_hand_df() -> None:
    rng = np.random.default_rng(1)
    a = rng.gamma(2.0, 30.0, size=300)
    b = rng.gamma(2.0, 27.0, size=500)
    res = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.p_value == pytest.approx(float(ref.pvalue))
    va, vb = a.var(ddof=1) / 300, b.var(ddof=1) / 500
    df = (va + vb) ** 2 / (va**2 / 299 + vb**2 / 499)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert res.ci_high - res.ci_low == pytest.approx(2 * half)


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_sample_size_textbook_values() -> None:
    # Fleiss' formula without continuity correction: 10% -> 12% at alpha 0.05, power 0.8 needs 3841 per group
    assert sample_size_proportions(0.10, 0.02) == 3841
    # means, effect of half a standard deviation: 2 (1.96 + 0.8416)^2 / 0.25 = 62.8 -> 63 per group
    assert sample_size_means(1.0, 0.5) == 63


def test_lift_from_file_with_arms_and_holm(tmp_path: Path) -> None:
    rows = ["group,converted,revenue"]
    rng = np.random.default_rng(4)
    for group, rate, n in (("control", 0.10, 2000), ("email", 0.13, 2000), ("sms", 0.11, 2000)):
        conv = rng.random(n) < rate
        revenue = np.where(conv, rng.gamma(2.0, 50.0, n), 0.0)
        rows += [f"{group},{int(c)},{r:.2f}" for c, r in zip(conv, revenue, strict=True)]
    f = tmp_path / "ab.csv"
    f.write_text("\n".join(rows) + "\n")
    doc = lift_from_table(read_table(f), "group", "control", ["converted", "revenue"])
    assert doc["control"] == "control"
    assert [t["group"] for t in doc["treatments"]] == ["email", "sms"]
    email = doc["treatments"][0]
    assert email["n"] == 2000
    conv = email["metrics"]["converted"]
    assert set(conv) >= {"rate", "lift_abs", "lift_rel", "ci_low", "ci_high", "statistic", "p_value"}
    assert conv["test"] == "z" and email["metrics"]["revenue"]["test"] == "welch"
    ps = [t["metrics"]["converted"]["p_value"] for t in doc["treatments"]]
    assert [t["metrics"]["converted"]["p_value_holm"] for t in doc["treatments"]] == pytest.approx(holm(ps))
    assert conv["ci_low"] < conv["lift_abs"] < conv["ci_high"]


def test_lift_errors_are_precise(tmp_path: Path) -> None:
    f = tmp_path / "ab.csv"
    f.write_text("group,converted\na,1\nb,0\n")
    with pytest.raises(InvalidInput, match="control group 'ctl' is not in the data"):
        lift_from_table(read_table(f), "group", "ctl", ["converted"])
    with pytest.raises(InvalidInput, match="no column 'x'"):
        lift_from_table(read_table(f), "group", "a", ["x"])
