"""Transactions to per-customer summaries: frequency/recency/T for purchase models, RFM scores, cohort retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accord.analytics.clv import BGNBD, GammaGamma, RFMData, customer_value, fit_bgnbd, fit_gamma_gamma
from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray, IntArray, column, numeric_column

UNIT_DAYS = {"day": 1.0, "week": 7.0}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Transactions:
    """Purchases: customer ids, times (days since 1970 UTC), values, and optionally the channel of each."""

    customers: list[str]
    customer: IntArray  # index into customers, per purchase
    day: FloatArray
    value: FloatArray
    channel: list[str] | None = None

    def __len__(self) -> int:
        return len(self.day)


def transactions(
    customer_ids: list[str], times: list[datetime] | FloatArray, values: FloatArray, channels: list[str] | None = None
) -> Transactions:
    """Transactions from parallel lists (times as aware datetimes or days since 1970)."""
    if isinstance(times, np.ndarray):
        day = times.astype(np.float64)
    else:
        day = np.array([(t - EPOCH).total_seconds() / 86400.0 for t in times], dtype=np.float64)
    names, idx = np.unique(np.asarray(customer_ids, dtype=object).astype(str), return_inverse=True)
    return Transactions(
        [str(n) for n in names], idx.astype(np.int64), day, np.asarray(values, dtype=np.float64), channels
    )


def transactions_from_table(table: pa.Table, customer_col: str, date_col: str, value_col: str | None) -> Transactions:
    """Transactions from a table: customer, date (ISO date/time or YYYYMMDD) and value columns."""
    if table.num_rows == 0:
        raise NotEnoughData("the file has no transactions")
    cust = pc.cast(column(table, customer_col), pa.string()).to_pylist()
    raw = column(table, date_col)
    if pa.types.is_integer(raw.type):
        raw = pc.cast(raw, pa.string())
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        texts = raw.to_pylist()
        day = np.empty(len(texts))
        for i, text in enumerate(texts):
            day[i] = _parse_day(text, i)
    elif pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type):
        ts = pc.cast(pc.cast(raw, pa.timestamp("us")), pa.int64()).to_numpy()
        day = ts / 86_400_000_000.0
    else:
        raise InvalidInput(f"column {date_col!r} is not a date ({raw.type})")
    value = numeric_column(table, value_col) if value_col else np.zeros(len(cust))
    if any(c is None or c == "" for c in cust):
        raise InvalidInput(f"column {customer_col!r} has empty values")
    return transactions(cust, day, value)


def _parse_day(text: str | None, row: int) -> float:
    if not text:
        raise InvalidInput(f"the date is empty in data row {row + 1}")
    text = text.strip()
    try:
        if len(text) == 8 and text.isdigit():
            dt = datetime(int(text[:4]), int(text[4:6]), int(text[6:]), tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"cannot read the date {text!r} in data row {row + 1}") from exc
    return (dt - EPOCH).total_seconds() / 86400.0


def parse_date(text: str) -> float:
    """Days since 1970 of an ISO date or date-time (user option)."""
    return _parse_day(text, -1)


def day_to_date(day: float) -> date:
    """The UTC date of a day number."""
    return (EPOCH + timedelta(days=float(day))).date()


def summarize(tx: Transactions, end_day: float | None = None, unit: str = "day") -> RFMData:
    """Per customer (in customer order): repeat purchase periods, recency, age, mean repeat value (lifetimes' rules).

    Purchases on one day count as one; frequency = purchase days - 1; recency = last - first purchase; T = end - first;
    monetary = mean value per repeat purchase day. Purchases after END_DAY are ignored.
    """
    if unit not in UNIT_DAYS:
        raise InvalidInput("the time unit is day or week")
    per = UNIT_DAYS[unit]
    end = float(tx.day.max()) if end_day is None else end_day
    keep = tx.day <= end + 1e-9
    cust, day_n, value = tx.customer[keep], np.floor(tx.day[keep]), tx.value[keep]
    n = len(tx.customers)
    # one row per customer and purchase day, values summed
    key = cust * 10_000_000 + day_n.astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    c_of = uniq // 10_000_000
    d_of = (uniq % 10_000_000).astype(np.float64)
    v_of = np.bincount(inv, weights=value, minlength=len(uniq))
    counts = np.bincount(c_of, minlength=n).astype(np.float64)
    first = np.full(n, np.inf)
    np.minimum.at(first, c_of, d_of)
    last = np.full(n, -np.inf)
    np.maximum.at(last, c_of, d_of)
    total = np.bincount(c_of, weights=v_of, minlength=n)
    first_value = np.zeros(n)
    is_first = d_of == first[c_of]
    first_value[c_of[is_first]] = v_of[is_first]
    seen = counts > 0
    frequency = np.where(seen, counts - 1, 0.0)
    recency = np.where(seen, (last - first) / per, 0.0)
    age = np.where(seen, (np.floor(end) - first) / per, 0.0)
    monetary = np.where(frequency > 0, (total - first_value) / np.maximum(frequency, 1), 0.0)
    return RFMData(frequency, recency, age, monetary)


def rfm_scores(tx: Transactions, end_day: float | None = None) -> list[dict[str, Any]]:
    """Recency (days since last purchase), frequency (purchase days), monetary (total value), 1-5 quintile scores
    (5 = best) and a named segment, per customer who bought."""
    end = float(tx.day.max()) if end_day is None else end_day
    data = summarize(tx, end, "day")
    keep = tx.day <= end + 1e-9
    n = len(tx.customers)
    last = np.full(n, -np.inf)
    np.maximum.at(last, tx.customer[keep], np.floor(tx.day[keep]))
    total = np.bincount(tx.customer[keep], weights=tx.value[keep], minlength=n)
    bought = np.flatnonzero(np.isfinite(last))
    recency_days = np.floor(end) - last[bought]
    purchases = data.frequency[bought] + 1
    monetary = total[bought].astype(np.float64)
    purchases = purchases.astype(np.float64)
    r = _quintile(-recency_days)
    f = _quintile(purchases)
    m = _quintile(monetary)
    out = []
    for j, i in enumerate(bought):
        out.append(
            {
                "customer": tx.customers[i],
                "recency_days": float(recency_days[j]),
                "frequency": int(purchases[j]),
                "monetary": float(monetary[j]),
                "r": int(r[j]),
                "f": int(f[j]),
                "m": int(m[j]),
                "segment": rfm_segment(int(r[j]), int(f[j])),
            }
        )
    return out


def _quintile(values: FloatArray) -> IntArray:
    """Scores 1..5 by rank (ties share the lower rank's score)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    # ties: give every tied value the minimum rank of its group
    uniq, inv = np.unique(values, return_inverse=True)
    min_rank = np.full(len(uniq), np.inf)
    np.minimum.at(min_rank, inv, ranks)
    out: IntArray = (1 + np.floor(5 * min_rank[inv] / len(values))).astype(np.int64)
    return np.clip(out, 1, 5)


def rfm_segment(r: int, f: int) -> str:
    """The usual RFM grid names from recency and frequency scores."""
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4 and f <= 2:
        return "new"
    if r == 3 and f <= 2:
        return "promising"
    if r <= 2 and f >= 4:
        return "cannot_lose"
    if r <= 2 and f == 3:
        return "at_risk"
    if r == 2:
        return "slipping"
    return "hibernating"


def cohorts(tx: Transactions, by: str = "month", periods: int = 12) -> list[dict[str, Any]]:
    """Retention by first-purchase month (or first channel): share of each cohort buying in month k after the first."""
    if len(tx) == 0:
        raise NotEnoughData("there are no purchases")
    months = np.array([_month_index(d) for d in tx.day], dtype=np.int64)
    n = len(tx.customers)
    first_month = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_month, tx.customer, months)
    first_day = np.full(n, np.inf)
    np.minimum.at(first_day, tx.customer, tx.day)
    if by == "month":
        label = [f"{m // 12:04d}-{m % 12 + 1:02d}" if m < 10**9 else "" for m in first_month]
    elif by == "channel":
        if tx.channel is None:
            raise InvalidInput("cohorts by first channel need the channel of every purchase")
        label = [""] * n
        for i in np.argsort(tx.day, kind="stable")[::-1]:
            label[tx.customer[i]] = tx.channel[i]
    else:
        raise InvalidInput("cohorts are by month or channel")
    offset = months - first_month[tx.customer]
    pairs = np.unique(np.column_stack([tx.customer, offset]), axis=0)
    out: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for i in range(n):
        if np.isfinite(first_day[i]):
            sizes[label[i]] = sizes.get(label[i], 0) + 1
    counts: dict[str, list[int]] = {k: [0] * periods for k in sizes}
    for cust, k in pairs:
        if 0 <= k < periods:
            counts[label[cust]][k] += 1
    for key in sorted(sizes):
        out[key] = {
            "cohort": key,
            "customers": sizes[key],
            "retention": [counts[key][k] / sizes[key] for k in range(periods)],
        }
    return list(out.values())


def _month_index(day: float) -> int:
    d = day_to_date(day)
    return d.year * 12 + d.month - 1


def clv_report(
    tx: Transactions,
    calibration_end: float | None = None,
    unit: str = "week",
    horizon_days: float = 365.0,
    discount_rate: float = 0.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fit BG/NBD + Gamma-Gamma and score every customer: P(alive), purchases and value over the horizon, next date.

    Returns the documented summary {customers, bg_nbd, gamma_gamma} and one score row per customer.
    """
    end = float(tx.day.max()) if calibration_end is None else calibration_end
    data = summarize(tx, end, unit)
    active = np.flatnonzero(np.isin(np.arange(len(tx.customers)), tx.customer[tx.day <= end + 1e-9]))
    if len(active) == 0:
        raise NotEnoughData("no purchase before the calibration end")
    sub = RFMData(data.frequency[active], data.recency[active], data.T[active], data.monetary[active])
    bg = fit_bgnbd(sub.frequency, sub.recency, sub.T)
    gg = fit_gamma_gamma(sub.frequency, sub.monetary)
    horizon = horizon_days / UNIT_DAYS[unit]
    scores = score_customers(bg, gg, sub, horizon, discount_rate)
    wait_days = bg.median_wait(sub.frequency, sub.T) * UNIT_DAYS[unit]
    rows = []
    for j, i in enumerate(active):
        rows.append(
            {
                "customer": tx.customers[i],
                "frequency": float(sub.frequency[j]),
                "recency": float(sub.recency[j]),
                "T": float(sub.T[j]),
                "monetary": float(sub.monetary[j]),
                "p_alive": float(scores["p_alive"][j]),
                "churn_risk": float(1 - scores["p_alive"][j]),
                "expected_purchases": float(scores["expected_purchases"][j]),
                "expected_value": float(scores["expected_value"][j]),
                "clv": float(scores["clv"][j]),
                "expected_next_purchase": day_to_date(np.floor(end) + wait_days[j]).isoformat(),
            }
        )
    summary = {
        "customers": len(active),
        "time_unit": unit,
        "calibration_end": day_to_date(end).isoformat(),
        "horizon_days": horizon_days,
        "bg_nbd": bg.as_dict(),
        "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma, "log_likelihood": gg.log_likelihood},
        "total_clv": float(scores["clv"].sum()),
    }
    return summary, rows


def score_customers(
    bg: BGNBD, gg: GammaGamma, data: RFMData, horizon: float, discount_rate: float = 0.0
) -> dict[str, FloatArray]:
    """P(alive), expected purchases and spend, and CLV over HORIZON time units, per customer."""
    return {
        "p_alive": bg.p_alive(data.frequency, data.recency, data.T),
        "expected_purchases": bg.expected_purchases(horizon, data.frequency, data.recency, data.T),
        "expected_value": gg.expected_value(data.frequency, data.monetary),
        "clv": customer_value(bg, gg, data, horizon, discount_rate),
    }
