"""The web app in a real browser: Debian's Chromium driven by Playwright against `accord serve` on a small demo.

Screenshots of the main pages go to docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import os
import re
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

TEMPLATE = {
    "name": "spring-offer",
    "purpose": "promotions",
    "default_locale": "en",
    "locales": {
        "en": {
            "email": {
                "subject": "Spring offer for {{ first_name | default('you') }}",
                "html": "<h2>Spring is here</h2><p>Hi {{ first_name | default('there') }}, 15% off in every store.</p>",
                "text": "Hi {{ first_name | default('there') }}, 15% off in every store.",
            },
            "sms": {"text": "Spring: 15% off in every store, {{ first_name | default('friend') }}"},
        },
        "pl": {
            "email": {
                "subject": "Wiosenna oferta dla {{ first_name | default('Ciebie') }}",
                "html": "<h2>Wiosna!</h2><p>Cześć {{ first_name | default('') }}, 15% taniej w każdym sklepie.</p>",
                "text": "Cześć, 15% taniej w każdym sklepie.",
            }
        },
    },
}
SEGMENT = "name: web-buyers\ndescription: ordered in the last year\nrule:\n  event: Order Completed\n  within: 365d\n"


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
        chosen["other_store"] = next((s for _p, s, _n in store_rows if s != chosen.get("store")), "st-none")
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
        with server.admin() as admin:  # a template as a marketer would have written it (templates come by API)
            admin.post("/api/v1/templates", json=TEMPLATE).raise_for_status()
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
    """A screenshot of the page, kept small for the repository: at most 2,000 px tall, 128 colours."""
    from io import BytesIO

    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    image = Image.open(BytesIO(page.screenshot(full_page=True)))
    image = image.crop((0, 0, image.width, min(image.height, 2000))).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(SHOTS / f"{name}.png", optimize=True)


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
    _shot(page, "journeys")
    page.click("a[href='/journeys/abandoned-cart']")
    page.wait_for_selector("#flow-diagram g.flow-step")  # the diagram, drawn on the server as SVG
    assert page.locator("#flow-diagram g.flow-step").count() == 5 and page.locator("#flow .passed").count() == 5
    assert page.locator("#flow-diagram g.flow-step .step-counts").first.text_content().endswith("passed")
    _shot(page, "journey")
    assert remote == []  # nothing loaded from outside the server (no CDN)
    page.context.close()


def _count(page: Any) -> int:
    return int(page.get_attribute("#preview-count", "data-count"))


def _type_rule(page: Any, text: str, before: int | None) -> int:
    """Replace the editor's text and wait for the live count to come back (and differ from BEFORE when given)."""
    page.fill("#definition", text)
    if before is None:
        page.wait_for_selector("#rule-error")
        return -1
    page.wait_for_function(
        "before => { const el = document.querySelector('#preview-count'); "
        "return el !== null && Number(el.dataset.count) !== before; }",
        arg=before,
    )
    return _count(page)


def test_marketer_builds_a_segment_reads_attribution_and_launches_a_broadcast(
    browser: Any, demo: dict[str, Any]
) -> None:
    page = _page(browser)
    remote = _remote_requests(page, demo["url"])
    _login(page, demo["url"], "marketer@example.com")
    page.click("nav >> text=Segments")
    page.wait_for_selector("#segments")
    _shot(page, "segments")
    page.click("#new-segment")
    page.wait_for_selector("#preview-count")  # the starter rule, counted as the editor opens
    starter = _count(page)
    everywhere = _type_rule(page, SEGMENT, starter)
    web_only = _type_rule(page, SEGMENT + "  channel: web\n", everywhere)
    assert 0 < web_only < everywhere, (web_only, everywhere)  # the count follows the rule as it is typed
    _type_rule(page, SEGMENT.replace("365d", "a year") + "  channel: web\n", None)
    error = page.inner_text("#rule-error")
    assert "Line 5" in error and "rule.within" in error and "not a duration" in error
    assert page.locator("#preview-count").count() == 0
    _type_rule(page, SEGMENT + "  channel: web\n", -1)
    _shot(page, "segment-editor")
    page.click("#save-segment")
    page.wait_for_selector("#segment-saved")
    assert page.url.endswith("/segments/web-buyers?saved=1")
    assert re.sub(r"\D", "", page.inner_text("#saved-size")) == str(web_only)

    page.click("nav >> text=Analytics")
    page.wait_for_selector("#attribution-chart[data-ready='1'] svg")  # computed behind a progress note, then drawn
    assert page.locator("#attribution-table tbody tr").count() >= 3
    assert page.locator("#scorecard-table tbody tr").count() >= 3
    _shot(page, "analytics")

    page.click("nav >> text=Messages")
    page.click("a[href='/messages/templates/spring-offer?locale=pl']")
    page.wait_for_selector(".preview-channel[data-channel='email'][data-locale='pl']")
    assert page.locator(".preview-channel[data-channel='sms'][data-locale='en']").count() == 1  # falls back
    _shot(page, "template-preview")
    page.click("nav >> text=Messages")
    page.fill("#b-name", "Spring to web buyers")
    page.select_option("#b-segment", "web-buyers")
    page.click("#broadcast-form button[type=submit]")
    page.wait_for_selector("#funnel[data-ready='1'] svg")
    assert "Spring to web buyers" in page.inner_text("h1")
    _shot(page, "broadcast")

    page.click("nav >> text=Commerce")
    page.click(f"a[href='/commerce/stores/{demo['store']}']")
    page.wait_for_selector("#stock")
    _shot(page, "commerce-store")
    assert remote == []
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
    points = page.inner_text("#points-balance")
    assert int("".join(c for c in points if c.isdigit())) > 0  # the points the demo's past purchases earned
    coupon = page.locator(f"li.offer[data-code='{demo['coupon']}']")
    assert "Browser test 15%" in coupon.inner_text()
    _shot(page, "store")
    coupon.locator("button.redeem").click()
    page.wait_for_selector("#redeem-notice")
    assert demo["coupon"] in page.inner_text("#redeem-notice")
    assert page.locator(f"li.offer[data-code='{demo['coupon']}']").count() == 0  # used: no longer offered
    _shot(page, "store-redeemed")
    for path in ("/customers", "/segments", "/analytics", f"/store/{demo['other_store']}"):
        other = page.goto(f"{demo['url']}{path}")
        assert other is not None and other.status == 403, path
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
