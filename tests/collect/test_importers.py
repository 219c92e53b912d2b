"""File importers: POS receipts, CRM customers and JSONL events into a real journal and event store."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from accord.collect.importers import (
    BoundedSink,
    CustomerColumns,
    ImportFailed,
    ImportFileError,
    ImportReport,
    OrderColumns,
    import_customers,
    import_events,
    import_orders,
)
from accord.collect.imports import JournalSink, Numbered, SendResult
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.config import load_settings
from accord.identity.queries import profile_for_identifier
from accord.platform import Platform, open_platform

ORDERS_HEADER = "order_id,store_id,ordered_at,loyalty_card,email,phone,sku,quantity,unit_price,currency"
CUSTOMERS_HEADER = "customer_id,email,phone,first_name,last_name,loyalty_card,country,city,locale,birth_date,created_at"


@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    platform = open_platform(load_settings({"ACCORD_HOME": str(tmp_path / "home")}))
    yield platform
    platform.close()


def sink_for(platform: Platform, name: str, channel: str) -> tuple[JournalSink, str]:
    source = ensure_source(platform.state, name, channel)
    return JournalSink(platform.journal, SourceInfo(source.id, source.channel)), source.id


def write(path: Path, header: str, rows: Sequence[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_balanced(report: ImportReport) -> None:
    assert report.rows == report.imported_rows + report.rejected_rows
    assert report.messages == report.accepted + report.duplicates + report.rejected_messages
    assert report.balanced


def by_message(platform: Platform, source_id: str, *ids: str) -> dict[str, dict[str, Any]]:
    return {e["message_id"]: e for e in platform.events.events_by_message(source_id, list(ids))}


# ---- orders -------------------------------------------------------------------------------------------


def internal_sources(plat: Platform) -> list[str]:
    """Ids of the sources Accord's own domains emit through (loyalty points, journeys, ...)."""
    from accord.collect.sources import list_sources

    return [s.id for s in list_sources(plat.state) if s.write_key.startswith("internal_")] or [""]


def test_orders_become_order_completed_events_on_the_card_holders_profile(plat: Platform, tmp_path: Path) -> None:
    crm_sink, _ = sink_for(plat, "crm-import", "other")
    customers = write(
        tmp_path / "customers.csv",
        CUSTOMERS_HEADER,
        ["C1,ann@example.com,+48601000001,Ann,Nowak,2990000000011,PL,Kraków,pl,1990-04-01,2024-01-02T10:00:00Z"],
    )
    assert import_customers(customers, crm_sink).accepted == 1
    sink, source_id = sink_for(plat, "pos-import", "store")
    orders = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER,
        [
            "POS-1,st-waw-01,2025-03-01T12:00:00+01:00,2990000000011,,,SKU-A,2,12.50,PLN",
            "POS-1,st-waw-01,2025-03-01T12:00:00+01:00,2990000000011,,,SKU-B,3,0.10,PLN",
            "POS-2,st-waw-01,2025-03-01T12:05:00+01:00,,,,SKU-C,1,99.99,PLN",  # a cash sale
            "POS-3,st-waw-02,2025-03-01T12:10:00Z,,Bob@Example.com ,601000002,SKU-A,1,12.50,PLN",
        ],
    )
    seen: list[int] = []
    report = import_orders(orders, sink, progress=seen.append)
    assert (report.rows, report.messages, report.accepted, report.duplicates, report.rejected_rows) == (4, 3, 3, 0, 0)
    assert report.rejects_path is None and not (tmp_path / "orders.csv.rejects.csv").exists()
    assert seen and seen[-1] == 4
    assert_balanced(report)
    assert plat.processor.drain()

    events = by_message(plat, source_id, "order:POS-1", "order:POS-2", "order:POS-3")
    first = events["order:POS-1"]
    assert (first["type"], first["event"], first["channel"]) == ("track", "Order Completed", "store")
    assert (first["revenue_minor"], first["currency"], first["store_id"]) == (2530, "PLN", "st-waw-01")
    assert first["profile_id"] == profile_for_identifier(plat.state, "loyalty_card:2990000000011")
    assert first["profile_id"] == profile_for_identifier(plat.state, "customer_id:C1")
    raw = json.loads(first["raw"])
    assert raw["properties"]["products"] == [
        {"product_id": "SKU-A", "sku": "SKU-A", "quantity": 2, "price": 12.5},
        {"product_id": "SKU-B", "sku": "SKU-B", "quantity": 3, "price": 0.1},
    ]
    assert raw["properties"]["revenue"] == 25.3 and raw["properties"]["order_id"] == "POS-1"
    assert raw["context"]["store"] == {"id": "st-waw-01"}
    assert raw["context"]["externalIds"][0]["type"] == "loyalty_card"
    assert "traits" not in raw["context"]

    cash = events["order:POS-2"]
    assert cash["revenue_minor"] == 9999 and cash["identifiers"] == []
    emailed = events["order:POS-3"]
    assert emailed["profile_id"] == profile_for_identifier(plat.state, "email:bob@example.com")
    assert emailed["profile_id"] == profile_for_identifier(plat.state, "phone:+48601000002")

    again = import_orders(orders, sink)  # re-import adds nothing
    assert (again.accepted, again.duplicates, again.messages) == (0, 3, 3)
    assert_balanced(again)
    assert plat.processor.drain()
    collected = plat.events.query("SELECT count(*) FROM events WHERE source_id <> ALL (?)", [internal_sources(plat)])
    assert collected[0][0] == 4  # 1 identify + 3 orders (loyalty's points events come from its own source)


def test_bad_rows_are_rejected_with_their_numbers_and_the_good_ones_imported(plat: Platform, tmp_path: Path) -> None:
    sink, source_id = sink_for(plat, "pos-import", "store")
    orders = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER,
        [
            "OK-1,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN",  # row 2
            "BADQ,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN",  # row 3: its order has a bad line
            "BADQ,s1,2025-03-01T12:00:00+01:00,,,,SKU-B,1.5,10.00,PLN",  # row 4
            "BADP,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,12;50,PLN",  # row 5
            "BADC,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,ZZZ",  # row 6
            "NAIVE,s1,2025-03-01 12:00:00,,,,SKU-A,1,10.00,PLN",  # row 7
            ",s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN",  # row 8
            "MIX,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN",  # row 9
            "MIX,s2,2025-03-01T12:00:00+01:00,,,,SKU-B,1,10.00,PLN",  # row 10: another store
            "OK-2,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,0,10.00,PLN",  # row 11: zero quantity
            "OK-1,s1,2025-03-01T12:00:00+01:00,,,,SKU-C,1,10.00,PLN",  # row 12: OK-1 again, not adjacent
            "FUTURE,s1,2099-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN",  # row 13: rejected by the sink
            "OK-3,s1,2025-03-01T12:00:00Z,,,,SKU-A,3,1.00,EUR",  # row 14
        ],
    )
    report = import_orders(orders, sink)
    assert_balanced(report)
    assert (report.rows, report.imported_rows, report.rejected_rows) == (13, 2, 11)
    assert (report.messages, report.accepted, report.rejected_messages) == (11, 2, 9)
    assert report.rejects_path == tmp_path / "orders.csv.rejects.csv"
    rejects = {int(r["row"]): r for r in read_rejects(report.rejects_path)}
    assert sorted(rejects) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert rejects[4]["code"] == "invalid_quantity" and "1.5" in rejects[4]["reason"]
    assert rejects[3]["code"] == "invalid_quantity" and "because of row 4" in rejects[3]["reason"]
    assert rejects[3]["raw"] == "BADQ,s1,2025-03-01T12:00:00+01:00,,,,SKU-A,1,10.00,PLN"
    assert rejects[5]["code"] == "invalid_price"
    assert rejects[6]["code"] == "invalid_currency" and "ZZZ" in rejects[6]["reason"]
    assert rejects[7]["code"] == "invalid_timestamp" and "no UTC offset" in rejects[7]["reason"]
    assert rejects[8]["code"] == "missing_field" and "order_id" in rejects[8]["reason"]
    assert rejects[10]["code"] == "inconsistent_order" and "store_id" in rejects[10]["reason"]
    assert rejects[9]["code"] == "inconsistent_order"
    assert rejects[11]["code"] == "invalid_quantity"
    assert rejects[12]["code"] == "order_split" and "row 2" in rejects[12]["reason"]
    assert rejects[13]["code"] == "invalid_timestamp" and "future" in rejects[13]["reason"]
    assert plat.processor.drain()
    assert set(by_message(plat, source_id, "order:OK-1", "order:OK-3")) == {"order:OK-1", "order:OK-3"}
    assert by_message(plat, source_id, "order:OK-3")["order:OK-3"]["revenue_minor"] == 300

    fixed = write(tmp_path / "fixed.csv", ORDERS_HEADER, ["OK-4,s1,2025-03-01T12:00:00Z,,,,SKU-A,1,1.00,PLN"])
    stale = tmp_path / "fixed.csv.rejects.csv"
    stale.write_text("row,code,reason,raw\n2,x,y,z\n", encoding="utf-8")
    assert import_orders(fixed, sink).rejects_path is None
    assert not stale.exists()  # our own stale rejects file does not outlive a clean run


def test_naive_times_need_a_timezone_and_money_is_summed_exactly(plat: Platform, tmp_path: Path) -> None:
    sink, source_id = sink_for(plat, "pos-import", "store")
    rows = [f"N1,s1,2025-07-01 09:30:00,,,,SKU-{i},1,0.10,PLN" for i in range(3)]
    rows.append("J1,s1,2025-07-01 09:30:00,,,,SKU-J,3,333,JPY")
    orders = write(tmp_path / "orders.csv", ORDERS_HEADER, rows)
    rejected = import_orders(orders, sink, rejects_path=tmp_path / "r.csv")
    assert rejected.rejected_rows == 4 and rejected.rejects_path == tmp_path / "r.csv"
    report = import_orders(orders, sink, timezone="Europe/Warsaw")
    assert report.accepted == 2 and report.rejects_path is None
    assert plat.processor.drain()
    events = by_message(plat, source_id, "order:N1", "order:J1")
    assert events["order:N1"]["revenue_minor"] == 30  # 3 x 0.10, not 0.30000000000000004
    assert json.loads(events["order:N1"]["raw"])["properties"]["revenue"] == 0.3
    assert events["order:J1"]["revenue_minor"] == 999  # yen have no minor unit
    assert events["order:N1"]["timestamp"].isoformat().startswith("2025-07-01T07:30:00")


def test_order_columns_can_be_mapped(plat: Platform, tmp_path: Path) -> None:
    sink, source_id = sink_for(plat, "kiosk-import", "kiosk")
    orders = write(
        tmp_path / "receipts.csv",
        "receipt,shop,when,card,article,qty,price,cur,land",
        ["R1,k1,2025-03-01T10:00:00Z,,A1,1,5.00,DKK,DK", "R2,k1,2025-03-01T11:00:00Z,,A1,2,5.00,DKK,DK"],
    )
    mapping = OrderColumns.from_pairs(
        {
            "order_id": "receipt",
            "store_id": "shop",
            "ordered_at": "when",
            "loyalty_card": "card",
            "sku": "article",
            "quantity": "qty",
            "unit_price": "price",
            "currency": "cur",
            "country": "land",
        }
    )
    report = import_orders(orders, sink, mapping, channel="kiosk")
    assert report.accepted == 2
    assert plat.processor.drain()
    event = by_message(plat, source_id, "order:R2")["order:R2"]
    assert (event["channel"], event["revenue_minor"], event["store_id"]) == ("kiosk", 1000, "k1")
    with pytest.raises(ImportFileError, match="receipt"):
        import_orders(orders, sink)  # the default header names are not there
    with pytest.raises(ImportFileError, match="'nope'"):
        import_orders(orders, sink, OrderColumns.from_pairs({"order_id": "nope"}))
    with pytest.raises(ImportFileError, match="unknown order field"):
        OrderColumns.from_pairs({"colour": "x"})
    with pytest.raises(ImportFileError, match="file not found"):
        import_orders(tmp_path / "missing.csv", sink)


def test_national_phones_use_the_store_country(plat: Platform, tmp_path: Path) -> None:
    sink, _ = sink_for(plat, "pos-import", "store")
    orders = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER,
        ["D1,st-cph-01,2025-03-01T12:00:00+01:00,,,20123456,SKU-A,1,10.00,DKK"],
    )
    import_orders(orders, sink, store_countries={"st-cph-01": "DK"})
    assert plat.processor.drain()
    assert profile_for_identifier(plat.state, "phone:+4520123456") is not None


# ---- customers ----------------------------------------------------------------------------------------


def test_customers_link_every_identifier_into_one_profile(plat: Platform, tmp_path: Path) -> None:
    sink, source_id = sink_for(plat, "crm-import", "other")
    customers = write(
        tmp_path / "customers.csv",
        CUSTOMERS_HEADER,
        [
            "C1, Ann.Nowak@Example.com ,601 000 001,Ann,Nowak,2990000000011,PL,Kraków,pl,1990-04-01,"
            "2024-01-02T10:00:00Z",
            "C2,,,Bob,,,PL,,,,",
            ",,,Nobody,Known,,PL,,,,2024-01-02T10:00:00Z",  # row 4: no identifier
            "C3,c3@example.com,,Cy,,,PL,,,,2024-01-02 10:00",  # row 5: time without offset
            "C4,c4@example.com,,Short",  # row 6: too few fields
        ],
    )
    report = import_customers(customers, sink)
    assert_balanced(report)
    assert (report.rows, report.accepted, report.rejected_rows) == (5, 2, 3)
    rejects = {int(r["row"]): r["code"] for r in read_rejects(report.rejects_path or Path())}
    assert rejects == {4: "missing_identity", 5: "invalid_timestamp", 6: "invalid_row"}
    assert plat.processor.drain()
    keys = ["email:ann.nowak@example.com", "phone:+48601000001", "loyalty_card:2990000000011", "customer_id:C1"]
    profiles = {profile_for_identifier(plat.state, k) for k in keys}
    assert len(profiles) == 1 and None not in profiles
    assert profile_for_identifier(plat.state, "customer_id:C2") not in profiles | {None}

    events = plat.events.events_by_message(source_id, _message_ids(plat, source_id))
    ann = next(e for e in events if "customer_id:C1" in e["identifiers"])
    raw = json.loads(ann["raw"])
    assert "userId" not in raw and "anonymousId" not in raw
    assert raw["traits"]["birthday"] == "1990-04-01" and raw["traits"]["first_name"] == "Ann"
    assert raw["traits"]["email"] == "Ann.Nowak@Example.com"  # as given; the identity graph normalises
    assert "customer_id" not in raw["traits"] and "loyalty_card" not in raw["traits"]
    assert ann["timestamp"].isoformat().startswith("2024-01-02T10:00:00")
    bob = next(e for e in events if "customer_id:C2" in e["identifiers"])
    assert "timestamp" not in json.loads(bob["raw"]) or json.loads(bob["raw"])["timestamp"] is None

    again = import_customers(customers, sink)
    assert (again.accepted, again.duplicates) == (0, 2)


def _message_ids(platform: Platform, source_id: str) -> list[str]:
    return [r[0] for r in platform.events.query("SELECT message_id FROM events WHERE source_id = ?", [source_id])]


def test_customer_columns_can_be_mapped(plat: Platform, tmp_path: Path) -> None:
    sink, _ = sink_for(plat, "crm-import", "other")
    customers = write(
        tmp_path / "crm.csv",
        "Kundennummer,Mail,Handy,Karte,Stand,Vorname",
        ["K-9,k9@example.com,+4915112345678,CARD-9,2024-05-01T08:00:00+02:00,Klara"],
    )
    mapping = CustomerColumns(
        customer_id="Kundennummer",
        email="Mail",
        phone="Handy",
        loyalty_card="Karte",
        time="Stand",
        traits={"first_name": "Vorname"},
    )
    assert import_customers(customers, sink, mapping).accepted == 1
    assert plat.processor.drain()
    pid = profile_for_identifier(plat.state, "customer_id:K-9")
    assert pid is not None
    assert pid == profile_for_identifier(plat.state, "loyalty_card:CARD-9")
    assert pid == profile_for_identifier(plat.state, "phone:+4915112345678")
    with pytest.raises(ImportFileError, match="Kunde"):
        import_customers(customers, sink, CustomerColumns(customer_id="Kunde"))


# ---- events -------------------------------------------------------------------------------------------


def test_jsonl_events_with_bad_lines(plat: Platform, tmp_path: Path) -> None:
    sink, source_id = sink_for(plat, "file-import-events", "auto")
    lines = [
        json.dumps({"type": "track", "event": "Viewed", "userId": "u1", "messageId": "m-1"}),
        "{not json",  # line 2
        "",  # an empty line is no row
        json.dumps([1, 2]),  # line 4
        json.dumps({"type": "track", "userId": "u1"}),  # line 5: no event name
        json.dumps({"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}}),  # no messageId
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_events(path, sink)
    assert_balanced(report)
    assert (report.rows, report.accepted, report.rejected_rows) == (5, 2, 3)
    rejects = {int(r["row"]): r for r in read_rejects(report.rejects_path or Path())}
    assert {n: r["code"] for n, r in rejects.items()} == {2: "invalid_json", 4: "invalid_message", 5: "missing_field"}
    assert rejects[2]["raw"] == "{not json"
    assert plat.processor.drain()
    assert by_message(plat, source_id, "m-1")["m-1"]["event"] == "Viewed"
    again = import_events(path, sink)
    assert (again.accepted, again.duplicates) == (0, 2)  # the derived messageId is stable too


# ---- sending ------------------------------------------------------------------------------------------


class FlakySink:
    """Accepts the first chunk, then fails like a server that went away."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("server answered 503")
        return SendResult(len(messages), 0, [])


def test_a_failing_sink_stops_the_import_with_a_report(tmp_path: Path) -> None:
    rows = [f"O{i},s1,2025-03-01T12:00:00Z,,,,SKU,1,1.00,PLN" for i in range(25)]
    orders = write(tmp_path / "orders.csv", ORDERS_HEADER, rows)
    with pytest.raises(ImportFailed, match="503") as caught:
        import_orders(orders, FlakySink(), chunk_size=10)
    report = caught.value.report
    assert (report.rows, report.accepted) == (10, 10)
    assert_balanced(report)


class RecordingSink:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        self.sizes.append(len(messages))
        return SendResult(len(messages), 0, [])


def test_bounded_sink_keeps_requests_under_the_server_limits() -> None:
    inner = RecordingSink()
    sink = BoundedSink(inner, max_messages=4, max_bytes=300)
    messages = [(i, {"type": "track", "event": "x" * 50, "messageId": str(i)}) for i in range(10)]
    result = sink.send(messages)
    assert result.accepted == 10 and sum(inner.sizes) == 10
    assert max(inner.sizes) <= 4 and len(inner.sizes) >= 3
