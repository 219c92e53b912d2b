"""Lift of a journey against its holdout: counts from the journeys domain, statistics from analytics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.messaging.helpers import person
from typer.testing import CliRunner

from accord.analytics.lift import lift_from_counts, two_proportion
from accord.cli.main import app as cli
from accord.collect.emit import emit
from accord.config import load_settings
from accord.journeys import service as journeys
from accord.journeys import tables as jt
from accord.platform import open_platform

JOURNEY = """
name: spring-lift
trigger: {api: true}
holdout: 20
goal: {event: Order Completed, within: 30d}
steps:
  - id: done
    goal: reached
"""


def test_lift_from_counts_is_the_two_proportion_test() -> None:
    doc = lift_from_counts({"journey": (800, 96), "holdout": (200, 16)}, "holdout")
    m = doc["treatments"][0]["metrics"]["converted"]
    ref = two_proportion(96, 800, 16, 200)
    assert (m["rate"], m["lift_abs"], m["statistic"], m["p_value"]) == pytest.approx(
        (0.12, 0.04, ref.statistic, ref.p_value)
    )
    assert doc["treatments"][0]["n"] == 800 and doc["control_n"] == 200


def test_accord_analyze_lift_journey(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = open_platform(load_settings({"ACCORD_HOME": str(home)}))
    try:
        journeys.apply(platform.state, JOURNEY, activate=True)
        journeys.trigger(platform.journeys, "spring-lift", [f"P{i:04d}" for i in range(500)], {})
        platform.journeys.run_until_idle()
        held = journeys.stats(platform.state, "spring-lift")["conversion"]["holdout"]["entered"]
    finally:
        platform.close()
    result = CliRunner().invoke(cli, ["analyze", "lift", "--journey", "spring-lift", "--format", "json"],
                                env={"ACCORD_HOME": str(home)})  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["journey"] == "spring-lift" and doc["control"] == "holdout" and doc["control_n"] == held
    assert doc["treatments"][0]["n"] == 500 - held and "converted" in doc["treatments"][0]["metrics"]
    missing = CliRunner().invoke(cli, ["analyze", "lift", "--journey", "nope"], env={"ACCORD_HOME": str(home)})
    assert missing.exit_code == 1 and "no journey named 'nope'" in missing.output


WAITING = """
name: spring-wait
trigger: {api: true}
holdout: 30
goal: {event: Order Completed, within: 30d}
steps:
  - id: wait
    wait: 10d
"""


def test_journey_lift_counts_real_goal_conversions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = open_platform(load_settings({"ACCORD_HOME": str(home)}))
    try:
        users = {person(platform, f"u{i}", email=f"u{i}@example.com"): f"u{i}" for i in range(40)}
        journeys.apply(platform.state, WAITING, activate=True)
        journeys.trigger(platform.journeys, "spring-wait", list(users), {})
        platform.journeys.run_until_idle()
        with platform.state.connect() as conn:
            held = {
                r.profile_id: r.holdout
                for r in conn.execute(
                    sa.select(jt.journey_instances).where(jt.journey_instances.c.journey_name == "spring-wait")
                )
            }
        in_journey = sorted(p for p, h in held.items() if not h)
        in_holdout = sorted(p for p, h in held.items() if h)
        assert in_holdout and len(in_journey) + len(in_holdout) == 40
        buyers = in_journey[:9] + in_holdout[:1]
        with platform.state.begin() as conn:
            orders = [{"type": "track", "event": "Order Completed", "userId": users[p]} for p in buyers]
            emit(conn, platform.journal, "test-shop", "store", orders)
        assert platform.processor.drain()
        platform.journeys.run_until_idle()
    finally:
        platform.close()
    result = CliRunner().invoke(cli, ["analyze", "lift", "--journey", "spring-wait", "--format", "json"],
                                env={"ACCORD_HOME": str(home)})  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    m = doc["treatments"][0]["metrics"]["converted"]
    assert doc["control_n"] == len(in_holdout) and doc["treatments"][0]["n"] == len(in_journey)
    assert m["rate"] == pytest.approx(9 / len(in_journey)) and m["control_rate"] == pytest.approx(1 / len(in_holdout))
    card = CliRunner().invoke(cli, ["analyze", "channels", "--format", "json"], env={"ACCORD_HOME": str(home)})
    assert card.exit_code == 0, card.output
    (test,) = json.loads(card.stdout)["holdout_tests"]
    assert (test["kind"], test["name"], test["channel"]) == ("journey", "spring-wait", None)  # it sends nothing
    assert (test["n"], test["converted"], test["control_n"], test["control_converted"]) == (
        len(in_journey),
        9,
        len(in_holdout),
        1,
    )


def test_the_scorecard_reads_a_journeys_channel_from_its_send_steps(tmp_path: Path) -> None:
    from accord.analytics_sources import journey_channel

    platform = open_platform(load_settings({"ACCORD_HOME": str(tmp_path / "home")}))
    try:
        base = "trigger: {api: true}\nholdout: 10\nsteps:\n"
        sms = "  - id: s1\n    send: {template: t1, channels: [sms]}\n"
        sms2 = "  - id: s2\n    send: {template: t2, channels: [sms]}\n"
        mail = "  - id: s3\n    send: {template: t3, channels: [email]}\n"
        best = "  - id: s4\n    send: t4\n"
        fallback = "  - id: s5\n    send: {template: t5, channels: [push, sms]}\n"
        found = {}
        for name, steps in {"a": sms + sms2, "b": sms + mail, "c": best, "d": fallback}.items():
            journeys.apply(platform.state, f"name: {name}\n{base}{steps}")
            found[name] = journey_channel(journeys.get(platform.state, name)["definition"])
    finally:
        platform.close()
    assert found == {"a": "sms", "b": None, "c": None, "d": None}
