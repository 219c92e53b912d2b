"""Tests for the synthetic demo retailer generator (accord.demo.generator)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from accord.demo.generator import (
    CATALOG_HEADER,
    CUSTOMERS_HEADER,
    FILES,
    ORDERS_HEADER,
    TRUTH_HEADER,
    DemoResult,
    DemoSpec,
    generate,
)
from accord.demo.legacy import LEGACY_HEADER

SPEC = DemoSpec(customers=200, days=60, seed=7)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ---- fixtures & helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return generate(SPEC, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def events(demo: DemoResult) -> list[dict[str, Any]]:
    with open(demo.out_dir / "events.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def stores(demo: DemoResult) -> dict[str, dict[str, Any]]:
    with open(demo.out_dir / "stores.json", encoding="utf-8") as fh:
        return {s["store_id"]: s for s in json.load(fh)}


@pytest.fixture(scope="module")
def orders(demo: DemoResult) -> list[dict[str, str]]:
    return read_csv(demo.out_dir / "orders.csv")[1]


@pytest.fixture(scope="module")
def crm(demo: DemoResult) -> list[dict[str, str]]:
    return read_csv(demo.out_dir / "customers.csv")[1]


@pytest.fixture(scope="module")
def truth(demo: DemoResult) -> dict[tuple[str, str], str]:
    _, rows = read_csv(demo.out_dir / "truth.csv")
    keys = [(r["identifier_type"], r["identifier_value"]) for r in rows]
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"duplicate identifiers in truth.csv: {dupes[:5]}"
    return {(r["identifier_type"], r["identifier_value"]): r["entity"] for r in rows}


def norm_email(raw: str) -> str:
    return raw.strip().lower()


def norm_phone(raw: str, region: str | None) -> str:
    num = phonenumbers.parse(raw, region)
    assert phonenumbers.is_valid_number(num), (raw, region)
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def event_identifiers(e: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Identifiers carried by one Segment message, normalised like the identity graph does."""
    if e.get("userId"):
        yield "user_id", e["userId"]
    if e.get("anonymousId"):
        yield "anonymous_id", e["anonymousId"]
    if e.get("previousId"):
        yield "anonymous_id", e["previousId"]
    ctx = e.get("context", {})
    device = ctx.get("device") or {}
    if device.get("id"):
        yield "device_id", device["id"]
    if device.get("token"):
        yield "push_token", device["token"]
    traits = e.get("traits") or {}
    if traits.get("email"):
        yield "email", norm_email(traits["email"])
    if traits.get("phone"):
        yield "phone", norm_phone(traits["phone"], traits.get("country"))
    ctx_traits = ctx.get("traits") or {}
    if ctx_traits.get("email"):
        yield "email", norm_email(ctx_traits["email"])
    if ctx_traits.get("phone"):
        yield "phone", norm_phone(ctx_traits["phone"], None)
    for ext in ctx.get("externalIds") or []:
        assert ext["type"] == "loyalty_card"
        yield "loyalty_card", ext["id"]


def order_identifiers(row: dict[str, str], stores: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str]]:
    if row["loyalty_card"]:
        yield "loyalty_card", row["loyalty_card"]
    if row["email"]:
        yield "email", norm_email(row["email"])
    if row["phone"]:
        yield "phone", norm_phone(row["phone"], stores[row["store_id"]]["country"])


def crm_identifiers(row: dict[str, str]) -> Iterator[tuple[str, str]]:
    yield "customer_id", row["customer_id"]
    if row["email"]:
        yield "email", norm_email(row["email"])
    if row["phone"]:
        yield "phone", norm_phone(row["phone"], row["country"])
    if row["loyalty_card"]:
        yield "loyalty_card", row["loyalty_card"]


def utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


# ---- determinism & bookkeeping -----------------------------------------------------------------------


def test_same_spec_gives_byte_identical_files(demo: DemoResult, tmp_path: Path) -> None:
    again = generate(SPEC, tmp_path / "again")
    for name in (*FILES, "manifest.json"):
        assert (demo.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    assert again.counts == demo.counts
    assert sorted(p.name for p in again.out_dir.iterdir()) == sorted((*FILES, "manifest.json"))


def test_different_seed_gives_different_data(demo: DemoResult, tmp_path: Path) -> None:
    other = generate(DemoSpec(customers=SPEC.customers, days=SPEC.days, seed=SPEC.seed + 1), tmp_path)
    assert (other.out_dir / "events.jsonl").read_bytes() != (demo.out_dir / "events.jsonl").read_bytes()
    assert (other.out_dir / "truth.csv").read_bytes() != (demo.out_dir / "truth.csv").read_bytes()


def test_manifest_and_counts_match_files(demo: DemoResult, events: list[dict[str, Any]]) -> None:
    manifest = json.loads((demo.out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == demo.counts
    assert manifest["files"] == list(FILES)
    assert manifest["spec"]["customers"] == SPEC.customers
    assert manifest["spec"]["days"] == SPEC.days
    assert manifest["spec"]["seed"] == SPEC.seed
    assert manifest["spec"]["end"] == "2026-11-01T00:00:00Z"

    c = demo.counts
    assert c["customers"] == SPEC.customers
    assert c["events"] == len(events)
    order_rows = read_csv(demo.out_dir / "orders.csv")[1]
    assert c["order_lines"] == len(order_rows)
    assert c["orders"] == len({r["order_id"] for r in order_rows})
    assert c["crm_rows"] == len(read_csv(demo.out_dir / "customers.csv")[1])
    assert c["identifiers"] == len(read_csv(demo.out_dir / "truth.csv")[1])
    assert c["products"] == len(read_csv(demo.out_dir / "catalog.csv")[1])
    # ~70% of people are in the CRM; a realistic amount of activity per person
    assert 0.55 <= c["crm_rows"] / c["customers"] <= 0.85
    assert c["events"] / c["customers"] >= 3


def test_progress_is_reported(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate(DemoSpec(customers=30, days=14, seed=1), tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 30)
    assert calls[-1] == (30, 30)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert all(t == 30 for _, t in calls)


def test_spec_is_validated() -> None:
    with pytest.raises(ValueError):
        DemoSpec(customers=0)
    with pytest.raises(ValueError):
        DemoSpec(days=0)
    with pytest.raises(ValueError):
        DemoSpec(end=datetime(2026, 11, 1))  # naive


# ---- reference files --------------------------------------------------------------------------------


def test_stores(stores: dict[str, dict[str, Any]]) -> None:
    physical = [s for s in stores.values() if s["kind"] == "store"]
    assert 12 <= len(physical) <= 20
    assert [s["store_id"] for s in stores.values() if s["kind"] == "warehouse"]
    assert stores["online"]["kind"] == "online"
    assert {s["country"] for s in physical} >= {"PL", "DK", "RU", "CN", "GB"}
    for s in stores.values():
        assert set(s) == {
            "store_id", "name", "kind", "country", "city", "lat", "lon", "timezone", "locale",
            "currency", "opening_hours", "pickup", "geofence_m",
        }  # fmt: skip
        assert s["locale"] in {"pl", "da", "ru", "zh", "en"}
        ZoneInfo(s["timezone"])
        assert -90 <= s["lat"] <= 90 and -180 <= s["lon"] <= 180
        assert isinstance(s["pickup"], bool) and isinstance(s["geofence_m"], int)
        assert set(s["opening_hours"]) == set(WEEKDAYS)
        for hours in s["opening_hours"].values():
            assert hours is None or (len(hours) == 2 and hours[0] < hours[1])
    assert stores["st-waw-01"]["timezone"] == "Europe/Warsaw"
    assert stores["st-waw-01"]["currency"] == "PLN"
    assert stores["st-waw-01"]["opening_hours"]["sun"] is None  # Polish Sunday trading ban


def test_catalog(demo: DemoResult) -> None:
    header, rows = read_csv(demo.out_dir / "catalog.csv")
    assert tuple(header) == CATALOG_HEADER
    assert 200 <= len(rows) <= 400
    assert len({r["sku"] for r in rows}) == len(rows)
    for r in rows:
        assert re.fullmatch(r"\d+\.\d{2}", r["price"]), r
        assert r["currency"] == "PLN"
        assert r["seasonal"] in {"", "spring", "winter"}
    assert {r["seasonal"] for r in rows} == {"", "spring", "winter"}


def test_crm_export(demo: DemoResult, crm: list[dict[str, str]]) -> None:
    header, _ = read_csv(demo.out_dir / "customers.csv")
    assert tuple(header) == CUSTOMERS_HEADER
    assert len({r["customer_id"] for r in crm}) == len(crm)
    for r in crm:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", r["created_at"]), r
        assert r["locale"] in {"pl", "da", "ru", "zh", "en"}
        assert r["birth_date"] == "" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["birth_date"])
        if r["phone"]:
            norm_phone(r["phone"], r["country"])  # valid for the customer's country
    # the CRM holds messy emails (case / whitespace) to exercise normalisation
    emails = [r["email"] for r in crm if r["email"]]
    assert any(e != norm_email(e) for e in emails)
    # and phones in national format (not only E.164)
    assert any(r["phone"] and not r["phone"].startswith("+") for r in crm)


# ---- events ------------------------------------------------------------------------------------------


def test_events_are_valid_sorted_segment_messages(events: list[dict[str, Any]]) -> None:
    assert events
    start, end = SPEC.start, SPEC.end
    ids = [e["messageId"] for e in events]
    assert len(set(ids)) == len(ids)
    previous = ""
    for e in events:
        assert e["type"] in {"identify", "track", "page", "screen", "alias"}, e
        assert TS_RE.match(e["timestamp"]), e["timestamp"]
        assert e["sentAt"] == e["timestamp"]
        assert e.get("userId") or e.get("anonymousId"), e
        assert isinstance(e["context"], dict)
        assert e["timestamp"] >= previous, "events.jsonl must be sorted by timestamp"
        previous = e["timestamp"]
        assert start <= utc(e["timestamp"]) < end
        if e["type"] == "track":
            assert e["event"]
        if e["type"] in ("page", "screen"):
            assert e["name"]
        if e["type"] == "identify":
            assert e["userId"]
        if e["type"] == "alias":
            assert e["userId"] and e["previousId"]
        if "userId" in e:
            assert re.fullmatch(r"u-[0-9a-f]{10}", e["userId"])


def test_channels_look_like_their_sources(events: list[dict[str, Any]]) -> None:
    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        ctx = e["context"]
        lib = ctx.get("library", {}).get("name")
        if "channel" in ctx:
            by_channel[ctx["channel"]].append(e)
        elif lib == "analytics.js":
            by_channel["web"].append(e)
            assert {"url", "path", "referrer"} <= set(ctx["page"])
            assert ctx["locale"]
            assert ctx["library"] == {"name": "analytics.js", "version": "2.11.1"}
        elif lib in ("analytics-ios", "analytics-android"):
            by_channel["app"].append(e)
            assert ctx["device"]["type"] == ("ios" if lib == "analytics-ios" else "android")
            assert ctx["device"]["id"] and ctx["app"]
            assert e["type"] in ("screen", "track", "identify")
        else:
            pytest.fail(f"unclassifiable event {e}")
    assert {"web", "app", "email", "push", "ads", "call_center", "messenger"} <= set(by_channel)

    for e in by_channel["web"]:
        assert e["anonymousId"]
        assert e["type"] in ("page", "track", "identify", "alias")
    for ch in ("email", "sms", "push"):
        for e in by_channel.get(ch, []):
            assert e["type"] == "track" and e["userId"] and e["properties"]["campaign_name"]
    assert {e["event"] for e in by_channel["email"]} >= {"Email Delivered", "Email Opened"}
    for e in by_channel["ads"]:
        assert e["event"] in ("Ad Clicked", "Ad Viewed") and e["anonymousId"]
        assert e["context"]["campaign"]["medium"] in ("cpc", "paid_social")
    for e in by_channel["call_center"]:
        assert e["event"] in ("Call Started", "Call Ended")
        assert e["context"]["traits"]["phone"].startswith("+")
    assert any("userId" in e for e in by_channel["call_center"])
    assert any("userId" not in e for e in by_channel["call_center"])
    for e in by_channel["messenger"]:
        assert e["event"] in ("Conversation Started", "Message Received")
        assert e["properties"]["provider"] in ("whatsapp", "messenger")
        assert e["context"]["traits"]["phone"].startswith("+")

    # campaign attribution (UTM) on some web visits
    mediums = {e["context"]["campaign"]["medium"] for e in by_channel["web"] if "campaign" in e["context"]}
    assert mediums & {"cpc", "paid_social", "email"}
    # app users with push tokens
    assert any("token" in e["context"]["device"] for e in by_channel["app"])


def test_order_completed_follows_ecommerce_spec(events: list[dict[str, Any]]) -> None:
    completed = [e for e in events if e.get("event") == "Order Completed"]
    assert completed
    libs = {e["context"]["library"]["name"] for e in completed}
    assert "analytics.js" in libs and libs & {"analytics-ios", "analytics-android"}
    for e in completed:
        props = e["properties"]
        assert props["order_id"] and props["currency"] in {"PLN", "DKK", "RUB", "KZT", "CNY", "GBP"}
        assert isinstance(props["revenue"], (int, float)) and props["revenue"] > 0
        assert props["products"]
        total = 0.0
        for item in props["products"]:
            assert {"product_id", "sku", "name", "price", "quantity", "category"} <= set(item)
            total += item["price"] * item["quantity"]
        assert props["revenue"] == pytest.approx(total, abs=0.011)
    assert any("userId" in e for e in completed)
    assert any("userId" not in e for e in completed)  # guest checkout
    assert len({e["properties"]["order_id"] for e in completed}) == len(completed)


# ---- receipts ----------------------------------------------------------------------------------------


def test_orders_are_within_store_opening_hours(
    demo: DemoResult, orders: list[dict[str, str]], stores: dict[str, dict[str, Any]]
) -> None:
    header, _ = read_csv(demo.out_dir / "orders.csv")
    assert tuple(header) == ORDERS_HEADER
    assert orders
    previous = datetime.min.replace(tzinfo=UTC)
    for r in orders:
        store = stores[r["store_id"]]
        assert store["kind"] == "store"
        assert r["currency"] == store["currency"]
        assert re.fullmatch(r"\d+\.\d{2}", r["unit_price"]) and int(r["quantity"]) >= 1
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", r["ordered_at"]), r
        written = datetime.fromisoformat(r["ordered_at"])
        local = written.astimezone(ZoneInfo(store["timezone"]))
        assert written.utcoffset() == local.utcoffset(), (r, store["timezone"])
        hours = store["opening_hours"][WEEKDAYS[local.weekday()]]
        assert hours is not None, f"store closed on {local:%A}: {r}"
        assert hours[0] <= local.strftime("%H:%M") < hours[1], (r, hours)
        assert SPEC.start <= written < SPEC.end
        assert written >= previous, "orders.csv must be sorted by time"
        previous = written


def test_receipt_identifier_mix(orders: list[dict[str, str]]) -> None:
    receipts: dict[str, dict[str, str]] = {}
    for r in orders:
        first = receipts.setdefault(r["order_id"], r)
        # identifiers are per receipt: every line of a receipt repeats them
        assert (r["loyalty_card"], r["email"], r["phone"]) == (first["loyalty_card"], first["email"], first["phone"])
    kinds = Counter(
        "card" if r["loyalty_card"] else "email" if r["email"] else "phone" if r["phone"] else "none"
        for r in receipts.values()
    )
    share = {k: v / len(receipts) for k, v in kinds.items()}
    assert 0.08 <= share.get("none", 0) <= 0.35, share
    assert share.get("card", 0) >= 0.25, share
    assert share.get("email", 0) > 0 and share.get("phone", 0) > 0, share


# ---- ground truth --------------------------------------------------------------------------------------


def test_truth_matches_every_identifier_used(
    demo: DemoResult,
    events: list[dict[str, Any]],
    orders: list[dict[str, str]],
    crm: list[dict[str, str]],
    stores: dict[str, dict[str, Any]],
    truth: dict[tuple[str, str], str],
) -> None:
    header, _ = read_csv(demo.out_dir / "truth.csv")
    assert tuple(header) == TRUTH_HEADER
    used: set[tuple[str, str]] = set()
    for e in events:
        used.update(event_identifiers(e))
    for r in orders:
        used.update(order_identifiers(r, stores))
    for r in crm:
        used.update(crm_identifiers(r))
    for r in read_csv(demo.out_dir / "legacy_customers.csv")[1]:
        used.update(crm_identifiers({**r, "customer_id": r["legacy_id"], "loyalty_card": ""}))
    missing = used - set(truth)
    assert not missing, f"identifiers used but absent from truth.csv: {sorted(missing)[:5]}"
    unused = set(truth) - used
    assert not unused, f"truth.csv lists identifiers that appear nowhere: {sorted(unused)[:5]}"
    assert {t for t, _ in truth} == {
        "email", "phone", "user_id", "anonymous_id", "device_id", "push_token", "loyalty_card", "customer_id",
    }  # fmt: skip


def test_truth_values_are_normalised(truth: dict[tuple[str, str], str]) -> None:
    for (typ, value), entity in truth.items():
        assert re.fullmatch(r"person-\d{6}", entity)
        if typ == "phone":
            num = phonenumbers.parse(value, None)
            assert phonenumbers.is_valid_number(num), value
            assert phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164) == value
        elif typ == "email":
            assert value == value.strip().lower() and "@" in value
            assert value.rsplit("@", 1)[1].split(".")[-2] == "example"  # reserved demo domains only
        else:
            assert value == value.strip() and value


def test_every_record_resolves_to_one_person(
    events: list[dict[str, Any]], orders: list[dict[str, str]], crm: list[dict[str, str]],
    stores: dict[str, dict[str, Any]], truth: dict[tuple[str, str], str],
) -> None:  # fmt: skip
    """Apart from shared household computers, all identifiers on one record belong to one person."""
    shared = shared_anonymous_ids(events)
    for e in events:
        ids = [i for i in event_identifiers(e) if i[1] not in shared]
        assert len({truth[i] for i in ids}) <= 1, e
    for r in orders:
        assert len({truth[i] for i in order_identifiers(r, stores)}) <= 1, r
    for r in crm:
        assert len({truth[i] for i in crm_identifiers(r)}) == 1, r


def shared_anonymous_ids(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    users: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.get("anonymousId") and e.get("userId"):
            users[e["anonymousId"]].add(e["userId"])
    return {anon: uids for anon, uids in users.items() if len(uids) > 1}


def test_household_shares_a_browser(events: list[dict[str, Any]], truth: dict[tuple[str, str], str]) -> None:
    shared = shared_anonymous_ids(events)
    assert shared, "expected at least one household computer used by two different userIds"
    for anon, uids in shared.items():
        assert len(uids) == 2
        entities = {truth[("user_id", u)] for u in uids}
        assert len(entities) == 2, "the household members are different people"
        # listed once (truth has unique keys), with one of the two members
        assert truth[("anonymous_id", anon)] in entities
        web = [e for e in events if e.get("anonymousId") == anon and "userId" in e]
        assert all(e["context"]["library"]["name"] == "analytics.js" for e in web)


def test_story2_card_at_till_then_app_login_by_phone(
    events: list[dict[str, Any]],
    orders: list[dict[str, str]],
    crm: list[dict[str, str]],
    truth: dict[tuple[str, str], str],
) -> None:
    first_card_use: dict[str, datetime] = {}
    for r in orders:
        if r["loyalty_card"]:
            at = datetime.fromisoformat(r["ordered_at"])
            if r["loyalty_card"] not in first_card_use or at < first_card_use[r["loyalty_card"]]:
                first_card_use[r["loyalty_card"]] = at
    card_by_phone = {
        norm_phone(r["phone"], r["country"]): r["loyalty_card"] for r in crm if r["loyalty_card"] and r["phone"]
    }
    cards_linked_in_app = {
        ext["id"] for e in events for ext in e["context"].get("externalIds", []) if ext["type"] == "loyalty_card"
    }
    found = []
    for e in events:
        if e["type"] != "identify" or "phone" not in e.get("traits", {}):
            continue
        if e["context"].get("library", {}).get("name") not in ("analytics-ios", "analytics-android"):
            continue
        card = card_by_phone.get(norm_phone(e["traits"]["phone"], e["traits"].get("country")))
        if card is None or card not in first_card_use or card in cards_linked_in_app:
            continue
        if "externalIds" in e["context"] or first_card_use[card] >= utc(e["timestamp"]):
            continue
        # ground truth: card, phone and the app user are one person
        assert truth[("loyalty_card", card)] == truth[("user_id", e["userId"])]
        found.append(card)
    assert found, "expected a customer known by card at the till who later logs into the app by phone"


def test_window_and_spread_on_a_full_year(tmp_path: Path) -> None:
    """A year-long run covers the year, every store country, seasonal spring buying and churn."""
    spec = DemoSpec(customers=400, days=365, seed=3)
    result = generate(spec, tmp_path)
    _, rows = read_csv(tmp_path / "orders.csv")
    months = Counter(datetime.fromisoformat(r["ordered_at"]).month for r in rows)
    assert len(months) == 12
    stores_used = {r["store_id"] for r in rows}
    assert len(stores_used) >= 12
    assert result.counts["spring_buyers"] > 0 and result.counts["churners"] > 0
    with open(tmp_path / "events.jsonl", encoding="utf-8") as fh:
        first = json.loads(fh.readline())
        for line in fh:
            last = line
    assert utc(first["timestamp"]) < spec.start + timedelta(days=2)
    assert utc(json.loads(last)["timestamp"]) > spec.end - timedelta(days=2)
    # heavy-tailed activity: the busiest people are far above the median
    per_user: Counter[str] = Counter()
    locales: set[str | None] = set()
    with open(tmp_path / "events.jsonl", encoding="utf-8") as fh:
        for line in fh:
            e = json.loads(line)
            locales.add(e["context"].get("locale"))
            if "userId" in e:
                per_user[e["userId"]] += 1
    counts = sorted(per_user.values())
    assert counts[-1] > 5 * counts[len(counts) // 2]
    assert {"pl-PL", "da-DK", "ru-RU", "ru-KZ", "zh-CN", "en-GB"} <= locales


def test_legacy_records_are_noisy_copies_sharing_no_identifier(
    demo: DemoResult, crm: list[dict[str, str]], truth: dict[tuple[str, str], str]
) -> None:
    header, legacy = read_csv(demo.out_dir / "legacy_customers.csv")
    assert tuple(header) == LEGACY_HEADER
    assert 0.15 <= len(legacy) / len(crm) <= 0.35
    by_entity = {truth[("customer_id", r["customer_id"])]: r for r in crm}
    typos = moved = 0
    for row in legacy:
        person = truth[("customer_id", row["legacy_id"])]
        original = by_entity[person]  # every legacy record is a CRM person's
        legacy_ids = set(crm_identifiers({**row, "customer_id": row["legacy_id"], "loyalty_card": ""}))
        assert not legacy_ids & set(crm_identifiers(original))
        typos += row["last_name"] != original["last_name"] or row["first_name"] != original["first_name"]
        moved += row["address"] != original["address"]
    assert typos > len(legacy) * 0.2 and moved > len(legacy) * 0.2
