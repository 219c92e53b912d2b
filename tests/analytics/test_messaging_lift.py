"""End to end: a broadcast with a holdout goes out over a real HTTP SMS provider, deliveries are priced, people buy;
`accord analyze lift --broadcast` and `accord analyze channels` report the lift and the cost from the stores."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import pytest
import sqlalchemy as sa
from tests.conftest import make_settings
from tests.messaging.helpers import ScriptedProvider, person
from typer.testing import CliRunner

from accord.analytics import service
from accord.cli.main import app as cli
from accord.collect.emit import emit
from accord.messaging import tables as t
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.policy import PolicyConfig, in_control_group
from accord.messaging.sender import Sender
from accord.platform import open_platform

TEMPLATE = {
    "name": "spring-sms",
    "purpose": "promotions",
    "tags": [],
    "default_locale": "en",
    "locales": {"en": {"sms": {"text": "Spring offer: shop.example/s"}}},
}

Z95 = NormalDist().inv_cdf(0.975)  # exact, so a bound near zero compares to 1e-6 relative


def analyze(home: Path, *args: str, policy: str = "") -> tuple[int, str]:
    """Exit code and output (standard output only when it succeeds: JSON documents are on stdout, notes on stderr)."""
    env = {"ACCORD_HOME": str(home), "COLUMNS": "200", "ACCORD_MESSAGING_POLICY": policy}
    result = CliRunner().invoke(cli, ["analyze", *args], env=env)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_broadcast_holdout_lift_and_message_cost_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = open_platform(make_settings(home))
    try:
        m = platform.messaging
        m.policy = PolicyConfig(quiet_hours=None)
        m.save_template(TEMPLATE)
        people = []
        for i in range(60):
            phone = f"+48600{i:06d}"
            people.append(person(platform, f"u{i}", phone=phone))
            platform.consents.set(f"phone:{phone}", "promotions", "sms", "opted_in", "test", "consent")
        with ScriptedProvider() as gateway:
            m.add_provider("sms-gw", "sms", "http", {"url": gateway.url + "/send"}, cost_minor=7, currency="PLN")
            planned = create_broadcast(m, "spring", "spring-sms", {"profile_ids": people}, channels=["sms"],
                                       holdout_percent=30)  # fmt: skip
            Sender(m, backoff=0.01).drain(timeout=30)
        with platform.state.connect() as conn:
            rows = conn.execute(sa.select(t.deliveries).where(t.deliveries.c.broadcast_id == planned["id"])).all()
        held = sorted(r.profile_id for r in rows if r.status == "held_out")
        sent = sorted(r for r in rows if r.status == "sent")
        treated = sorted(r.profile_id for r in rows if r.status != "held_out")
        assert held and len(sent) == len(treated) == 60 - len(held)
        for row in sent[:-3]:  # three messages never report delivery: not priced
            m.feedback("sms-gw", {"id": row.provider_message_id, "status": "delivered"})
        delivered = len(sent) - 3
        user_of = {pid: f"u{i}" for i, pid in enumerate(people)}
        buyers = treated[:10] + held[:2]
        with platform.state.begin() as conn:
            orders = [{"type": "track", "event": "Order Completed", "userId": user_of[pid],
                       "properties": {"revenue": 50.0, "currency": "PLN"}} for pid in buyers]  # fmt: skip
            emit(conn, platform.journal, "test-shop", "store", orders)
        assert platform.processor.drain()
        today = datetime.now(UTC).date().isoformat()
        spend = [{"date": today, "channel": "ads", "cost": "250.00", "currency": "PLN"}]
        assert service.import_spend(platform.state, spend, "test")["imported"] == 1
    finally:
        platform.close()

    code, out = analyze(home, "lift", "--broadcast", "spring", "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["broadcast"], doc["control"], doc["control_n"]) == ("spring", "holdout", len(held))
    (arm,) = doc["treatments"]
    p1, p0 = 10 / len(treated), 2 / len(held)
    assert (arm["group"], arm["n"]) == ("broadcast", len(treated))
    converted = arm["metrics"]["converted"]
    assert (converted["rate"], converted["control_rate"], converted["lift_abs"]) == pytest.approx((p1, p0, p1 - p0))
    assert arm["metrics"]["revenue"]["rate"] == pytest.approx(10 * 5_000 / len(treated))

    code, out = analyze(home, "channels", "--format", "json", "--chart", str(tmp_path / "card.html"))
    assert code == 0, out
    card = json.loads(out)
    rows_by = {r["channel"]: r for r in card["channels"]}
    assert rows_by["sms"]["cost_messages"] == 7 * delivered and rows_by["ads"]["cost_ads"] == 25_000
    lift = rows_by["sms"]["lift"]
    se = math.sqrt(p1 * (1 - p1) / len(treated) + p0 * (1 - p0) / len(held))
    assert lift["lift_abs"] == pytest.approx(p1 - p0) and lift["ci_low"] == pytest.approx(p1 - p0 - Z95 * se)
    assert [(x["kind"], x["name"], x["channel"]) for x in card["holdout_tests"]] == [("broadcast", "spring", "sms")]
    page = (tmp_path / "card.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Channel scorecard" in page

    code, out = analyze(home, "channels")  # the readable tables
    assert code == 0 and "Holdout tests" in out and "broadcast spring" in out and "Purchase rate" in out, out
    code, out = analyze(home, "lift", "--broadcast", "spring", "--chart", str(tmp_path / "lift.svg"))
    assert code == 0 and "revenue" in out and f"control group holdout: {len(held)} members" in out, out
    assert (tmp_path / "lift.svg").read_text().lstrip().startswith("<?xml")
    code, out = analyze(home, "lift", "--broadcast", "autumn")
    assert code == 1 and "no broadcast named 'autumn'" in out and "Traceback" not in out
    code, out = analyze(home, "lift", "--global-control")
    assert code == 1 and "global control group" in out  # off by default
    code, out = analyze(home, "lift", "--global-control", "--format", "json", policy='{"control_group_percent": 30}')
    assert code == 0, out
    doc = json.loads(out)
    control = {p for p in people if in_control_group(p, PolicyConfig(control_group_percent=30))}
    messaged = set(people) - control
    m = doc["treatments"][0]["metrics"]["converted"]
    assert (doc["control_n"], doc["treatments"][0]["n"]) == (len(control), len(messaged))
    assert m["rate"] == pytest.approx(len(messaged & set(buyers)) / len(messaged))
    assert m["control_rate"] == pytest.approx(len(control & set(buyers)) / len(control))
    code, out = analyze(home, "lift", "--broadcast", "spring", "--journey", "x")
    assert code == 1 and "give one of" in out
