"""Offline channels: a direct-mail batch file for a print house (CSV, fsync'd, once per delivery) and a call list."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accord.messaging.adapters.base import SENT, TRANSIENT, OutMessage, SendResult, config_str

ADDRESS_LINES = 4
BATCH_COLUMNS = ("delivery_id", "name", *(f"address_{i}" for i in range(1, ADDRESS_LINES + 1)), "subject", "text")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def address_lines(address: str, lines: int = ADDRESS_LINES) -> list[str]:
    """A postal address as LINES lines: split on newlines (else commas); the overflow joins the last line."""
    parts = [p.strip() for p in re.split(r"\n" if "\n" in address else r",", address) if p.strip()]
    if len(parts) > lines:
        parts = [*parts[: lines - 1], ", ".join(parts[lines - 1 :])]
    return parts + [""] * (lines - len(parts))


class PrintFileAdapter:
    """Appends each batch to a dated CSV file in `dir` (`<provider>-YYYY-MM-DD.csv`) for a print house.

    Exactly once per delivery id: ids already written (in any of this provider's batch files, or in the
    `.<provider>.ids` ledger, which survives the print house taking files away) are skipped, so a resend after a
    crash never prints a letter twice. Rows are fsync'd before the ledger and before the outcome is reported;
    a lock file serialises several sender processes sharing the directory."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.channel = "direct_mail"
        self.dir = Path(config_str(config, "dir"))
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"{self.dir} is not a directory")
        self.prefix = _SAFE.sub("_", name)
        self.ledger = self.dir / f".{self.prefix}.ids"
        self._known: set[str] = set()
        self._offsets: dict[Path, int] = {}

    def batch_path(self, at: datetime | None = None) -> Path:
        """The batch file of AT's (UTC) day."""
        return self.dir / f"{self.prefix}-{(at or datetime.now(UTC)).date().isoformat()}.csv"

    def _refresh(self) -> None:
        """Read what was written since the last look (ledger lines, batch-file rows), by this or another process."""
        for path in [self.ledger, *sorted(self.dir.glob(f"{self.prefix}-*.csv"))]:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            start = self._offsets.get(path, 0)
            if size <= start:
                continue
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read(size - start)
            end = data.rfind(b"\n") + 1  # only whole lines: a row is never split across looks
            if path == self.ledger:
                self._known.update(line for line in data[:end].decode().splitlines() if line)
            else:
                for row in csv.reader(io.StringIO(data[:end].decode("utf-8"), newline="")):
                    if row and row[0] != "delivery_id":
                        self._known.add(row[0])
            self._offsets[path] = start + end

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Append the new messages of the batch to today's file; every message (new or already written) is sent."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with (self.dir / f".{self.prefix}.lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._refresh()
                path = self.batch_path()
                fresh = [m for m in messages if m.delivery_id not in self._known]
                fresh = list({m.delivery_id: m for m in fresh}.values())
                if fresh:
                    self._append(path, fresh)
        except OSError as exc:  # disk full, permissions: nothing was reported sent, the sender retries
            return [SendResult(TRANSIENT, None, f"{type(exc).__name__}: {exc}") for _ in messages]
        return [SendResult(SENT, m.delivery_id) for m in messages]

    def _append(self, path: Path, messages: list[OutMessage]) -> None:
        new_file = not path.exists()
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        if new_file:
            writer.writerow(BATCH_COLUMNS)
        for m in messages:
            name = str(m.fields.get("recipient_name") or "")
            subject = str(m.fields.get("subject") or "")
            writer.writerow([m.delivery_id, name, *address_lines(m.address), subject, str(m.fields.get("text", ""))])
        _append_synced(path, out.getvalue().encode("utf-8"))
        _append_synced(self.ledger, "".join(f"{m.delivery_id}\n" for m in messages).encode())
        if new_file:
            _sync_dir(self.dir)
        self._known.update(m.delivery_id for m in messages)

    def close(self) -> None:
        """Nothing stays open between batches."""


class CallListAdapter:
    """The call-centre task list: the delivery itself is the task (read with Messaging.call_tasks); an agent's
    outcome (reached, no_answer, refused) is recorded later through Messaging.record_call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channel = "call"

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Every message is on the list at once."""
        return [SendResult(SENT, m.delivery_id) for m in messages]

    def close(self) -> None:
        """Nothing to release."""


def _append_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
