"""Where file imports send their Segment messages: straight into the journal, or to a running server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from accord.collect.intake import intake_import_body
from accord.collect.journal import Journal
from accord.collect.segment import SourceInfo

Numbered = tuple[int, dict[str, Any]]  # (row number in the file, Segment message)
Reject = tuple[int, str, str]  # (row number, code, reason)


@dataclass
class SendResult:
    """What happened to one chunk of messages: newly stored, skipped as already loaded, rejected."""

    accepted: int
    duplicates: int
    rejects: list[Reject]


class ImportSink(Protocol):
    """Accepts chunks of Segment messages; the accepted ones are durable when send() returns."""

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        """Validate and durably store MESSAGES."""


class JournalSink:
    """Validates with the same rules as the HTTP API and commits to the journal (no server running)."""

    def __init__(self, journal: Journal, source: SourceInfo) -> None:
        self.journal = journal
        self.source = source

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        return self.send_body(msgspec.json.encode({"batch": [m for _, m in messages]}), [n for n, _ in messages])

    def send_body(self, body: bytes, numbers: Sequence[int]) -> SendResult:
        """send() for messages already encoded as {"batch": [...]}, with their row numbers."""
        intake = intake_import_body(body, self.source, datetime.now(UTC))
        intake.drop_known(self.journal.known_ids(self.source.id, [m for _, m in intake.items]))
        self.journal.append(intake.journal_batch())
        rejects = [(numbers[r.index], r.code, r.reason) for r in intake.rejects]
        if rejects:
            self.journal.record_rejects(
                [(self.source.id, "import", r.code, r.reason, r.payload) for r in intake.rejects]
            )
        return SendResult(len(intake.items), intake.dropped, rejects)


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
        try:
            data = response.json()
        except ValueError:
            raise RuntimeError(f"server answered {response.status_code} with no JSON: {response.text[:300]}") from None
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        rejected = data.get("rejected") or error.get("rejected") or []
        if response.status_code == 400 and not rejected:
            # A fault of the whole request (e.g. invalid body): nothing was stored and no message was answered.
            code, message = error.get("code", "bad_request"), error.get("message") or response.text[:300]
            raise RuntimeError(f"server answered 400 ({code}): {message}")
        rejects = [(messages[r["index"]][0], r["code"], r["reason"]) for r in rejected]
        duplicates = int(data.get("duplicates", 0))
        return SendResult(int(data.get("accepted", 0)) - duplicates, duplicates, rejects)
