"""JSONL files of Segment messages (one JSON object per line) into an ImportSink.

A line that is not JSON, or not a JSON object, is rejected with its line number; the sink's validation
rejects come back with line numbers too. Empty lines are skipped (they hold no row). A ``messageId`` in the
message is kept; without one, the intake derives it from the message content, so re-importing the same file
adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from accord.collect.importers.base import (
    DEFAULT_CHUNK,
    ImportReport,
    Progress,
    Sender,
    open_input,
    rejects_for,
)
from accord.collect.imports import ImportSink

_decode = msgspec.json.Decoder().decode
_BOM = b"\xef\xbb\xbf"


def import_events(
    path: str | Path,
    sink: ImportSink,
    *,
    rejects_path: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a JSONL file of Segment messages into SINK; PROGRESS(rows_done) is called after each chunk."""
    path = Path(path)
    rejects = rejects_for(path, rejects_path)
    sender = Sender(ImportReport("events", path), sink, rejects, chunk_size, progress)
    with open_input(path, binary=True) as fh:
        add, reject = sender.add, sender.reject
        number = 0
        try:
            for number, line in enumerate(fh, 1):
                if number == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                if not line.strip():
                    continue
                try:
                    message: Any = _decode(line)
                except msgspec.DecodeError as exc:
                    reject([(number, line)], "invalid_json", f"line is not valid JSON: {exc}")
                    continue
                if not isinstance(message, dict):
                    kind = "array" if isinstance(message, list) else type(message).__name__
                    reject([(number, line)], "invalid_message", f"a message must be a JSON object, got a JSON {kind}")
                    continue
                add(number, message, [(number, line)])
        except OSError as exc:
            raise sender.fail(f"{path.name}: reading stopped at line {number + 1}: {exc}", send_pending=True) from exc
    return sender.finish()
