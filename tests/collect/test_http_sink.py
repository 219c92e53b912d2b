"""HttpSink: how a file import reads the server's answers (per-message rejects vs a fault of the whole request)."""

from __future__ import annotations

import json

import httpx
import pytest

from accord.collect.imports import HttpSink


def _sink(status: int, body: object) -> HttpSink:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/import"
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    return HttpSink(httpx.Client(base_url="http://accord.test", transport=httpx.MockTransport(answer)), "wk")


MESSAGES = [(2, {"type": "track", "event": "A"}), (3, {"type": "track", "event": "B"})]


def test_400_with_rejected_list_is_rows_rejected() -> None:
    rejected = [{"index": i, "code": "missing_identity", "reason": "no id"} for i in (0, 1)]
    body = {"error": {"code": "missing_identity", "message": "all 2 messages were rejected", "rejected": rejected}}
    result = _sink(400, body).send(MESSAGES)
    assert (result.accepted, result.duplicates) == (0, 0)
    assert result.rejects == [(2, "missing_identity", "no id"), (3, "missing_identity", "no id")]


def test_400_without_rejected_list_raises_with_the_servers_message() -> None:
    body = {"error": {"code": "invalid_batch", "message": "body is not a valid batch: Expected `array`"}}
    with pytest.raises(RuntimeError, match=r"400 \(invalid_batch\): body is not a valid batch: Expected `array`"):
        _sink(400, body).send(MESSAGES)


def test_400_that_is_not_json_raises() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=b"<html>Bad Request</html>")

    sink = HttpSink(httpx.Client(base_url="http://accord.test", transport=httpx.MockTransport(answer)), "wk")
    with pytest.raises(RuntimeError, match="Bad Request"):
        sink.send(MESSAGES)


def test_200_counts_accepted_and_duplicates() -> None:
    result = _sink(200, {"success": True, "accepted": 2, "duplicates": 1, "rejected": []}).send(MESSAGES)
    assert (result.accepted, result.duplicates, result.rejects) == (1, 1, [])
