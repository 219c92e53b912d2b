"""Where file imports send their Segment messages: straight into the journal, or to a running server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from accord.collect.errors import InvalidMessage
from accord.collect.journal import Journal
from accord.collect.record import encode_record
from accord.collect.segment import SourceInfo, build_record
from accord.identity.rules import IdentityRules

Numbered = tuple[int, dict[str, Any]]  # (row number in the file, Segment message)
Reject = tuple[int, str, str]  # (row number, code, reason)


@dataclass
class SendResult:
    """What happened to one chunk of messages."""

    accepted: int
    duplicates: int
    rejects: list[Reject]


class ImportSink(Protocol):
    """Accepts chunks of Segment messages; the accepted ones are durable when send() returns."""

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        """Validate and durably store MESSAGES."""


class JournalSink:
    """Validates with the same rules as the HTTP API and commits to the journal (no server running)."""

    def __init__(self, journal: Journal, rules: IdentityRules, source: SourceInfo) -> None:
        self.journal = journal
        self.rules = rules
        self.source = source

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        received_at = datetime.now(UTC)
        rows = []
        rejects: list[Reject] = []
        for row_number, message in messages:
            try:
                record = build_record(message, self.source, received_at, self.rules, allow_no_identity=True)
            except InvalidMessage as exc:
                rejects.append((row_number, exc.code, exc.reason))
                continue
            rows.append((record.source_id, record.message_id, record.received_at, encode_record(record)))
        new = self.journal.append(rows)
        if rejects:
            self.journal.record_rejects([(self.source.id, "import", c, r, None) for _, c, r in rejects])
        return SendResult(len(rows), len(rows) - new, rejects)


class HttpSink:
    """Posts chunks to a running server's /v1/import endpoint (the server owns the event store)."""

    def __init__(self, client: httpx.Client, write_key: str) -> None:
        self.client = client
        self.write_key = write_key

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        body = msgspec.json.encode({"batch": [m for _, m in messages], "allowNoIdentity": True})
        response = self.client.post(
            "/v1/import", content=body, auth=(self.write_key, ""), headers={"content-type": "application/json"}
        )
        if response.status_code >= 400 and response.status_code != 400:
            raise RuntimeError(f"server answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        rejected = data.get("rejected") or data.get("error", {}).get("rejected") or []
        rejects = [(messages[r["index"]][0], r["code"], r["reason"]) for r in rejected]
        return SendResult(int(data.get("accepted", 0)), int(data.get("duplicates", 0)), rejects)
