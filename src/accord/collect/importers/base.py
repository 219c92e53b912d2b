"""What every file importer shares: the report, the rejects file, chunked sending and row accounting."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from accord.collect.imports import ImportSink, Numbered, SendResult

REJECTS_HEADER = ("row", "code", "reason", "raw")
DEFAULT_CHUNK = 1000
MAX_IN_FLIGHT = 4  # chunks handed to a pipelined sink and not yet answered
Progress = Callable[[int], None]
RowReject = tuple[int, str, str, str]  # row number, code, reason, raw text of the row


class ImportFileError(Exception):
    """The file cannot be imported (missing, unreadable, a header without the needed columns, a mapping that
    names no column, no writable place for rejects): found before anything is sent."""


class ImportFailed(Exception):
    """Sending stopped part-way (the server or the store failed); REPORT counts what was done before.

    Chunks acknowledged before the failure are durable; re-running the same import is safe because every
    message carries a stable messageId, so the rows already imported come back as duplicates.
    """

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ImportReport:
    """What one import did, counted per row of the file AND per message sent.

    Per row: ``rows == imported_rows + rejected_rows`` (imported = stored now or already stored before).
    Per message: ``messages == accepted + duplicates + rejected_messages``, where ``messages`` counts every
    message built or attempted (a row that could not become a message counts as one rejected message, an
    order rejected before sending counts as one).
    """

    kind: str
    path: Path
    rows: int = 0
    messages: int = 0
    accepted: int = 0  # messages stored by this import
    duplicates: int = 0  # messages that were stored already (same source and messageId)
    rejected_messages: int = 0
    imported_rows: int = 0
    rejected_rows: int = 0
    rejects_path: Path | None = None  # None when nothing was rejected
    seconds: float = 0.0
    reject_codes: dict[str, int] = field(default_factory=dict)  # code -> rejected rows

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole import."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def balanced(self) -> bool:
        """Whether the row and message accounting adds up (it always should)."""
        return (
            self.rows == self.imported_rows + self.rejected_rows
            and self.messages == self.accepted + self.duplicates + self.rejected_messages
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for --format json)."""
        return {
            "kind": self.kind,
            "path": str(self.path),
            "rows": self.rows,
            "messages": self.messages,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected_messages": self.rejected_messages,
            "imported_rows": self.imported_rows,
            "rejected_rows": self.rejected_rows,
            "reject_codes": dict(self.reject_codes),
            "rejects_path": str(self.rejects_path) if self.rejects_path else None,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
        }


def default_rejects_path(path: Path) -> Path:
    """``<input>.rejects.csv`` next to the input file."""
    return path.with_name(path.name + ".rejects.csv")


def rejects_for(path: Path, given: str | Path | None) -> Rejects:
    """The rejects file of an import: GIVEN, or ``<input>.rejects.csv``; never the input itself."""
    target = Path(given) if given else default_rejects_path(path)
    if target.resolve() == Path(path).resolve():
        raise ImportFileError("the rejects file cannot be the input file")
    folder = target.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ImportFileError(f"cannot write the rejects file {target}: the folder is missing or read-only")
    return Rejects(target)


@contextlib.contextmanager
def csv_input(path: Path) -> Iterator[tuple[Any, list[str]]]:
    """An open CSV reader positioned after the header, and the header (ImportFileError when there is none)."""
    with open_input(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{path.name} is not a readable UTF-8 CSV file: {exc}") from exc
        if not header or not any(h.strip() for h in header):
            raise ImportFileError(f"{path.name} is empty: no header row")
        yield reader, [h.strip() for h in header]


def read_all(sender: Sender, reader: Any, path: Path, consume: Callable[[Any], None]) -> ImportReport:
    """Run CONSUME over READER, then finish; a file that breaks part-way stops the import cleanly."""
    with bulk_allocation():
        try:
            consume(reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            line = getattr(reader, "line_num", 0) + 1
            raise sender.fail(
                f"{path.name} line {line} cannot be read ({exc}); the rows before it were imported",
                send_pending=True,
            ) from exc
        return sender.finish()


@contextlib.contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is read.

    An import allocates millions of short-lived, acyclic dicts and lists while a few large structures stay alive;
    the collector's full scans of those cost about 40% of the import (60k vs 99k rows/s measured). Reference
    counting frees everything it allocates, so no collection is forced at the end either (a full collection of
    the process's heap cost ~0.1 s per import, measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def open_input(path: Path, binary: bool = False) -> Any:
    """Open the input file, turning OS errors into a clear ImportFileError."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"file not found: {path}")
    if path.is_dir():
        raise ImportFileError(f"{path} is a directory, not a file")
    try:
        if binary:
            return open(path, "rb")
        # utf-8-sig: spreadsheets and CRM exports often start with a byte-order mark.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


def csv_text(row: Sequence[str]) -> str:
    """One CSV row as the text of a line (without the line ending): the ``raw`` column of a reject."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone NAME (None when not given); ImportFileError when unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFileError(f"unknown time zone {name!r}; use an IANA name such as Europe/Warsaw or UTC") from None


def aware_time(value: str, tz: ZoneInfo | None) -> str | None:
    """VALUE as an ISO 8601 time with a UTC offset, or None when it is not one.

    A time without an offset is only accepted when TZ says where it was taken (it is then given that zone).
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return value
    if tz is None:
        return None
    return parsed.replace(tzinfo=tz).isoformat()


def time_reason(column: str, value: str, tz: ZoneInfo | None) -> str:
    """Why VALUE of COLUMN is not a usable time (call only when aware_time returned None)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return f"{column} is not an ISO 8601 time: {value[:64]!r}"
    return f"{column} {value!r} has no UTC offset; add one (e.g. +01:00 or Z) or give --timezone"


class Rejects:
    """The rejects CSV (``row,code,reason,raw``), created on the first reject only.

    A rejects file left by an earlier run of the same import (same path, our header) is removed when this run
    rejects nothing, so that the file on disk always describes the last run.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: TextIO | None = None
        self._writer: Any = None
        self.rows = 0
        self.codes: dict[str, int] = {}

    def write(self, rejects: Iterable[RowReject]) -> None:
        """Append rejected rows."""
        if self._writer is None:
            try:
                self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise ImportFileError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from exc
            self._writer = csv.writer(self._fh, lineterminator="\n")
            self._writer.writerow(REJECTS_HEADER)
        for row, code, reason, raw in rejects:
            self._writer.writerow((row, code, reason, raw))
            self.rows += 1
            self.codes[code] = self.codes.get(code, 0) + 1

    def close(self) -> Path | None:
        """Close the file; the path when something was rejected, else None."""
        if self._fh is not None:
            self._fh.close()
            return self.path
        self._remove_stale()
        return None

    def _remove_stale(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                ours = fh.readline().strip() == ",".join(REJECTS_HEADER)
        except (OSError, UnicodeDecodeError):
            return
        if ours:
            self.path.unlink(missing_ok=True)


class Sender:
    """Collects messages with the rows they came from, sends them in chunks and keeps the accounting.

    (Sending on a helper thread while the next chunk is built was measured: slower, the GIL is the limit.)
    """

    def __init__(
        self,
        report: ImportReport,
        sink: ImportSink,
        rejects: Rejects,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
    ) -> None:
        self.report = report
        self.sink = sink
        self.rejects = rejects
        self.chunk_size = max(1, chunk_size)
        self.progress = progress
        self.messages: list[Numbered] = []
        self.sources: list[list[tuple[int, Any]]] = []  # per message: [(row number, raw text or CSV fields)]
        self.pending_rows = 0
        self.rows_done = 0
        self.started = time.perf_counter()
        self._error: ImportFailed | None = None
        # A sink with submit() (ProcessJournalSink) takes chunks while earlier ones are still being stored.
        self._submit: Callable[[Sequence[Numbered]], Future[SendResult]] | None = getattr(sink, "submit", None)
        self._inflight: deque[tuple[Future[SendResult], list[Numbered], list[list[tuple[int, Any]]], int]] = deque()

    def add(self, row_number: int, message: dict[str, Any], rows: list[tuple[int, Any]]) -> None:
        """Queue one message built from ROWS (sent when the chunk is full)."""
        self.messages.append((row_number, message))
        self.sources.append(rows)
        self.pending_rows += len(rows)
        if len(self.messages) >= self.chunk_size:
            self.flush()

    def reject(self, rows: list[tuple[int, Any]], code: str, reason: str, messages: int = 1) -> None:
        """Reject ROWS before sending, all for one reason (one message's worth unless MESSAGES says otherwise)."""
        self.reject_rows([(n, code, reason, raw) for n, raw in rows], messages)

    def reject_rows(self, entries: list[tuple[int, str, str, Any]], messages: int = 1) -> None:
        """Reject rows before sending, each with its own (row number, code, reason, raw or fields)."""
        self.rejects.write((n, code, reason, _raw(raw)) for n, code, reason, raw in entries)
        self.report.rejected_rows += len(entries)
        self.report.rejected_messages += messages
        self.report.messages += messages
        self.rows_done += len(entries)

    def flush(self) -> None:
        """Send the pending chunk and count the answer (raises ImportFailed when sending fails)."""
        if self.messages:
            messages, sources, rows = self.messages, self.sources, self.pending_rows
            self.messages, self.sources, self.pending_rows = [], [], 0
            if self._submit is not None:
                try:
                    self._inflight.append((self._submit(messages), messages, sources, rows))
                except Exception as exc:
                    raise self.fail(f"sending failed: {exc}") from exc
                while len(self._inflight) > MAX_IN_FLIGHT:
                    self._settle_oldest()
            else:
                try:
                    result = self.sink.send(messages)
                except Exception as exc:
                    raise self.fail(f"sending failed: {exc}") from exc
                self._settle(result, messages, sources, rows)
        self._tick()

    def _settle_oldest(self) -> None:
        future, messages, sources, rows = self._inflight.popleft()
        try:
            result = future.result()
        except Exception as exc:
            raise self.fail(f"sending failed: {exc}") from exc
        self._settle(result, messages, sources, rows)

    def _settle(
        self, result: SendResult, messages: list[Numbered], sources: list[list[tuple[int, Any]]], rows: int
    ) -> None:
        answered = result.accepted + result.duplicates + len(result.rejects)
        if answered != len(messages):
            raise self.fail(f"the sink answered for {answered} of {len(messages)} messages")
        report = self.report
        report.messages += len(messages)
        rejected_rows = 0
        if result.rejects:
            index = {number: i for i, (number, _) in enumerate(messages)}
            for number, code, reason in result.rejects:
                covered = sources[index[number]]
                self.rejects.write((n, code, reason, _raw(raw)) for n, raw in covered)
                rejected_rows += len(covered)
            report.rejected_messages += len(result.rejects)
            report.rejected_rows += rejected_rows
        report.accepted += result.accepted
        report.duplicates += result.duplicates
        report.imported_rows += rows - rejected_rows
        self.rows_done += rows

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(self.rows_done)

    def finish(self) -> ImportReport:
        """Send what is left, wait for every chunk's answer and close the rejects file."""
        self.flush()
        while self._inflight:
            self._settle_oldest()
        self._tick()
        return self._close()

    def fail(self, message: str, send_pending: bool = False) -> ImportFailed:
        """Stop and return the error to raise, with the report of what was done.

        Chunks already answered are durable and counted. Messages still pending are sent first when
        SEND_PENDING (the file broke part-way; the rows before the break are good), else left out.
        """
        if self._error is None:
            self._error = ImportFailed(message, self.report)  # guards against failing again while sending
            if send_pending:
                with contextlib.suppress(ImportFailed):
                    self.flush()
            while self._inflight:  # chunks already handed over: count those that were stored
                with contextlib.suppress(ImportFailed):
                    self._settle_oldest()
            self.messages, self.sources, self.pending_rows = [], [], 0
            self._close()
            self._error = ImportFailed(
                f"{message} (after {self.rows_done} rows; re-running the same import is safe: rows imported "
                "already come back as duplicates)",
                self.report,
            )
        return self._error

    def _close(self) -> ImportReport:
        report = self.report
        report.rows = self.rows_done
        if report.rejects_path is None:
            report.rejects_path = self.rejects.close()
        report.reject_codes = dict(self.rejects.codes)
        report.seconds = time.perf_counter() - self.started
        return report


def _raw(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").rstrip("\r\n")
    return csv_text(raw)


_encoder = msgspec.json.Encoder()


class BoundedSink:
    """Splits chunks so that each request fits the server's limits (messages and bytes per request).

    Wrap an HttpSink in it; a single message over the byte limit is still sent alone (the server rejects it
    with a precise reason, which comes back as a reject of its rows).
    """

    def __init__(self, sink: ImportSink, max_messages: int = 2000, max_bytes: int = 400 * 1024) -> None:
        self.sink = sink
        self.max_messages = max_messages
        self.max_bytes = max_bytes

    def send(self, messages: Sequence[Numbered]) -> SendResult:
        total = SendResult(0, 0, [])
        part: list[Numbered] = []
        size = 0
        for item in messages:
            length = len(_encoder.encode(item[1])) + 1
            if part and (len(part) >= self.max_messages or size + length > self.max_bytes):
                _add(total, self.sink.send(part))
                part, size = [], 0
            part.append(item)
            size += length
        if part:
            _add(total, self.sink.send(part))
        return total


def _add(total: SendResult, result: SendResult) -> None:
    total.accepted += result.accepted
    total.duplicates += result.duplicates
    total.rejects.extend(result.rejects)
