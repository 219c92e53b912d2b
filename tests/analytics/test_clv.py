"""Customer models against published parameter tables on the CDNOW data shipped in the `lifetimes` PyPI package.

Published values:
- BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2):
  r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4 on the 2357-customer CDNOW sample, 39 weeks;
  E[Y(39) | x = 2, t_x = 30.43, T = 38.86] = 1.226.
- Pareto/NBD: Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions":
  r = 0.553, alpha = 10.578, s = 0.606, beta = 11.669, LL = -9595.0.
- Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": p = 6.25, q = 3.74,
  gamma = 15.44 on the 946 repeat buyers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from accord.analytics.clv import fit_bgnbd, fit_gamma_gamma, fit_pareto_nbd
from accord.analytics.customers import (
    clv_report,
    cohorts,
    parse_date,
    rfm_scores,
    summarize,
    transactions_from_table,
)
from accord.analytics.paths import read_table


def lifetimes_data() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the lifetimes package (dev dependency) ships the CDNOW data these tests need")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def cdnow_summary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = pacsv.read_csv(lifetimes_data() / "cdnow_customers_summary_with_transactions.csv")
    return tuple(t.column(k).to_numpy().astype(float) for k in ("x", "t_x", "T", "zbar"))  # type: ignore[return-value]


def test_bgnbd_matches_the_published_cdnow_fit() -> None:
    x, t_x, T, _ = cdnow_summary()
    bg = fit_bgnbd(x, t_x, T)
    assert (bg.r, bg.alpha, bg.a, bg.b) == pytest.approx((0.243, 4.414, 0.793, 2.426), abs=1.5e-3)
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    e = bg.expected_purchases(39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert float(e[0]) == pytest.approx(1.226, abs=1e-3)
    p = bg.p_alive(np.array([0.0, 2.0]), np.array([0.0, 30.43]), np.array([38.86, 38.86]))
    assert p[0] == 1.0 and 0 < p[1] < 1


def test_pareto_nbd_matches_the_published_cdnow_fit() -> None:
    x, t_x, T, _ = cdnow_summary()
    pn = fit_pareto_nbd(x, t_x, T)
    assert (pn.r, pn.alpha, pn.s, pn.beta) == pytest.approx((0.553, 10.578, 0.606, 11.669), rel=2e-3)
    assert pn.log_likelihood == pytest.approx(-9595.0, abs=0.1)


def test_gamma_gamma_matches_the_published_cdnow_fit() -> None:
    x, _, _, zbar = cdnow_summary()
    gg = fit_gamma_gamma(x, zbar)
    assert (gg.p, gg.q, gg.gamma) == pytest.approx((6.25, 3.74, 15.44), abs=0.011)
    assert int((x > 0).sum()) == 946


def test_transactions_summarise_to_the_published_cdnow_summary() -> None:
    # CDNOW_sample.txt: master id, sample id, yyyymmdd, cds, dollars; calibration 1997-01-01 .. 1997-09-30 (39 weeks)
    rows = (lifetimes_data() / "CDNOW_sample.txt").read_text().split("\n")
    parts = [r.split() for r in rows if r.strip()]
    table = read_table_from_rows(["customer,date,value", *(f"{p[1]},{p[2]},{p[4]}" for p in parts)])
    tx = transactions_from_table(table, "customer", "date", "value")
    data = summarize(tx, parse_date("1997-09-30"), "week")
    ref = pacsv.read_csv(lifetimes_data() / "cdnow_customers_summary.csv")
    order = np.argsort(np.array(tx.customers, dtype=int))
    ids = np.array(tx.customers, dtype=int)[order]
    assert ids.tolist() == ref.column("ID").to_pylist()
    assert data.frequency[order] == pytest.approx(ref.column("frequency").to_numpy())
    assert data.recency[order] == pytest.approx(ref.column("recency").to_numpy(), abs=0.006)
    assert data.T[order] == pytest.approx(ref.column("T").to_numpy(), abs=0.006)
    summary, scores = clv_report(tx, parse_date("1997-09-30"), "week", horizon_days=364)
    assert summary["customers"] == 2357
    assert summary["bg_nbd"]["r"] == pytest.approx(0.243, abs=2e-3)
    assert set(summary["bg_nbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert {"p", "q", "gamma"} <= set(summary["gamma_gamma"])
    one = next(s for s in scores if s["customer"] == "1")
    assert 0 < one["p_alive"] <= 1 and one["clv"] > 0 and one["expected_next_purchase"] > "1997-09-30"


def read_table_from_rows(rows: list[str]):  # type: ignore[no-untyped-def]
    import io

    return pacsv.read_csv(io.BytesIO("\n".join(rows).encode()))


def test_rfm_and_cohorts_by_hand(tmp_path: Path) -> None:
    f = tmp_path / "tx.csv"
    f.write_text(
        "customer,date,value\n"
        "a,2026-01-05,10\na,2026-02-07,20\na,2026-03-01,5\n"
        "b,2026-01-20,100\n"
        "c,2026-02-02,50\nc,2026-03-15,50\n"
    )
    tx = transactions_from_table(read_table(f), "customer", "date", "value")
    rfm = {r["customer"]: r for r in rfm_scores(tx, parse_date("2026-03-31"))}
    assert rfm["a"]["frequency"] == 3 and rfm["a"]["monetary"] == 35 and rfm["a"]["recency_days"] == 30
    assert rfm["b"]["recency_days"] == 70 and rfm["b"]["r"] < rfm["c"]["r"]
    table = {c["cohort"]: c for c in cohorts(tx, periods=3)}
    assert table["2026-01"]["customers"] == 2
    assert table["2026-01"]["retention"] == [1.0, 0.5, 0.5]
    assert table["2026-02"]["retention"] == [1.0, 1.0, 0.0]
