"""The web app in-process: login, sessions, CSRF, roles, search, profile, unmerge, associate screen, languages."""

from __future__ import annotations

from tests.web.conftest import CARD, STORE, Web


def test_pages_need_a_login_and_the_session_cookie_is_safe(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    anonymous = web.client.get("/customers?q=x", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Fcustomers%3Fq%3Dx"
    htmx = web.client.get("/customers", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert web.login("m@example.com", "wrong password").status_code == 401
    done = web.login("m@example.com", follow=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"]
    assert "accord_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain http in the test; https requests get Secure (below)
    assert web.client.get("/").status_code == 200
    web.logout()
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    page = web.client.get("https://testserver.local/login")
    done = web.client.post(
        "https://testserver.local/login",
        data={"email": "m@example.com", "password": "correct horse battery", "csrf_token": web.csrf(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "Secure" in done.headers["set-cookie"]


def test_login_after_next_returns_to_the_page(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    page = web.client.get("/login?next=/customers")
    assert 'name="next" value="/customers"' in page.text
    evil = web.client.get("/login?next=//evil.example.com")
    assert 'name="next" value=""' in evil.text


def test_every_post_needs_the_csrf_token(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    page = web.client.get("/login")
    forged_login = web.client.post("/login", data={"email": "m@example.com", "password": "correct horse battery"})
    assert forged_login.status_code == 403 and "accord_session" not in forged_login.headers.get("set-cookie", "")
    assert web.login("m@example.com").status_code == 200
    pid = web.profile_id("email:ann@example.com")
    forged = web.client.post(f"/customers/{pid}/unmerge", data={"identifier": "anonymous_id:anon-ann"})
    assert forged.status_code == 403 and "security token" in forged.text
    wrong = web.client.post(
        f"/customers/{pid}/unmerge", data={"identifier": "anonymous_id:anon-ann", "csrf_token": "guess"}
    )
    assert wrong.status_code == 403
    assert web.profile_id("anonymous_id:anon-ann") == pid  # nothing changed
    page = web.client.get(f"/customers/{pid}")
    by_header = web.client.post(
        "/settings/language", data={"locale": "pl"}, headers={"X-CSRF-Token": web.csrf(page.text)}
    )
    assert by_header.status_code == 200 and 'lang="pl"' in by_header.text


def test_search_by_any_identifier_and_profile_with_timeline_across_channels(web: Web) -> None:
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    pid = web.profile_id("email:ann@example.com")
    for q in ("ann@example.com", "ANN@example.com", "+48 601 234 567", CARD, "user_id:u-ann", "anonymous_id:anon-ann"):
        page = web.client.get("/customers", params={"q": q})
        assert page.status_code == 200 and f'href="/customers/{pid}"' in page.text, q
    assert 'id="no-results"' in web.client.get("/customers", params={"q": "nobody@example.com"}).text
    bad = web.client.get("/customers", params={"q": "email:not-an-email"})
    assert bad.status_code == 200 and 'class="error"' in bad.text
    profile = web.client.get(f"/customers/{pid}")
    assert profile.status_code == 200 and "Ann Nowak" in profile.text
    channels = {ch for ch in ("web", "app", "email", "sms", "store") if f'data-channel="{ch}"' in profile.text}
    assert len(channels) >= 4, channels
    assert profile.text.count('class="event"') >= 7  # the 7 sent, and what domains emitted (e.g. points earned)
    assert "120,50" in profile.text or "120.50" in profile.text  # revenue in minor units shown as money
    assert 'class="small unmerge"' not in profile.text  # analysts read only: no unmerge button
    for section in ("consent", "segments", "points", "offers", "orders"):  # filled by their domains
        assert f'id="{section}"' in profile.text
    assert "Error:" not in profile.text and "Exception" not in profile.text


def test_timeline_pages_with_htmx(web: Web, monkeypatch: object) -> None:
    from accord.web.pages import customers

    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    pid = web.profile_id("email:ann@example.com")
    customers.TIMELINE_PAGE = 3
    try:
        first = web.client.get(f"/customers/{pid}")
        assert first.text.count('class="event"') == 3 and "hx-get=" in first.text
        more = first.text.split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
        second = web.client.get(more, headers={"HX-Request": "true"})
        assert second.status_code == 200 and "<html" not in second.text and second.text.count('class="event"') == 3
        only_web = web.client.get(f"/customers/{pid}", params={"channel": "web"})
        assert only_web.text.count('class="event" data-channel="web"') == 2
    finally:
        customers.TIMELINE_PAGE = 50


def test_unmerge_moves_the_identifier_to_a_new_profile(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    pid = web.profile_id("email:ann@example.com")
    page = web.client.get(f"/customers/{pid}")
    assert 'data-identifier="anonymous_id:anon-ann"' in page.text
    before = page.text.count('class="event"')
    done = web.client.post(
        f"/customers/{pid}/unmerge",
        data={"identifier": "anonymous_id:anon-ann", "csrf_token": web.csrf(page.text)},
    )
    assert done.status_code == 200 and 'id="unmerge-result"' in done.text
    assert 'data-identifier="anonymous_id:anon-ann"' not in done.text
    new_pid = web.profile_id("anonymous_id:anon-ann")
    assert new_pid != pid and f'href="/customers/{new_pid}"' in done.text
    moved = web.client.get(f"/customers/{new_pid}")
    assert moved.text.count('class="event"') == 1 and "Home" in moved.text  # the anonymous page view moved
    assert done.text.count('class="event"') < before
    refused = web.client.post(
        f"/customers/{new_pid}/unmerge",
        data={"identifier": "anonymous_id:anon-ann", "csrf_token": web.csrf(page.text)},
    )
    assert refused.status_code == 409


def test_analyst_cannot_change_anything(web: Web) -> None:
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    pid = web.profile_id("email:ann@example.com")
    page = web.client.get(f"/customers/{pid}")
    denied = web.client.post(
        f"/customers/{pid}/unmerge",
        data={"identifier": "anonymous_id:anon-ann", "csrf_token": web.csrf(page.text)},
    )
    assert denied.status_code == 403
    assert web.profile_id("anonymous_id:anon-ann") == pid
    assert web.client.get(f"/store/{STORE}").status_code == 200  # reading a store screen is fine


def test_associate_sees_only_their_store_and_the_customer_they_look_up(web: Web) -> None:
    web.add_user("clerk@example.com", "associate", STORE)
    landed = web.login("clerk@example.com")
    assert landed.url.path == f"/store/{STORE}"
    pid = web.profile_id("email:ann@example.com")
    for path in ("/", "/customers", f"/customers/{pid}", "/customers?q=ann@example.com", "/store/st-krk-01"):
        assert web.client.get(path).status_code == 403, path
    assert "Customers" not in web.client.get(f"/store/{STORE}").text.split("<main>")[0]  # no marketer nav
    found = web.client.get(f"/store/{STORE}/lookup", params={"q": CARD}, headers={"HX-Request": "true"})
    assert found.status_code == 200 and "Ann Nowak" in found.text and "<html" not in found.text
    assert 'id="store-visits">' in found.text and 'id="store-visits">0' not in found.text  # the till receipt here
    assert found.text.count('class="panel unavailable"') == 0  # points, offers, pickups are filled by their domains
    assert 'id="points-balance"' in found.text and 'id="no-offers"' in found.text
    by_phone = web.client.get(f"/store/{STORE}", params={"q": "601 234 567"})
    assert "Ann Nowak" in by_phone.text
    by_email = web.client.get(f"/store/{STORE}", params={"q": "ann@example.com"})
    assert 'id="not-found"' in by_email.text  # associates look up by card or phone only
    page = web.client.get(f"/store/{STORE}")
    denied = web.client.post(
        f"/customers/{pid}/unmerge", data={"identifier": "anonymous_id:anon-ann", "csrf_token": web.csrf(page.text)}
    )
    assert denied.status_code == 403


def test_polish_from_the_browser_or_the_setting(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    login_pl = web.client.get("/login", headers={"Accept-Language": "pl-PL,pl;q=0.9,en;q=0.5"})
    assert 'lang="pl"' in login_pl.text and "Zaloguj" in login_pl.text
    assert "Log in" in web.client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"}).text
    web.login("m@example.com")
    page = web.client.get("/customers")
    assert 'lang="en"' in page.text
    web.client.post("/settings/language", data={"locale": "pl", "csrf_token": web.csrf(page.text)})
    polish = web.client.get("/customers")
    assert 'lang="pl"' in polish.text and "Klienci" in polish.text


def test_overview_shows_channels_revenue_and_active_customers(web: Web) -> None:
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    page = web.client.get("/")
    assert page.status_code == 200 and page.headers["server-timing"].startswith("app;dur=")
    assert page.headers["cache-control"] == "no-store"
    assert 'id="active-customers">2<' in page.text
    assert 'id="events-per-day-spec"' in page.text and '"channel"' in page.text
    assert 'id="revenue"' in page.text and "No messages sent in this period." in page.text  # deliveries: none yet


def test_journeys_list_flow_with_counts_and_status_changes(web: Web) -> None:
    from accord.journeys import service as journeys

    journeys.apply_library(web.platform.state, activate=True)
    web.add_user("m@example.com", "marketer")
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    listing = web.client.get("/journeys")
    assert listing.status_code == 200 and 'href="/journeys/abandoned-cart"' in listing.text
    page = web.client.get("/journeys/abandoned-cart")
    assert page.status_code == 200
    for step in ("wait-1h", "reminder", "wait-1d", "coupon", "done"):
        assert f'id="step-{step}"' in page.text
    assert "<em>then</em>" in page.text and "<em>else</em>" in page.text and 'class="passed"' in page.text
    assert page.text.count('class="flow-step"') == 5 and 'class="edge-label">else<' in page.text  # the SVG diagram
    assert 'name="status"' not in page.text  # analysts see no start/pause/stop
    denied = web.client.post(
        "/journeys/abandoned-cart/status", data={"status": "paused", "csrf_token": web.csrf(page.text)}
    )
    assert denied.status_code == 403
    assert web.client.get("/journeys/nope").status_code == 404
    web.logout()
    web.login("m@example.com")
    page = web.client.get("/journeys/abandoned-cart")
    paused = web.client.post(
        "/journeys/abandoned-cart/status", data={"status": "paused", "csrf_token": web.csrf(page.text)}
    )
    assert paused.status_code == 200 and 'id="journey-status">paused<' in paused.text
    assert journeys.get(web.platform.state, "abandoned-cart")["status"] == "paused"
    bad = web.client.post(
        "/journeys/abandoned-cart/status", data={"status": "bogus", "csrf_token": web.csrf(page.text)}
    )
    assert bad.status_code == 422


def test_overview_figures_follow_new_events_within_the_staleness_bound(web: Web) -> None:
    from accord.web import metrics

    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    assert 'id="active-customers">2<' in web.client.get("/").text
    key = web.client.get("/api/v1/sources", headers={"Authorization": "Bearer secret-token"}).json()[0]["write_key"]
    carl = {"type": "track", "userId": "u-carl", "event": "Signed Up", "messageId": "carl-1"}
    assert web.client.post("/v1/batch", json={"batch": [carl]}, auth=(key, "")).status_code == 200
    assert web.platform.processor.drain()
    assert 'id="active-customers">2<' in web.client.get("/").text  # within 30 s the last figures may serve
    stale = metrics.MAX_STALE_SECONDS
    metrics.MAX_STALE_SECONDS = 0.0
    try:
        assert 'id="active-customers">3<' in web.client.get("/").text  # new events loaded: recomputed
    finally:
        metrics.MAX_STALE_SECONDS = stale


def test_associate_sees_an_active_coupon_and_redeems_it_once(web: Web) -> None:
    from accord.offers import service as offers

    pid = web.profile_id("email:ann@example.com")
    offer = offers.create_offer(
        web.platform.state,
        offers.OfferSpec(name="Spring 10%", code_policy="unique", discount_kind="percent", discount_value=1000,
                         stores=[STORE], per_customer_limit=1),
    )  # fmt: skip
    offers.generate_codes(web.platform.state, offer["id"], 3)
    given = offers.assign(web.platform.state, web.platform.journal, offer["id"], pid, delivery_channel="email")
    web.add_user("clerk@example.com", "associate", STORE)
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    seen = web.client.get(f"/store/{STORE}", params={"q": CARD})
    assert "Spring 10%" in seen.text and 'class="redeem"' not in seen.text  # analysts read only
    web.logout()
    web.login("clerk@example.com")
    page = web.client.get(f"/store/{STORE}", params={"q": CARD})
    code = given["code"]
    assert f'data-code="{code}"' in page.text and "sent by email" in page.text
    form = {"code": code, "profile_id": pid, "q": CARD, "idempotency_key": "till-1", "csrf_token": web.csrf(page.text)}
    done = web.client.post(f"/store/{STORE}/redeem", data=form, headers={"HX-Request": "true"})
    assert done.status_code == 200 and 'id="redeem-notice"' in done.text and code in done.text
    assert f'data-code="{code}"' not in done.text  # used: no longer offered
    again = web.client.post(f"/store/{STORE}/redeem", data=form)  # the same submit again: the same redemption
    assert again.status_code == 200 and 'id="redeem-notice"' in again.text
    other = web.client.post(f"/store/{STORE}/redeem", data=form | {"idempotency_key": "till-2"})
    assert other.status_code == 409 and 'id="redeem-problem"' in other.text
