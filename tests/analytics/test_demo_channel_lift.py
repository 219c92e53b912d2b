"""Story 19 on the demo retailer: the scorecard's holdout lift per channel against the lift the generator simulated,
with message costs and ad spend, through the real import and CLI path."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.main import app as cli
from accord.demo.generator import DemoSpec, generate
from accord.messaging.broadcasts import broadcast_groups, holdout_broadcasts, record_past_broadcast
from accord.messaging.service import MessagingError
from accord.storage import create_state_engine, migrate


def run(env: dict[str, str], *args: str) -> Any:
    done = CliRunner().invoke(cli, list(args), env=env)
    assert done.exit_code == 0, done.output[-2000:]
    out = done.output
    return json.loads(out[out.index("{") if out.startswith("{") else out.index("\n{") + 1 :])  # after progress bars


@pytest.mark.slow
def test_scorecard_lift_per_channel_matches_the_simulated_effect(tmp_path: Path) -> None:
    # half of each campaign's targets held out, for power; push is delivered but never acted on (no effect)
    spec = DemoSpec(customers=1500, days=180, seed=3, holdout_percent=50, inert_channels=("push",))
    data = tmp_path / "data"
    generate(spec, data)
    truth = json.loads((data / "channel_truth.json").read_text())
    env = {"ACCORD_HOME": str(tmp_path / "home")}
    loaded = run(env, "demo", "load", str(data))
    with open(data / "holdouts.csv", encoding="utf-8", newline="") as fh:
        campaigns = {row["campaign"] for row in csv.DictReader(fh)}
    assert loaded["campaigns"]["broadcasts"] == len(campaigns)
    assert loaded["campaigns"]["ad_spend"]["rejected"] == []

    card = run(env, "analyze", "channels", "--window", f"{truth['window_days']}d", "--format", "json")
    rows = {r["channel"]: r for r in card["channels"]}
    assert card["cost_currency"] == truth["currency"] == "PLN"

    for channel in ("email", "sms", "push"):
        simulated = truth["channels"][channel]
        lift = rows[channel]["lift"]
        assert lift is not None and lift["tests"] > 10, channel
        # the groups the scorecard measured are the generator's, less the targets whose user id no event carries
        assert 0.95 * simulated["treated"] <= lift["n"] <= simulated["treated"]
        assert 0.95 * simulated["held_out"] <= lift["control_n"] <= simulated["held_out"]
        assert lift["ci_low"] <= simulated["true_lift"] <= lift["ci_high"], (channel, simulated, lift)
        # message costs: every delivered message priced on its delivery event
        assert rows[channel]["cost_messages"] == simulated["cost_minor"]
    assert truth["channels"]["email"]["true_lift"] > 0 and truth["channels"]["sms"]["true_lift"] > 0
    push = rows["push"]["lift"]
    assert truth["channels"]["push"]["true_lift"] == 0 and push["p_value"] > 0.05  # no effect, none found
    assert rows["push"]["cost"] == 0

    # cost, CPA and ROAS: messages for email and sms, imported ad spend for ads
    with open(data / "ad_spend.csv", encoding="utf-8", newline="") as fh:
        spend = sum(round(float(r["cost"]) * 100) for r in csv.DictReader(fh))
    assert rows["ads"]["cost_ads"] == spend > 0
    for channel in ("email", "sms", "ads"):
        row = rows[channel]
        assert row["cost"] > 0 and row["cpa"] is not None and row["roas"] is not None, row

    # each campaign is a broadcast with its holdout: its own lift is there too
    one = next(t for t in card["holdout_tests"] if t["channel"] == "email")
    doc = run(env, "analyze", "lift", "--broadcast", one["name"], "--window", "7d", "--format", "json")
    assert doc["control_n"] == one["control_n"] and doc["treatments"][0]["n"] == one["n"]


def test_a_past_broadcast_is_recorded_once_with_its_groups(tmp_path: Path) -> None:
    state = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(state)
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    first = record_past_broadcast(state, "spring-sms", "sms", at, ["P1", "P2", "P3", "P2"], ["P4", "P3"], "test")
    assert first["recorded"] and (first["sent"], first["held_out"]) == (2, 2)  # P3 held out, not counted as sent
    assert not record_past_broadcast(state, "spring-sms", "sms", at, ["P9"], [], "test")["recorded"]
    groups = broadcast_groups(state, "spring-sms")
    assert {k: sorted(v) for k, v in groups["groups"].items()} == {"broadcast": ["P1", "P2"], "holdout": ["P3", "P4"]}
    assert groups["channels"] == {"sms": 2} and groups["sent_at"] == at.isoformat()
    listed = holdout_broadcasts(state, at - timedelta(days=1), at + timedelta(days=1))
    assert [b["name"] for b in listed] == ["spring-sms"]
    assert holdout_broadcasts(state, at + timedelta(days=1), at + timedelta(days=2)) == []
    with pytest.raises(MessagingError):
        record_past_broadcast(state, "naive", "sms", datetime(2026, 3, 1), ["P1"], [], "test")
    state.dispose()
