"""Ad spend files: read CSV/Parquet rows of (date, channel, cost, currency[, campaign]) and check every row."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from babel.numbers import get_currency_precision, list_currencies

from accord.analytics.errors import InvalidInput

REQUIRED = ("date", "channel", "currency")
MAX_CHANNEL = 32
MAX_CAMPAIGN = 200


@dataclass(frozen=True)
class SpendRow:
    """Spend of one channel (and campaign) on one day, in minor units of CURRENCY."""

    day: date
    channel: str
    campaign: str
    currency: str
    cost_minor: int
    row: int  # 1 = the first row after the header


@dataclass(frozen=True)
class Rejected:
    """A row of the file that was not imported, and why."""

    row: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape {"row", "reason"}."""
        return {"row": self.row, "reason": self.reason}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (header line first) or Parquet file as dicts, every value as the file holds it."""
    if not path.exists():
        raise InvalidInput(f"no file {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_table(path).to_pylist())
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise InvalidInput(f"cannot read {path.name} as Parquet: {exc}") from exc
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return rows_from_csv_text(fh.read())
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 text") from exc


def rows_from_csv_text(text: str) -> list[dict[str, Any]]:
    """Rows of CSV text whose first line names the columns."""
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise InvalidInput("the file is empty: the first line must name the columns")
    return [dict(r) for r in reader]


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not text:
        raise ValueError("date is empty")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"date {text!r} is not an ISO date (YYYY-MM-DD)") from None


def _minor(row: Mapping[str, Any], currency: str) -> int:
    digits = get_currency_precision(currency)
    if row.get("cost_minor") not in (None, ""):
        raw = str(row["cost_minor"]).strip()
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"cost_minor {raw!r} is not a number") from None
        if amount != amount.to_integral_value():
            raise ValueError(f"cost_minor {raw!r} is not a whole number of minor units")
        minor = int(amount)
    elif row.get("cost") not in (None, ""):
        raw = str(row["cost"]).strip()
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"cost {raw!r} is not a number") from None
        if not amount.is_finite():
            raise ValueError(f"cost {raw!r} is not a number")
        scaled = amount.scaleb(digits)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"cost {raw} has more decimals than {currency} has ({digits})")
        minor = int(scaled)
    else:
        raise ValueError("no cost (give cost in units of the currency, or cost_minor)")
    if minor < 0:
        raise ValueError("cost is negative")
    return minor


def check_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[SpendRow], list[Rejected]]:
    """Valid spend rows and rejected ones (row number and reason); a repeated (date, channel, campaign) is rejected."""
    known = list_currencies()
    good: list[SpendRow] = []
    bad: list[Rejected] = []
    seen: dict[tuple[date, str, str], int] = {}
    columns_checked = False
    for number, row in enumerate(rows, start=1):
        if not columns_checked:
            missing = [c for c in REQUIRED if c not in row]
            if "cost" not in row and "cost_minor" not in row:
                missing.append("cost (or cost_minor)")
            if missing:
                raise InvalidInput(f"the spend file has no column {', '.join(missing)}; it needs date, channel, "
                                   "cost (or cost_minor), currency and optionally campaign")  # fmt: skip
            columns_checked = True
        try:
            day = _day(row.get("date"))
            channel = str(row.get("channel") or "").strip().lower()
            if not channel:
                raise ValueError("channel is empty")
            if len(channel) > MAX_CHANNEL:
                raise ValueError(f"channel is longer than {MAX_CHANNEL} characters")
            currency = str(row.get("currency") or "").strip().upper()
            if currency not in known:
                raise ValueError(f"currency {currency!r} is not an ISO 4217 code" if currency else "currency is empty")
            campaign = str(row.get("campaign") or "").strip()
            if len(campaign) > MAX_CAMPAIGN:
                raise ValueError(f"campaign is longer than {MAX_CAMPAIGN} characters")
            minor = _minor(row, currency)
        except ValueError as exc:
            bad.append(Rejected(number, str(exc)))
            continue
        key = (day, channel, campaign)
        if key in seen:
            bad.append(Rejected(number, f"same date, channel and campaign as row {seen[key]}"))
            continue
        seen[key] = number
        good.append(SpendRow(day, channel, campaign, currency, minor, number))
    return good, bad
