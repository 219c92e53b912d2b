"""Imports with a pipelined sink: chunks validated and committed in a helper process while the next are built."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from accord.collect.importers import ImportFailed, import_orders
from accord.collect.imports import JournalSink, Numbered, ProcessJournalSink, SendResult
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.platform import Platform

HEADER = "order_id,store_id,ordered_at,loyalty_card,email,phone,sku,quantity,unit_price,currency"


def orders_file(path: Path, n: int, bad_every: int = 0) -> Path:
    rows = []
    for i in range(n):
        price = "oops" if bad_every and i % bad_every == 0 else "2.50"
        rows.append(f"O{i},s1,2025-03-01T12:00:00Z,LC{i % 7:05d},,,SKU-{i},2,{price},PLN")
        rows.append(f"O{i},s1,2025-03-01T12:00:00Z,LC{i % 7:05d},,,SKU-X,1,1.00,PLN")
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_a_helper_process_imports_exactly_like_the_journal_sink(platform: Platform, tmp_path: Path) -> None:
    source = ensure_source(platform.state, "pos-import", "store")
    info = SourceInfo(source.id, source.channel)
    path = orders_file(tmp_path / "orders.csv", 120, bad_every=25)
    with ProcessJournalSink(platform.settings.state_url, info) as sink:
        report = import_orders(path, sink, chunk_size=10)  # 12 chunks, several in flight
    assert (report.rows, report.accepted, report.rejected_rows, report.duplicates) == (240, 115, 10, 0)
    assert report.balanced
    assert platform.journal.count_messages() == 115  # committed by the helper, durable before it answered
    assert platform.processor.drain()
    assert platform.events.count_events() == 115
    again = import_orders(path, JournalSink(platform.journal, info), chunk_size=50)
    assert (again.accepted, again.duplicates) == (0, 115)  # the same file again adds nothing


class HalfFailing:
    """A pipelined sink whose third chunk fails (a helper that died); the others are stored."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        return self.submit(messages).result()

    def submit(self, messages: Sequence[Numbered]) -> Future[SendResult]:
        self.calls += 1
        future: Future[SendResult] = Future()
        if self.calls == 3:
            future.set_exception(RuntimeError("helper process died"))
        else:
            future.set_result(SendResult(len(messages), 0, []))
        return future


def test_a_failed_chunk_in_flight_stops_the_import_and_counts_what_was_stored(tmp_path: Path) -> None:
    path = orders_file(tmp_path / "orders.csv", 100)
    with pytest.raises(ImportFailed, match="helper process died") as caught:
        import_orders(path, HalfFailing(), chunk_size=10)
    report = caught.value.report
    assert report.accepted >= 20 and report.accepted % 10 == 0  # the chunks answered before and after the failure
    assert report.rows == report.imported_rows + report.rejected_rows
    assert report.balanced
