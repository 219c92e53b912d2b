"""Imported ad spend: row checks, idempotent re-import on SQLite and PostgreSQL, the CLI and its messages."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from accord.analytics import service
from accord.analytics.errors import InvalidInput
from accord.analytics.spend import check_rows, read_rows
from accord.cli.main import app as cli
from accord.storage import create_state_engine, migrate

GOOD = """date,channel,campaign,cost,currency
2026-03-01,ads,spring,120.50,PLN
2026-03-01,ADS ,summer,10,PLN
2026-03-02,ads,spring,99.99,PLN
2026-03-02,tv,,5000,JPY
"""

BAD = """date,channel,cost,currency
2026-03-01,ads,12.5,PLN
03/01/2026,ads,1,PLN
2026-03-02,,1,PLN
2026-03-03,ads,1.234,PLN
2026-03-04,ads,-5,PLN
2026-03-05,ads,abc,PLN
2026-03-06,ads,1,ZZZ
2026-03-01,ads,7,PLN
2026-03-07,ads,,PLN
2026-03-08,ads,1.5,JPY
"""


@pytest.fixture
def state(state_url: str) -> sa.Engine:
    engine = create_state_engine(state_url)
    migrate(engine)
    return engine


def test_rows_are_checked_with_row_numbers_and_reasons(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(BAD)
    good, bad = check_rows(read_rows(f))
    assert [(g.row, g.day, g.channel, g.cost_minor, g.currency) for g in good] == [
        (1, date(2026, 3, 1), "ads", 1250, "PLN")
    ]
    reasons = {r.row: r.reason for r in bad}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "not an ISO date" in reasons[2]
    assert reasons[3] == "channel is empty"
    assert reasons[4] == "cost 1.234 has more decimals than PLN has (2)"
    assert reasons[5] == "cost is negative"
    assert "not a number" in reasons[6]
    assert "not an ISO 4217 code" in reasons[7]
    assert reasons[8] == "same date, channel and campaign as row 1"
    assert reasons[9].startswith("no cost")
    assert reasons[10] == "cost 1.5 has more decimals than JPY has (0)"
    with pytest.raises(InvalidInput, match="no column currency"):
        check_rows([{"date": "2026-03-01", "channel": "ads", "cost": "1"}])


def test_import_is_idempotent_and_a_changed_amount_replaces_the_old_one(state: sa.Engine, tmp_path: Path) -> None:
    f = tmp_path / "spend.csv"
    f.write_text(GOOD)
    first = service.import_spend_file(state, f)
    assert (first["imported"], first["inserted"], first["updated"], first["rejected"]) == (4, 4, 0, [])
    again = service.import_spend_file(state, f)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 4)
    assert len(service.read_spend(state)) == 4
    f.write_text(GOOD.replace("99.99", "80.00"))
    changed = service.import_spend_file(state, f)
    assert (changed["inserted"], changed["updated"], changed["unchanged"]) == (0, 1, 3)
    rows = service.read_spend(state)
    assert [(r["day"], r["channel"], r["campaign"], r["cost_minor"], r["currency"]) for r in rows] == [
        ("2026-03-01", "ads", "spring", 12050, "PLN"),
        ("2026-03-01", "ads", "summer", 1000, "PLN"),
        ("2026-03-02", "ads", "spring", 8000, "PLN"),
        ("2026-03-02", "tv", "", 5000, "JPY"),
    ]
    assert [r["day"] for r in service.read_spend(state, date(2026, 3, 2), date(2026, 3, 2))] == ["2026-03-02"] * 2


def test_parquet_spend_with_minor_units(state: sa.Engine, tmp_path: Path) -> None:
    f = tmp_path / "spend.parquet"
    pq.write_table(
        pa.table(
            {
                "date": pa.array([date(2026, 3, 1), date(2026, 3, 2)], pa.date32()),
                "channel": ["ads", "ads"],
                "cost_minor": [1234, 99],
                "currency": ["EUR", "EUR"],
            }
        ),
        f,
    )
    doc = service.import_spend_file(state, f)
    assert doc["imported"] == 2
    assert [r["cost_minor"] for r in service.read_spend(state)] == [1234, 99]


def test_cli_spend_import_and_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"ACCORD_HOME": str(home)}
    good, bad = tmp_path / "spend.csv", tmp_path / "bad.csv"
    good.write_text(GOOD)
    bad.write_text(BAD)
    out = CliRunner().invoke(cli, ["analyze", "spend", "import", str(good)], env=env)
    assert out.exit_code == 0, out.output
    assert "4 of 4 rows imported (4 new, 0 changed, 0 unchanged)" in out.output
    out = CliRunner().invoke(cli, ["analyze", "spend", "import", str(good), "--format", "json"], env=env)
    assert out.exit_code == 0 and json.loads(out.output)["unchanged"] == 4
    out = CliRunner().invoke(cli, ["analyze", "spend", "import", str(bad)], env=env)
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "row 4 rejected: cost 1.234 has more decimals than PLN has (2)" in out.output
    out = CliRunner().invoke(cli, ["analyze", "spend", "list", "--start", "2026-03-02", "--format", "json"], env=env)
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    # the bad file's valid row 1 (2026-03-01) was imported, its rejected rows (from 2026-03-03 on) were not
    assert {(r["day"], r["channel"], r["cost_minor"]) for r in listed} == {
        ("2026-03-02", "ads", 9999),
        ("2026-03-02", "tv", 5000),
    }
    missing = CliRunner().invoke(cli, ["analyze", "spend", "import", str(tmp_path / "nope.csv")], env=env)
    assert missing.exit_code == 1 and "no file" in missing.output
