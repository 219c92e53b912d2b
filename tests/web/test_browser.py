"""The web app in a real browser: Debian's Chromium driven by Playwright against `accord serve` on a small demo.

Screenshots of the main pages go to docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
PASSWORD = "browser-test-pass"

pytestmark = pytest.mark.slow


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (make test installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium package)")


def _accord(home: Path, *args: str, stdin: str | None = None) -> str:
    accord = str(Path(sys.executable).parent / "accord")
    env = {**os.environ, "ACCORD_HOME": str(home)}
    done = subprocess.run(
        [accord, *args], input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _pick_customers(home: Path) -> dict[str, str]:
    """From the loaded demo: a customer with an email seen on >= 4 channels and an identifier to unmerge; a card."""
    import duckdb
    import sqlalchemy as sa

    con = duckdb.connect(str(home / "events.duckdb"), read_only=True)
    engine = sa.create_engine(f"sqlite:///{home / 'state.sqlite'}")
    try:
        ranked = con.execute(
            "SELECT profile_id FROM (SELECT profile_id, channel, row_number() OVER "
            "(PARTITION BY profile_id ORDER BY timestamp DESC, event_id DESC) AS r FROM events "
            "WHERE profile_id IS NOT NULL) WHERE r <= 50 GROUP BY profile_id "
            "HAVING count(DISTINCT channel) >= 4 ORDER BY count(DISTINCT channel) DESC, profile_id"
        ).fetchall()
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT profile_id, type, value FROM identifiers")).fetchall()
        by_profile: dict[str, dict[str, list[str]]] = {}
        for pid, kind, value in rows:
            by_profile.setdefault(pid, {}).setdefault(kind, []).append(value)
        chosen: dict[str, str] = {}
        for (pid,) in ranked:
            ids = by_profile.get(pid, {})
            movable = ids.get("anonymous_id") or ids.get("device_id")
            if ids.get("email") and movable:
                kind = "anonymous_id" if ids.get("anonymous_id") else "device_id"
                chosen |= {"profile": pid, "email": ids["email"][0], "unmerge": f"{kind}:{movable[0]}"}
                break
        store_rows = con.execute(  # a Polish till first: the test machine has Latin fonts only
            "SELECT profile_id, store_id, count(*) FROM events WHERE store_id IS NOT NULL AND profile_id IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY starts_with(any_value(store_id), 'st-waw') DESC, 3 DESC, 1"
        ).fetchall()
        for pid, store_id, _n in store_rows:
            cards = by_profile.get(pid, {}).get("loyalty_card")
            if cards and pid != chosen.get("profile"):
                chosen |= {"card": cards[0], "store": store_id, "card_profile": pid}
                break
    finally:
        con.close()
        engine.dispose()
    assert {"email", "card"} <= chosen.keys(), chosen
    return chosen


def _give_coupon(home: Path, profile_id: str, store_id: str) -> str:
    """A single-use coupon for the looked-up customer, usable at the associate's store (as a campaign would send)."""
    from accord.collect.journal import Journal
    from accord.offers import service as offers
    from accord.storage import create_state_engine

    engine = create_state_engine(f"sqlite:///{home / 'state.sqlite'}")
    try:
        offer = offers.create_offer(
            engine,
            offers.OfferSpec(name="Browser test 15%", code_policy="unique", discount_value=1500, stores=[store_id]),
        )
        offers.generate_codes(engine, offer["id"], 2)
        given = offers.assign(engine, Journal(engine), offer["id"], profile_id, delivery_channel="sms")
    finally:
        engine.dispose()
    return str(given["code"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    home = tmp_path_factory.mktemp("browser") / "home"
    _accord(home, "demo", "--customers", "150", "--days", "60", "--no-serve")
    picked = _pick_customers(home)
    picked["coupon"] = _give_coupon(home, picked["card_profile"], picked["store"])
    _accord(home, "users", "add", "marketer@example.com", "--role", "marketer", stdin=PASSWORD + "\n")
    _accord(home, "users", "add", "clerk@example.com", "--role", "associate", "--store", picked["store"],
            stdin=PASSWORD + "\n")  # fmt: skip
    server = LiveServer(home).start()
    try:
        yield {"url": server.url, **picked}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(demo: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def _page(browser: Any, locale: str = "en-GB") -> Any:
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, offline=False)
    context.set_default_timeout(20_000)
    return context.new_page()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login(page: Any, url: str, email: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _remote_requests(page: Any, url: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if not request.url.startswith(url) else None)
    return seen


def test_marketer_finds_a_customer_sees_channels_and_unmerges(browser: Any, demo: dict[str, Any]) -> None:
    page = _page(browser)
    remote = _remote_requests(page, demo["url"])
    _login(page, demo["url"], "marketer@example.com")
    assert page.url.rstrip("/") == demo["url"]
    page.wait_for_selector("div.vega[data-ready='1'] svg")  # the chart rendered from local assets
    _shot(page, "overview")

    page.click("nav >> text=Customers")
    page.fill("#q", demo["email"])
    page.press("#q", "Enter")
    page.click("a.profile-link")
    page.wait_for_selector("#timeline tr.event")
    assert page.url.endswith(f"/customers/{demo['profile']}")
    channels = set(page.eval_on_selector_all("#timeline tr.event", "rows => rows.map(r => r.dataset.channel)"))
    assert len(channels) >= 4, channels
    marks = page.eval_on_selector_all("#timeline tr.event .channel", "els => els.map(e => e.dataset.channel)")
    assert len(marks) == page.locator("#timeline tr.event").count() and set(marks) == channels  # every row marked
    _shot(page, "customer")

    identifier = demo["unmerge"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"tr[data-identifier='{identifier}'] button.unmerge")
    page.wait_for_selector("#unmerge-result")
    assert page.locator(f"tr[data-identifier='{identifier}']").count() == 0
    _shot(page, "unmerged")
    page.click("#unmerge-result a")
    page.wait_for_selector("#identifiers")
    assert page.locator(f"tr[data-identifier='{identifier}']").count() == 1
    assert not page.url.endswith(demo["profile"])

    page.click("nav >> text=Journeys")
    page.click("a[href='/journeys/abandoned-cart']")
    page.wait_for_selector("#flow li.step")
    assert page.locator("#flow li.step").count() == 5 and page.locator("#flow .passed").count() == 5
    _shot(page, "journey")
    assert remote == []  # nothing loaded from outside the server (no CDN)
    page.context.close()


def test_associate_looks_up_a_loyalty_card_at_their_store(browser: Any, demo: dict[str, Any]) -> None:
    page = _page(browser)
    _login(page, demo["url"], "clerk@example.com")
    assert page.url == f"{demo['url']}/store/{demo['store']}"
    page.fill("#q", demo["card"])
    page.press("#q", "Enter")
    page.wait_for_selector("#customer-card")  # swapped in by htmx
    assert page.url == f"{demo['url']}/store/{demo['store']}"  # a partial update, not a page load
    assert demo["card"] in page.inner_text("#customer-card")
    assert page.locator(".panel.unavailable").count() == 0  # points, offers and pickups come from their domains
    coupon = page.locator(f"li.offer[data-code='{demo['coupon']}']")
    assert "Browser test 15%" in coupon.inner_text()
    _shot(page, "store")
    coupon.locator("button.redeem").click()
    page.wait_for_selector("#redeem-notice")
    assert demo["coupon"] in page.inner_text("#redeem-notice")
    assert page.locator(f"li.offer[data-code='{demo['coupon']}']").count() == 0  # used: no longer offered
    _shot(page, "store-redeemed")
    other = page.goto(f"{demo['url']}/customers")
    assert other is not None and other.status == 403
    page.context.close()


def test_polish_ui_from_the_browser_language(browser: Any, demo: dict[str, Any]) -> None:
    page = _page(browser, locale="pl-PL")
    page.goto(f"{demo['url']}/login")
    assert page.inner_text("h1") == "Zaloguj się do Accord"
    _login(page, demo["url"], "marketer@example.com")
    page.goto(f"{demo['url']}/customers")
    assert page.inner_text("h1") == "Klienci"
    _shot(page, "customers-pl")
    page.context.close()


def test_screenshots_directory_is_in_the_repository() -> None:
    assert shutil.which("git") is None or SHOTS.parent.name == "docs"
