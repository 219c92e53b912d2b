"""Single-message requests decode once; anything odd still gets the exact error of the careful path."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from accord.collect.errors import CollectError, InvalidWriteKey
from accord.collect.intake import Intake, parse_request, write_key_from_header
from accord.collect.segment import SourceInfo

SOURCE = SourceInfo("src1", "web")


def lookup(key: str) -> SourceInfo | None:
    return SOURCE if key == "wk" else None


def parse(body: object, authorization: str | None = None, kind: str = "track") -> Intake:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(data, None, authorization, kind, lookup, datetime.now(UTC))


def test_a_valid_message_with_its_key_in_the_body_is_accepted_in_one_pass() -> None:
    intake = parse({"event": "Viewed", "userId": "u1", "messageId": "m1", "writeKey": "wk"})
    assert intake.items == [(0, "m1")] and not intake.rejects


def test_odd_fields_fall_back_to_the_precise_per_message_rejection() -> None:
    intake = parse({"event": "Viewed", "userId": ["not", "an", "id"], "writeKey": "wk"})
    assert not intake.items
    assert [r.code for r in intake.rejects] == ["invalid_field"]
    intake = parse({"event": "Viewed", "userId": "u1", "context": "not an object", "writeKey": "wk"})
    assert [r.code for r in intake.rejects] == ["invalid_field"]


def test_request_level_faults_keep_their_codes() -> None:
    with pytest.raises(CollectError) as caught:
        parse({"event": "Viewed", "userId": "u1", "writeKey": 42})
    assert caught.value.code == "invalid_message"
    with pytest.raises(CollectError) as caught:
        parse(b"{not json")
    assert caught.value.code == "invalid_json"
    with pytest.raises(InvalidWriteKey):
        parse({"event": "Viewed", "userId": "u1", "writeKey": "unknown"})


def test_basic_auth_headers_are_parsed_once_and_bad_ones_always_refused() -> None:
    header = "Basic " + base64.b64encode(b"wk:").decode()
    assert write_key_from_header(header) == "wk"
    assert write_key_from_header(header) == "wk"  # from the cache
    assert parse({"event": "Viewed", "userId": "u1", "messageId": "m2"}, header).items == [(0, "m2")]
    for _ in range(2):
        with pytest.raises(InvalidWriteKey):
            write_key_from_header("Basic !!!not-base64!!!")
    assert write_key_from_header("Bearer abc") is None
