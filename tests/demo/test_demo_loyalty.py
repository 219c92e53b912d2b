"""`accord demo` earns the history its points: balances, tiers and expiry as if the program had run all along."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from accord.loyalty import tables as t
from accord.loyalty.examples import EXAMPLE_PROGRAM
from accord.platform import open_platform

from ..conftest import make_settings

ACCORD = str(Path(sys.executable).parent / "accord")


def test_demo_customers_have_the_points_of_their_history(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ACCORD_HOME": str(home)}
    env.pop("ACCORD_STATE_URL", None)
    loaded = subprocess.run(
        [ACCORD, "demo", "--customers", "150", "--days", "420", "--seed", "8", "--no-serve"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    summary = json.loads((home / "demo.json").read_text())["load"]["loyalty"]
    report = summary["backfill"]
    assert summary["program_configured"] and summary["rewards_added"] == 4
    assert report["earned"] > 100 and report["skipped"] == {} and report["expired_lots"] > 0  # > a year: expiry
    assert sum(report["tiers"].values()) == report["customers"] and report["tiers"]["gold"] > 0

    platform = open_platform(make_settings(home))
    try:
        assert platform.stats()["processing_lag"] == 0  # the points' timeline events are loaded
        buyers = platform.events.query(
            "SELECT count(DISTINCT json_extract_string(raw, '$.properties.order_id')) FROM events "
            "WHERE event = 'Order Completed' AND profile_id IS NOT NULL AND revenue_minor IS NOT NULL"
        )[0][0]
        assert report["earned"] == buyers  # every purchase of a known customer earned, once
        earned = platform.events.query(
            "SELECT count(*), min(timestamp) FROM events WHERE event = 'Loyalty Points Earned'"
        )[0]
        first_order = platform.events.query("SELECT min(timestamp) FROM events WHERE event = 'Order Completed'")[0][0]
        assert earned == (report["earned"], first_order)  # on the timelines, at the purchases' dates
        ledger, lots, accounts = t.loyalty_ledger.c, t.loyalty_lots.c, t.loyalty_accounts.c
        with platform.state.connect() as conn:
            for pid, balance in conn.execute(sa.select(accounts.profile_id, accounts.balance)).all():
                entries = sa.select(sa.func.coalesce(sa.func.sum(ledger.points), 0)).where(ledger.profile_id == pid)
                left = sa.select(sa.func.coalesce(sa.func.sum(lots.remaining), 0)).where(lots.profile_id == pid)
                assert conn.execute(entries).scalar() == conn.execute(left).scalar() == balance >= 0
            oldest = conn.execute(sa.select(sa.func.min(ledger.created_at)).where(ledger.kind == "earn")).scalar()
            expired = conn.execute(sa.select(sa.func.min(ledger.created_at)).where(ledger.kind == "expire")).scalar()
        assert expired == oldest + timedelta(days=EXAMPLE_PROGRAM["expiry_days"])  # dated at their expiry
        richest = max(platform.loyalty.members_by_tier()["tiers"], key=lambda x: x["balance"])
        assert richest["balance"] > 0
    finally:
        platform.close()
