"""Segment wire rules: limits, encodings, write keys, batch-level fields, timestamps, channels."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from accord.collect.channels import derive_channel
from accord.collect.errors import CollectError, InvalidWriteKey, PayloadTooLarge
from accord.collect.intake import MAX_BATCH_MESSAGES, parse_request
from accord.collect.segment import SourceInfo, build_record, merge_batch_level
from accord.identity.rules import IdentityRules

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WEB = SourceInfo("src-web", "web")


def lookup(key: str) -> SourceInfo | None:
    return WEB if key == "good-key" else None


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def parse(body: object, kind: str = "batch", auth: str | None = basic("good-key"), encoding: str | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(data, encoding, auth, kind, lookup, NOW)


def test_write_key_by_basic_auth_or_body_and_bad_keys_are_401() -> None:
    msg = {"type": "track", "event": "E", "userId": "u"}
    assert parse({"batch": [msg]}).items
    assert parse({"batch": [msg], "writeKey": "good-key"}, auth=None).items
    assert parse({"event": "E", "userId": "u", "writeKey": "good-key"}, kind="t", auth=None).items
    with pytest.raises(InvalidWriteKey, match="unknown write key"):
        parse({"batch": [msg]}, auth=basic("bad"))
    with pytest.raises(InvalidWriteKey, match="no write key"):
        parse({"batch": [msg]}, auth=None)


def test_gzip_and_plain_text_bodies() -> None:
    body = gzip.compress(json.dumps({"batch": [{"type": "page", "anonymousId": "a"}]}).encode())
    assert parse(body, encoding="gzip").items
    with pytest.raises(CollectError, match="not valid gzip"):
        parse(b"not gzip", encoding="gzip")
    with pytest.raises(CollectError) as err:
        parse(b"{nope", kind="t")
    assert err.value.code == "invalid_json"


def test_limits_per_message_request_and_batch() -> None:
    big = {"type": "track", "event": "E", "userId": "u", "properties": {"blob": "x" * 33_000}}
    intake = parse({"batch": [big, {"type": "track", "event": "E", "userId": "u"}]})
    assert [r.code for r in intake.rejects] == ["message_too_large"] and len(intake.items) == 1
    with pytest.raises(PayloadTooLarge):
        parse({"batch": [{"type": "track", "event": "E", "userId": "u", "p": "y" * 31_000}] * 17})
    bomb = gzip.compress(b'{"batch":[' + b" " * 600_000 + b"]}")
    with pytest.raises(PayloadTooLarge):
        parse(bomb, encoding="gzip")
    with pytest.raises(PayloadTooLarge, match="2500"):
        parse({"batch": [{"type": "page", "anonymousId": "a"}] * (MAX_BATCH_MESSAGES + 1)})


def test_bad_messages_in_a_batch_are_listed_and_the_good_kept() -> None:
    batch = [
        {"type": "track", "event": "Good", "userId": "u", "messageId": "m1"},
        {"type": "track", "userId": "u"},
        {"type": "identify"},
        {"type": "teleport", "userId": "u"},
        {"type": "track", "event": "E", "userId": "u", "timestamp": "yesterday"},
        {"type": "track", "event": "E", "userId": True},
        {"type": "track", "event": "E", "userId": "u", "properties": [1, 2]},
        "not an object",
        {"type": "alias", "userId": "u"},
    ]
    intake = parse({"batch": batch})
    assert intake.items == [(0, "m1")]
    reasons = {r.index: (r.code, r.reason) for r in intake.rejects}
    assert reasons[1] == ("missing_field", "track needs a non-empty event name")
    assert reasons[2][0] == "missing_identity"
    assert reasons[3][0] == "invalid_type"
    assert reasons[4][0] == "invalid_timestamp" and "yesterday" in reasons[4][1]
    assert reasons[5][0] == "invalid_field" and "userId" in reasons[5][1]
    assert reasons[6] == ("invalid_field", "Expected `object | null`, got `array` - at `$.properties`")
    assert reasons[7][0] in ("invalid_field", "invalid_message")
    assert reasons[8] == ("missing_field", "alias needs both userId and previousId")


def test_missing_message_id_is_derived_from_content_so_retries_dedupe() -> None:
    msg = {"type": "track", "event": "E", "userId": "u"}
    first, second = parse({"batch": [msg]}), parse({"batch": [msg]})
    assert first.items[0][1].startswith("sha256:") and first.items == second.items


def test_timestamp_corrects_client_clock_and_batch_context_merges() -> None:
    # The phone's clock is 1 hour fast: sent "13:00" (really 12:00), event happened 5 minutes before sending.
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "E",
                "userId": "u",
                "timestamp": "2026-11-01T12:55:00Z",
                "context": {"locale": "pl-PL"},
            }
        ],
        "sentAt": "2026-11-01T13:00:00Z",
        "context": {"library": {"name": "analytics-ios"}, "locale": "en-GB"},
    }
    message = merge_batch_level(batch["batch"][0], batch)
    record = build_record(message, WEB, NOW, IdentityRules(), "m1", batch_sent_at=batch["sentAt"])
    assert record.timestamp == NOW - timedelta(minutes=5)
    assert record.library == "analytics-ios"
    assert json.loads(record.raw)["context"]["locale"] == "pl-PL"  # the item's own context wins


def test_a_timestamp_far_in_the_future_is_rejected() -> None:
    intake = parse({"batch": [{"type": "track", "event": "E", "userId": "u", "timestamp": "2030-01-01T00:00:00Z"}]})
    assert intake.rejects[0].code == "invalid_timestamp"


@pytest.mark.parametrize(
    ("message", "source_channel", "expected"),
    [
        ({"context": {"channel": "POS"}}, "web", "store"),
        ({"properties": {"channel": "Call Centre"}}, "web", "call_center"),
        ({"properties": {"channel": "carrier pigeon"}}, "web", "web"),
        ({"properties": {"channel": "call_centre"}}, "web", "call_center"),
        ({"context": {"campaign": {"medium": "email"}}}, "web", "email"),
        ({"context": {"page": {"url": "https://x/?utm_source=facebook&utm_medium=paid_social"}}}, "web", "ads"),
        ({"context": {"campaign": {"source": "instagram"}}}, "other", "social"),
        ({}, "store", "store"),
        ({"context": {"library": {"name": "analytics-android"}}}, "auto", "app"),
        ({"context": {"library": {"name": "analytics.js"}}}, "auto", "web"),
        ({}, "auto", "other"),
    ],
)
def test_channel_rules(message: dict, source_channel: str, expected: str) -> None:
    from accord.collect.channels import campaign_of

    library = message.get("context", {}).get("library", {}).get("name")
    assert derive_channel(message, source_channel, library, campaign_of(message)) == expected


def test_identifiers_are_normalised_and_placeholders_blocked() -> None:
    message = {
        "type": "identify",
        "userId": "null",
        "anonymousId": "a-1",
        "traits": {"email": "  Ann@Example.COM ", "phone": "601 234 567", "country": "PL"},
        "context": {
            "device": {"id": "dev-1", "token": "tok"},
            "externalIds": [{"type": "Loyalty Card", "id": "LC-42"}, {"type": "email", "id": "N/A"}],
        },
    }
    record = build_record(message, WEB, NOW, IdentityRules(), "m")
    assert record.identifiers == [
        "email:ann@example.com",
        "phone:+48601234567",
        "loyalty_card:LC-42",
        "device_id:dev-1",
        "push_token:tok",
        "anonymous_id:a-1",
    ]


def test_revenue_becomes_minor_units_of_its_currency() -> None:
    def rev(props: dict) -> tuple[int | None, str | None]:
        r = build_record(
            {"type": "track", "event": "Order Completed", "userId": "u", "properties": props},
            WEB,
            NOW,
            IdentityRules(),
            "m",
        )
        return r.revenue_minor, r.currency

    assert rev({"revenue": 12.34, "currency": "pln"}) == (1234, "PLN")
    assert rev({"total": "1000", "currency": "JPY"}) == (1000, "JPY")
    assert rev({"revenue": 5}) == (500, "USD")
    assert rev({"revenue": "lots", "currency": "EUR"}) == (None, None)
