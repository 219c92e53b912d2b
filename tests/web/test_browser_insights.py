"""The lift, customer value, store map and loyalty pages in Debian's Chromium against `accord serve` on a demo.

Each page is opened from the navigation, its figures checked against the demo's data, and a screenshot saved to
docs/screenshots/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.web.test_browser import PASSWORD, _accord, _chromium_or_skip, _login, _page, _remote_requests, _shot

pytestmark = pytest.mark.slow

POLICY = json.dumps({"control_group_percent": 10})  # a global control group to measure against


def _demo_customer(home: Path) -> tuple[str, str]:
    """(user id, profile id) of a demo customer with a user id and the longest points history (the backfill dated
    each account's opening at its first purchase)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{home / 'state.sqlite'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT i.value, i.profile_id FROM identifiers i JOIN loyalty_accounts a USING (profile_id) "
                    "WHERE i.type = 'user_id' AND a.balance > 0 ORDER BY a.created_at, i.value LIMIT 1"
                )
            ).one()
    finally:
        engine.dispose()
    return str(row[0]), str(row[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    home = tmp_path_factory.mktemp("insights") / "home"
    _accord(home, "demo", "--customers", "250", "--days", "365", "--seed", "11", "--no-serve")  # a year: CLV fits
    user_id, profile_id = _demo_customer(home)
    _accord(home, "users", "add", "marketer@example.com", "--role", "marketer", stdin=PASSWORD + "\n")
    _accord(home, "users", "add", "analyst@example.com", "--role", "analyst", stdin=PASSWORD + "\n")
    server = LiveServer(home, {"ACCORD_MESSAGING_POLICY": POLICY}).start()
    try:
        key = server.add_source("browser-app", "app")
        order = {  # bought in the app: the demo's programme earns 1 point per złoty, twice in the app
            "type": "track", "userId": user_id, "event": "Order Completed", "messageId": "browser-order-1",
            "properties": {"order_id": "browser-order-1", "revenue": 250.0, "currency": "PLN"},
            "context": {"channel": "app"},
        }  # fmt: skip
        with server.admin() as admin:  # the demo's history has earned the customer points already
            before = admin.get(f"/api/v1/loyalty/{profile_id}").json()
            httpx.post(f"{server.url}/v1/batch", json={"batch": [order]}, auth=(key, ""), timeout=30).raise_for_status()
            deadline = time.monotonic() + 60
            while (account := admin.get(f"/api/v1/loyalty/{profile_id}").json())["recent_entries"][:1] == (
                before["recent_entries"][:1]
            ):
                assert time.monotonic() < deadline, "the order earned no points"
                time.sleep(0.2)
        entry = account["recent_entries"][0]
        assert entry["order_id"] == "browser-order-1" and entry["points"] >= 500  # 250 zł x 2 in the app, x tier
        assert account["balance"] == before["balance"] + entry["points"]
        yield {"url": server.url, "profile": profile_id, "balance": account["balance"], "tier": account["tier"]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(demo: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield chromium
        chromium.close()


def _numbers(page: Any, selector: str) -> list[str]:
    return [str(v) for v in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.value)")]


def test_lift_and_customer_value_from_the_demo(browser: Any, demo: dict[str, Any]) -> None:
    page = _page(browser)
    remote = _remote_requests(page, demo["url"])
    _login(page, demo["url"], "analyst@example.com")
    page.click("nav >> text=Analytics")
    page.click("a[href='/analytics/lift']")
    page.wait_for_selector("#lift-chart[data-ready='1'] svg")  # measured behind a progress note, then drawn
    tests = page.locator("#tests-table tr.holdout-test")
    assert tests.count() >= 3  # the demo's campaigns, each with its holdout
    messaged = [int(v) for v in _numbers(page, "#tests-table tr.holdout-test td:nth-child(5)")]
    held = [int(v) for v in _numbers(page, "#tests-table tr.holdout-test td:nth-child(6)")]
    assert sum(messaged) > sum(held) > 0
    channels = page.eval_on_selector_all("#channel-lift-table tbody tr", "rows => rows.map(r => r.dataset.channel)")
    assert {"email", "sms"} & set(channels), channels
    intervals = page.locator("#channel-lift-table td.ci").all_inner_texts()
    assert all("…" in text for text in intervals) and len(intervals) == len(channels)
    assert page.locator("#global-table tr[data-metric='converted']").count() == 1  # 10% held out of everything
    _shot(page, "lift")

    page.click("a[href='/analytics/value']")
    page.wait_for_selector("#clv-chart[data-ready='1'] svg")
    page.wait_for_selector("#risk-chart[data-ready='1'] svg")
    scored = int(page.get_attribute("#scored-customers", "data-value"))
    assert scored > 20  # every demo buyer, from the models fitted on the demo's purchases
    buckets = page.eval_on_selector_all("#risk-table tbody tr", "rows => rows.map(r => Number(r.dataset.customers))")
    assert len(buckets) == 5 and sum(buckets) == scored
    assert int(page.get_attribute("#total-clv", "data-value")) > 0
    _shot(page, "customer-value")
    assert remote == []
    page.context.close()


def test_stores_on_a_map_and_the_loyalty_programme(browser: Any, demo: dict[str, Any]) -> None:
    page = _page(browser)
    remote = _remote_requests(page, demo["url"])
    _login(page, demo["url"], "marketer@example.com")
    page.click("nav >> text=Commerce")
    page.wait_for_selector("#stores-map[data-ready='1'] svg")
    located = page.eval_on_selector_all(
        "#stores tbody tr", "rows => rows.filter(r => r.cells[7].textContent.trim() !== '').length"
    )
    assert located >= 10
    page.wait_for_selector("#stores-map g.mark-shape path")  # the country outlines (geoshape), served locally
    assert page.locator("#stores-map g.mark-shape path").count() > 50
    assert page.locator("#stores-map g.mark-symbol path").count() == located  # one point per store
    cities = page.eval_on_selector_all("#stores-map g.mark-text text", "els => els.map(e => e.textContent)")
    assert {"Warsaw", "Copenhagen", "Shanghai"} <= set(cities), cities
    _shot(page, "stores-map")

    page.click("nav >> text=Loyalty")
    tiers = page.eval_on_selector_all("#tiers-table tbody tr", "rows => rows.map(r => r.dataset.tier)")
    assert tiers == ["member", "silver", "gold"]  # the demo's programme
    assert int(page.get_attribute("#accounts", "data-value")) >= 1
    assert page.locator("#rewards-table tr.reward").count() == 4
    page.fill("#r-name", "Umbrella")
    page.fill("#r-cost", "600")
    page.click("#reward-form button[type=submit]")
    page.wait_for_selector("#reward-added")
    assert page.locator("#rewards-table tr.reward").count() == 5
    _shot(page, "loyalty")

    page.goto(f"{demo['url']}/customers/{demo['profile']}")
    page.wait_for_selector("#points-entries tr.entry")
    page.click("#ledger-link")
    page.wait_for_selector("#ledger-table")
    assert page.get_attribute("#balance", "data-value") == str(demo["balance"])  # history's points and the order's
    assert page.inner_text("#tier") == demo["tier"]
    entry = page.locator("#ledger-table tr.entry").first
    assert entry.get_attribute("data-kind") == "earn" and "browser-order-1" in entry.inner_text()
    assert page.locator("#ledger-table tr.entry").count() > 1  # and the history's entries, at their dates
    _shot(page, "loyalty-ledger")
    assert remote == []
    page.context.close()
