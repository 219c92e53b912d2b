"""The marketer's workspace in-process: segment editor, analytics, messages, commerce, and who may do what there."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.web.conftest import STORE, Web

ORDERS = "name: buyers\ndescription: ordered anywhere\nrule:\n  event: Order Completed\n"
STORE_ORDERS = "name: buyers\ndescription: ordered in a store\nrule:\n  event: Order Completed\n  channel: store\n"
TEMPLATE = {
    "name": "spring-offer",
    "purpose": "promotions",
    "default_locale": "en",
    "locales": {
        "en": {
            "email": {
                "subject": "Spring offer for {{ first_name | default('you') }}",
                "html": "<p>Hi</p>",
                "text": "Hi",
            },
            "sms": {"text": "Spring offer, {{ first_name | default('friend') }}"},
        },
        "pl": {"email": {"subject": "Wiosenna oferta dla {{ first_name | default('Ciebie') }}", "text": "Cześć"}},
    },
}


def _count(html: str) -> int:
    found = re.search(r'id="preview-count" data-count="(\d+)"', html)
    assert found, html
    return int(found.group(1))


def _figures(web: Web) -> Any:
    """The analytics figures once computed: a slow first computation answers with a progress note that asks again."""
    deadline = time.monotonic() + 60
    while True:
        answer = web.client.get("/analytics/figures?window=30d", headers={"HX-Request": "true"})
        if 'id="figures-pending"' not in answer.text or time.monotonic() > deadline:
            return answer
        assert 'hx-trigger="load delay:1s"' in answer.text
        time.sleep(0.1)


def _preview(web: Web, text: str, token: str) -> str:
    answer = web.client.post(
        "/segments/preview", data={"definition": text}, headers={"HX-Request": "true", "X-CSRF-Token": token}
    )
    assert answer.status_code == 200 and "<html" not in answer.text
    return answer.text


def test_segment_editor_counts_live_shows_precise_errors_and_saves(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    editor = web.client.get("/segments/new")
    assert editor.status_code == 200 and 'hx-post="/segments/preview"' in editor.text
    token = web.csrf(editor.text)
    assert _count(_preview(web, ORDERS, token)) == 2  # Ann (till receipt) and Bob (web)
    assert _count(_preview(web, STORE_ORDERS, token)) == 1  # only Ann bought in a store
    wrong = _preview(web, STORE_ORDERS + "  within: 3x\n", token)
    assert 'id="rule-error"' in wrong and 'data-line="6"' in wrong and "rule.within" in wrong
    assert "is not a duration" in wrong and "preview-count" not in wrong
    unknown = _preview(web, "name: x\nrule:\n  evnt: Order Completed\n", token)
    assert 'data-line="3"' in unknown and "unknown condition" in unknown
    refused = web.client.post("/segments/", data={"definition": "name: x\nrule: {}\n", "csrf_token": token})
    assert refused.status_code == 422 and 'id="rule-error"' in refused.text and "name: x" in refused.text
    saved = web.client.post("/segments/", data={"definition": STORE_ORDERS, "csrf_token": token})
    assert saved.status_code == 200 and saved.url.path == "/segments/buyers" and 'id="segment-saved"' in saved.text
    assert "channel: store" in saved.text and 'id="members"' in saved.text
    pid = web.profile_id("email:ann@example.com")
    assert f'href="/customers/{pid}"' in saved.text
    listing = web.client.get("/segments")
    assert 'href="/segments/buyers"' in listing.text and 'data-value="1"' in listing.text
    assert web.client.get("/segments/nope").status_code == 404
    from accord.segments import service as segments

    assert segments.member_ids(web.platform.state, "buyers") == [pid]


def test_analytics_compares_attribution_models_and_scores_channels(web: Web) -> None:
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    page = web.client.get("/analytics")
    assert page.status_code == 200 and 'hx-get="/analytics/figures?window=30d"' in page.text
    figures = _figures(web)
    assert figures.status_code == 200 and "<html" not in figures.text
    assert 'id="attribution-chart-spec"' in figures.text and '"xOffset"' in figures.text
    for model in ("first", "last", "linear", "markov", "shapley"):
        assert f'"model": "{model}"' in figures.text or f'"model":"{model}"' in figures.text, model
    assert 'id="scorecard-table"' in figures.text and 'data-channel="store"' in figures.text
    assert 'id="cohorts-table"' in figures.text  # retention by first-purchase month
    assert "accord analyze clv" in figures.text  # no churn scores yet: the page says how to get them
    from accord.analytics import service as analytics
    from accord.web.pages import analytics as page

    pid = web.profile_id("email:ann@example.com")
    analytics.write_scores(web.platform.state, [{"profile_id": pid, "churn_risk": 0.72, "p_alive": 0.28}])
    page.FIGURES.forget(web.platform.events)
    scored = _figures(web)
    assert 'id="churn-chart-spec"' in scored.text and '"risk": "70-80%", "profiles": 1' in scored.text


def test_messages_preview_per_locale_and_a_broadcast_with_its_funnel(web: Web) -> None:
    from accord.segments import service as segments
    from accord.segments.engines import DuckDBEngine
    from accord.segments.rules import parse_documents

    web.platform.messaging.save_template(TEMPLATE)
    segments.apply_segment(
        web.platform.state, DuckDBEngine(web.platform.events), None, parse_documents(ORDERS, "segment")[0], None
    )
    web.add_user("m@example.com", "marketer")
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    listing = web.client.get("/messages")
    assert 'href="/messages/templates/spring-offer"' in listing.text and 'id="broadcast-form"' not in listing.text
    english = web.client.get("/messages/templates/spring-offer")
    assert (
        english.status_code == 200 and "Spring offer for you" in english.text and 'data-channel="sms"' in english.text
    )
    polish = web.client.get("/messages/templates/spring-offer?locale=pl")
    assert "Wiosenna oferta dla Ciebie" in polish.text
    assert 'data-channel="sms" data-locale="en"' in polish.text  # no Polish SMS: the default locale's
    assert web.client.get("/messages/templates/nope").status_code == 404
    denied = web.client.post(
        "/messages/broadcasts",
        data={"name": "x", "template": "spring-offer", "segment": "buyers", "csrf_token": web.csrf(listing.text)},
    )
    assert denied.status_code == 403
    web.logout()
    web.login("m@example.com")
    listing = web.client.get("/messages")
    token = web.csrf(listing.text)
    assert 'id="broadcast-form"' in listing.text
    missing = web.client.post(
        "/messages/broadcasts", data={"name": "", "template": "spring-offer", "csrf_token": token}
    )
    assert missing.status_code == 422 and 'id="broadcast-problem"' in missing.text
    sent = web.client.post(
        "/messages/broadcasts",
        data={"name": "Spring", "template": "spring-offer", "segment": "buyers", "holdout": "0", "csrf_token": token},
    )
    assert sent.status_code == 200 and sent.url.path.startswith("/messages/broadcasts/")
    assert 'id="funnel-spec"' in sent.text and 'id="planned"' in sent.text
    assert 'href="/messages/broadcasts/' in web.client.get("/messages").text


def test_commerce_lists_stores_with_pickups_and_stock(web: Web) -> None:
    from accord.commerce import service as commerce

    hours = {d: ["09:00", "21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}
    commerce.locations.upsert_locations(
        web.platform.state,
        [{"id": STORE, "name": "Warszawa Centrum", "lat": 52.23, "lon": 21.01, "timezone": "Europe/Warsaw",
          "opening_hours": hours, "pickup": True, "currency": "PLN", "city": "Warszawa", "country": "PL"}],
    )  # fmt: skip
    commerce.catalog.upsert_products(
        web.platform.state, [{"sku": "SKU-1", "name": "Mug", "price": 10, "currency": "PLN"}]
    )
    commerce.inventory.adjust(web.platform.state, web.platform.journal, STORE, "SKU-1", 7)
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    from accord.offers import service as offers

    spec = offers.OfferSpec(name="Spring 15%", code_policy="unique", discount_kind="percent", discount_value=1500)
    offers.create_offer(web.platform.state, spec)
    listing = web.client.get("/commerce")
    assert listing.status_code == 200 and f'href="/commerce/stores/{STORE}"' in listing.text
    assert 'id="offers"' in listing.text and "Spring 15%" in listing.text and "15.0%" in listing.text
    store = web.client.get(f"/commerce/stores/{STORE}")
    assert store.status_code == 200 and "Warszawa Centrum" in store.text and 'id="stock"' in store.text
    assert ">SKU-1<" in store.text and 'id="hours"' in store.text
    one = web.client.get(f"/commerce/stores/{STORE}?sku=SKU-1")
    assert 'id="nearby"' in one.text and "Warszawa Centrum" in one.text
    assert web.client.get("/commerce/stores/nowhere").status_code == 404


MARKETER_PAGES = ("/", "/customers", "/segments", "/segments/new", "/journeys", "/messages", "/analytics", "/commerce")


def test_an_associate_opens_only_their_store_screen(web: Web) -> None:
    web.add_user("clerk@example.com", "associate", STORE)
    web.login("clerk@example.com")
    for path in (*MARKETER_PAGES, "/analytics/figures", "/store/st-krk-01", "/store/st-krk-01/lookup?q=1"):
        assert web.client.get(path).status_code == 403, path
    page = web.client.get(f"/store/{STORE}")
    assert page.status_code == 200
    token = web.csrf(page.text)
    for path, form in (("/segments/preview", {"definition": ORDERS}), ("/segments/", {"definition": ORDERS}),
                       ("/store/st-krk-01/redeem", {"code": "X"})):  # fmt: skip
        assert web.client.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    nav = page.text.split("<main>")[0]
    assert all(f'href="{p}"' not in nav for p in MARKETER_PAGES if p != "/")


def test_an_analyst_reads_every_page_and_changes_nothing(web: Web) -> None:
    from accord.journeys import service as journeys
    from accord.segments import service as segments

    journeys.apply_library(web.platform.state, activate=True)
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    for path in MARKETER_PAGES:
        assert web.client.get(path).status_code == 200, path
    page = web.client.get("/segments/new")
    assert 'id="save-segment"' not in page.text and 'id="new-segment"' not in web.client.get("/segments").text
    token = web.csrf(page.text)
    assert _count(_preview(web, ORDERS, token)) == 2  # previewing reads only
    pid = web.profile_id("email:ann@example.com")
    writes = {
        "/segments/": {"definition": ORDERS},
        "/messages/broadcasts": {"name": "x", "template": "t", "segment": "s"},
        "/journeys/abandoned-cart/status": {"status": "paused"},
        f"/customers/{pid}/unmerge": {"identifier": "anonymous_id:anon-ann"},
        f"/store/{STORE}/redeem": {"code": "X", "profile_id": pid},
    }
    for path, form in writes.items():
        answer = web.client.post(path, data={**form, "csrf_token": token})
        assert answer.status_code == 403 and "can read but not change" in answer.text, path
    assert segments.list_segments(web.platform.state) == []
    assert journeys.get(web.platform.state, "abandoned-cart")["status"] == "active"
    assert web.profile_id("anonymous_id:anon-ann") == pid
