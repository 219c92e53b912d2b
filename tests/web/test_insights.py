"""Lift against holdouts, customer value beside churn risk, stores on a map, loyalty pages: figures and roles."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.web.conftest import STORE, Web

NEW_PAGES = (
    "/analytics/lift",
    "/analytics/lift/figures",
    "/analytics/value",
    "/analytics/value/figures",
    "/loyalty",
)


def _figures(web: Web, url: str) -> Any:
    """Figures computed in the background: a slow first computation answers with a progress note asking again."""
    deadline = time.monotonic() + 60
    while True:
        answer = web.client.get(url, headers={"HX-Request": "true"})
        if 'id="figures-pending"' not in answer.text or time.monotonic() > deadline:
            return answer
        assert f'hx-get="{url}"' in answer.text and 'hx-trigger="load delay:1s"' in answer.text
        time.sleep(0.1)


def _spec(html: str, chart_id: str) -> dict[str, Any]:
    match = re.search(rf'<script type="application/json" id="{chart_id}-spec">(.*?)</script>', html, re.S)
    assert match, f"no chart {chart_id}"
    spec: dict[str, Any] = json.loads(match.group(1))
    return spec


def _control_share(profile_id: str, salt: str = "accord-control") -> float:
    """Where a profile falls in messaging's deterministic global control group (percent)."""
    digest = hashlib.sha256(f"{salt}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def test_lift_lists_each_holdout_test_per_channel_and_the_global_control_group(web: Web) -> None:
    from accord.messaging.broadcasts import record_past_broadcast
    from accord.web.pages import lift

    ann, bob = web.profile_id("email:ann@example.com"), web.profile_id("user_id:u-bob")
    # Bob got the email, Ann was held out; within 7 days Bob ordered (r-2, a day ago) and Ann did not.
    sent_at = datetime.now(UTC) - timedelta(hours=36)
    record_past_broadcast(web.platform.state, "Spring mail", "email", sent_at, [bob], [ann], "test")
    shares = sorted([(_control_share(ann), ann), (_control_share(bob), bob)])
    web.platform.messaging.policy.control_group_percent = (shares[0][0] + shares[1][0]) / 2  # one in, one out
    lift.FIGURES.forget(web.platform.events)
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    page = web.client.get("/analytics/lift")
    assert page.status_code == 200 and 'hx-get="/analytics/lift/figures?window=7d"' in page.text
    assert 'href="/analytics/value"' in page.text  # the analytics tabs
    figures = _figures(web, "/analytics/lift/figures?window=7d")
    assert figures.status_code == 200 and "<html" not in figures.text
    row = figures.text.split('class="holdout-test" data-kind="broadcast"')[1].split("</tr>")[0]
    assert "Spring mail" in row and 'data-channel="email"' in row
    assert ">100.0%<" in row and ">0.0%<" in row and "+100.0" in row  # 1 of 1 messaged, 0 of 1 held out
    channel = figures.text.split('<tr data-channel="email">')[1].split("</tr>")[0]
    assert 'data-value="1"' in channel and "+100.0" in channel
    chart = _spec(figures.text, "lift-chart")
    email = next(r for r in chart["data"]["values"] if r["what"] == "email")
    assert email["lift"] == 100.0 and email["low"] <= 100.0 <= email["high"]
    assert 'id="global-table"' in figures.text and 'data-metric="converted"' in figures.text
    in_control = ann if shares[0][1] == ann else bob
    assert any(r["what"] == "global control" for r in chart["data"]["values"]), in_control
    web.platform.messaging.policy.control_group_percent = 0.0
    lift.FIGURES.forget(web.platform.events)
    off = _figures(web, "/analytics/lift/figures?window=3d")
    assert 'id="global-problem"' in off.text and "control_group_percent" in off.text


def test_customer_value_shows_the_clv_distribution_beside_churn_risk(web: Web) -> None:
    from accord.analytics import service as analytics
    from accord.web.pages import value

    ann, bob = web.profile_id("email:ann@example.com"), web.profile_id("user_id:u-bob")
    analytics.write_scores(
        web.platform.state,
        [
            {"profile_id": ann, "clv_minor": 125_000, "churn_risk": 0.1, "p_alive": 0.9, "currency": "PLN"},
            {"profile_id": bob, "clv_minor": 4_000, "churn_risk": 0.85, "p_alive": 0.15, "currency": "PLN"},
        ],
    )
    value.FIGURES.forget(web.platform.events)
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    assert web.client.get("/analytics/value").status_code == 200
    figures = _figures(web, "/analytics/value/figures")
    assert figures.status_code == 200 and 'id="value-source"' in figures.text
    assert 'data-value="2"' in figures.text and 'data-value="129000"' in figures.text  # 2 customers, 1,290 zł
    clv = _spec(figures.text, "clv-chart")["data"]["values"]
    assert sum(b["customers"] for b in clv) == 2 and clv[0]["customers"] == 1 and clv[-1]["customers"] == 1
    risk = _spec(figures.text, "risk-chart")["data"]["values"]
    assert [b["customers"] for b in risk] == [1, 0, 0, 0, 1]
    rows = re.findall(r'<tr data-customers="(\d+)">', figures.text)
    assert rows == ["1", "0", "0", "0", "1"]


def test_value_and_figures_helpers_bin_round_numbers() -> None:
    from accord.web.pages.value import _nice_step, value_figures

    assert _nice_step(950, 10) == 100 and _nice_step(12_345, 10) == 2000 and _nice_step(3, 10) == 1
    data = value_figures(
        {"source": "stored", "currency": "PLN", "computed_at": None, "rows": [(v * 1000.0, 0.5) for v in range(100)]}
    )
    assert sum(b["customers"] for b in data["clv_bins"]) == 100
    assert data["risk"][2]["customers"] == 100 and data["risk"][2]["clv_total"] == sum(v * 1000.0 for v in range(100))
    degenerate = value_figures(
        {"source": "fitted", "currency": "PLN", "computed_at": None, "rows": [(math.nan, 0.0), (5.0, 0.3)]}
    )  # BG/NBD on too short a history gives NaN: left out and counted, never a failed page
    assert degenerate["customers"] == 1 and degenerate["unscored"] == 1 and degenerate["risk"][1]["customers"] == 1


def test_commerce_draws_the_stores_on_a_map_from_local_outlines(web: Web) -> None:
    from accord.commerce import service as commerce

    commerce.locations.upsert_locations(
        web.platform.state,
        [{"id": STORE, "name": "Warszawa Centrum", "lat": 52.23, "lon": 21.01, "timezone": "Europe/Warsaw",
          "city": "Warsaw", "country": "PL"},
         {"id": "st-sha-01", "name": "Shanghai", "lat": 31.2352, "lon": 121.4751, "timezone": "Asia/Shanghai",
          "city": "Shanghai", "country": "CN"},
         {"id": "web", "name": "Web shop", "kind": "online", "timezone": "UTC"}],
    )  # fmt: skip
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    page = web.client.get("/commerce")
    spec = _spec(page.text, "stores-map")
    world, points = spec["layer"][0], spec["layer"][1]
    assert world["data"]["url"] == "/static/vendor/countries-110m.json" and world["mark"]["type"] == "geoshape"
    assert {(p["id"], p["lat"], p["lon"]) for p in points["data"]["values"]} == {
        (STORE, 52.23, 21.01),
        ("st-sha-01", 31.2352, 121.4751),
    }  # the web shop has no coordinates: in the table, not on the map
    assert spec["projection"]["center"][0] == round((21.01 + 121.4751) / 2, 4)
    assert "2 locations on the map" in page.text and 'id="stores"' in page.text
    outlines = web.client.get("/static/vendor/countries-110m.json")
    assert outlines.status_code == 200 and outlines.json()["type"] == "Topology"
    assert '"http' not in json.dumps(spec).replace('"https://vega.github.io/schema', "")  # nothing from outside


def test_loyalty_programme_rewards_and_a_customers_ledger(web: Web) -> None:
    from accord.loyalty.examples import EXAMPLE_REWARDS, apply_example
    from accord.loyalty.service import EarnRequest

    ann = web.profile_id("email:ann@example.com")
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    bare = web.client.get("/loyalty")
    assert bare.status_code == 200 and 'id="no-program"' in bare.text and "No rewards yet." in bare.text
    assert apply_example(web.platform.loyalty) == {"program_configured": True, "rewards_added": len(EXAMPLE_REWARDS)}
    loyalty = web.platform.loyalty
    loyalty.earn(ann, EarnRequest("t-1", "store", amount_minor=62_050, currency="PLN", store_id=STORE, reason="r-1"))
    loyalty.earn(ann, EarnRequest("t-2", "app", amount_minor=10_000, currency="PLN", reason="app order"))
    page = web.client.get("/loyalty")
    assert 'id="no-program"' not in page.text
    tiers = re.findall(r'<tr data-tier="(\w+)">.*?class="kind-number members">(\d+)<', page.text, re.S)
    assert tiers == [("member", "0"), ("silver", "1"), ("gold", "0")]  # 620 + 2 x 100 x 1.25 points: silver
    assert 'id="outstanding" data-value="870"' in page.text
    assert 'data-currency="DKK"' in page.text and "Canvas tote bag" in page.text and 'id="reward-form"' in page.text
    assert 'data-channel="app"' in page.text  # the app's multiplier
    ledger = web.client.get(f"/loyalty/customers/{ann}")
    assert ledger.status_code == 200 and 'id="balance" data-value="870"' in ledger.text
    assert ">silver<" in ledger.text and "1,130 points to gold" in ledger.text
    assert len(re.findall(r'<tr class="entry" data-kind="earn">', ledger.text)) == 2 and "+250" in ledger.text
    customer = web.client.get(f"/customers/{ann}")
    assert 'id="points-entries"' in customer.text and f'href="/loyalty/customers/{ann}"' in customer.text
    assert web.client.get("/loyalty/customers/nobody").status_code == 404
    polish = web.client.get("/loyalty", headers={"Accept-Language": "pl-PL,pl;q=0.9"})
    assert "Program lojalnościowy" in polish.text and "Katalog nagród" in polish.text and "po 365 dniach" in polish.text

    token = web.csrf(page.text)
    bad = web.client.post("/loyalty/rewards", data={"name": "Mug", "cost_points": "lots", "csrf_token": token})
    assert bad.status_code == 422 and 'id="reward-problem"' in bad.text and 'value="Mug"' in bad.text
    added = web.client.post(
        "/loyalty/rewards", data={"name": "Mug & 10% off", "cost_points": "300", "stock": "5", "csrf_token": token}
    )
    assert added.status_code == 200 and "Reward added: Mug &amp; 10% off" in added.text
    assert [r["name"] for r in loyalty.rewards()].count("Mug & 10% off") == 1


def test_an_associate_cannot_open_the_new_pages_and_an_analyst_changes_nothing(web: Web) -> None:
    ann = web.profile_id("email:ann@example.com")
    web.add_user("clerk@example.com", "associate", STORE)
    web.add_user("a@example.com", "analyst")
    web.login("clerk@example.com")
    for path in (*NEW_PAGES, f"/loyalty/customers/{ann}"):
        assert web.client.get(path).status_code == 403, path
    token = web.csrf(web.client.get(f"/store/{STORE}").text)
    denied = web.client.post("/loyalty/rewards", data={"name": "x", "cost_points": "1", "csrf_token": token})
    assert denied.status_code == 403
    nav = web.client.get(f"/store/{STORE}").text.split("<main>")[0]
    assert 'href="/loyalty"' not in nav
    web.logout()

    web.login("a@example.com")
    for path in (*NEW_PAGES, f"/loyalty/customers/{ann}", "/commerce"):
        assert web.client.get(path).status_code == 200, path
    page = web.client.get("/loyalty")
    assert 'href="/loyalty"' in page.text.split("<main>")[0] and 'id="reward-form"' not in page.text
    answer = web.client.post(
        "/loyalty/rewards", data={"name": "x", "cost_points": "1", "csrf_token": web.csrf(page.text)}
    )
    assert answer.status_code == 403 and "can read but not change" in answer.text
    assert web.platform.loyalty.rewards() == []
