"""Campaign holdouts of the demo generator: held-out targets get no message, nothing else changes; costs and truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from accord.demo.campaigns import MESSAGE_COST_MINOR
from accord.demo.generator import DemoSpec, generate

DELIVERY = {"Email Delivered": "email", "SMS Delivered": "sms", "Push Notification Received": "push"}


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_holdouts_remove_only_the_held_out_messages_and_what_they_caused(tmp_path: Path) -> None:
    base = generate(DemoSpec(customers=400, days=120, seed=5), tmp_path / "base")
    held = generate(DemoSpec(customers=400, days=120, seed=5, holdout_percent=30), tmp_path / "held")
    inert = generate(DemoSpec(customers=400, days=120, seed=5, inert_channels=("email",)), tmp_path / "inert")
    # the holdout draw has its own random stream: receipts and CRM are identical, events a subset (same ids)
    for name in ("orders.csv", "customers.csv", "legacy_customers.csv"):
        assert (
            (base.out_dir / name).read_bytes()
            == (held.out_dir / name).read_bytes()
            == (inert.out_dir / name).read_bytes()
        )
    all_events = set(lines(base.out_dir / "events.jsonl"))
    held_events = lines(held.out_dir / "events.jsonl")
    assert set(held_events) < all_events and len(held_events) < len(all_events)
    assert held.counts["online_orders"] <= base.counts["online_orders"]

    with open(held.out_dir / "holdouts.csv", encoding="utf-8", newline="") as fh:
        targets = list(csv.DictReader(fh))
    groups = {(r["campaign"], r["user_id"]): r["group"] for r in targets}
    assert 0.2 < sum(g == "holdout" for g in groups.values()) / len(groups) < 0.4
    delivered: dict[tuple[str, str], dict[str, Any]] = {}
    for line in held_events:
        e = json.loads(line)
        if e.get("event") in DELIVERY:
            delivered[(e["properties"]["campaign_name"], e["userId"])] = e
    assert set(delivered) == {k for k, g in groups.items() if g == "treated"}  # held out: no message at all
    for e in delivered.values():
        channel = DELIVERY[e["event"]]
        props = e["properties"]
        assert (props["cost_minor"], props["currency"]) == (MESSAGE_COST_MINOR[channel], "PLN") and props["delivery_id"]

    truth = json.loads((held.out_dir / "channel_truth.json").read_text())
    for channel, t in truth["channels"].items():
        assert t["treated"] + t["held_out"] == t["targeted"] == sum(r["channel"] == channel for r in targets)
        assert t["cost_minor"] == t["treated"] * MESSAGE_COST_MINOR[channel]
        assert 0 <= t["caused_conversions"] <= held.counts.get(f"orders_caused_by_{channel}", 0)
    # an inert channel is delivered, never opened, clicked or bought from
    inert_events = [json.loads(x) for x in lines(inert.out_dir / "events.jsonl")]
    assert any(e.get("event") == "Email Delivered" for e in inert_events)
    assert not any(e.get("event") in ("Email Opened", "Email Link Clicked") for e in inert_events)
    assert json.loads((inert.out_dir / "channel_truth.json").read_text())["channels"]["email"]["true_lift"] == 0
    assert "orders_caused_by_email" not in inert.counts

    with open(base.out_dir / "ad_spend.csv", encoding="utf-8", newline="") as fh:
        spend = list(csv.DictReader(fh))
    ad_events = [json.loads(x) for x in all_events if '"Ad Clicked"' in x or '"Ad Viewed"' in x]
    expected = sum(150 if e["event"] == "Ad Clicked" else 1 for e in ad_events)
    assert sum(round(float(r["cost"]) * 100) for r in spend) == expected > 0
    assert {r["channel"] for r in spend} == {"ads"} and all(r["currency"] == "PLN" for r in spend)
