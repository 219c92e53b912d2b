"""CRM customer exports (CSV, one customer per row) to Segment ``identify`` messages.

- Identifiers: the customer id and the loyalty card go to ``context.externalIds`` (types ``customer_id`` and
  ``loyalty_card``); email and phone go to ``traits``, where the identity graph picks them up. No ``userId``
  and no invented ``anonymousId``: a file import may carry identifiers only. A row without any of the four
  is rejected (``missing_identity``).
- Every other non-empty column becomes a trait of the same name (``birth_date`` becomes ``birthday``, the
  Segment trait); ``--map trait=column`` renames or adds.
- ``timestamp`` comes from the data only (``updated_at``, else ``created_at``, or the column chosen): it is
  left out when the cell is empty, never set to the import time.
- ``messageId`` is ``crm:`` + a hash of the message, so the same row imported again adds nothing, and a
  changed row is a new identify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from accord.collect.importers.base import (
    DEFAULT_CHUNK,
    ImportFileError,
    ImportReport,
    Progress,
    Sender,
    aware_time,
    csv_input,
    read_all,
    rejects_for,
    time_reason,
    zone,
)
from accord.collect.importers.columns import header_positions, resolve_columns
from accord.collect.imports import ImportSink

TRAIT_NAMES = {"birth_date": "birthday", "birthdate": "birthday", "date_of_birth": "birthday"}
TIME_COLUMNS = ("updated_at", "created_at")
_encode = msgspec.json.Encoder().encode


@dataclass
class CustomerColumns:
    """Header column of each identifier (None: the column of the field's own name, if present; "": none).

    ``time`` None means ``updated_at`` if the header has it, else ``created_at``. ``traits`` maps a trait name
    to a column; columns not used otherwise become traits under their own names.
    """

    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_card: str | None = None
    time: str | None = None
    traits: Mapping[str, str] = field(default_factory=dict)


def import_customers(
    path: str | Path,
    sink: ImportSink,
    mapping: CustomerColumns | None = None,
    *,
    rejects_path: str | Path | None = None,
    timezone: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a CRM export CSV into SINK as one ``identify`` message per customer row.

    TIMEZONE (IANA name) is applied to times without a UTC offset (without it they are rejected).
    PROGRESS(rows_done) is called after each chunk.
    """
    path = Path(path)
    mapping = mapping or CustomerColumns()
    tz = zone(timezone)
    rejects = rejects_for(path, rejects_path)
    with csv_input(path) as (reader, header):
        builder = _CustomerBuilder(mapping, header, path, tz)
        sender = Sender(ImportReport("customers", path), sink, rejects, chunk_size, progress)
        builder.sender = sender
        return read_all(sender, reader, path, builder.run)


class _CustomerBuilder:
    """Turns one CRM row into an identify message (or a reject)."""

    sender: Sender

    def __init__(self, mapping: CustomerColumns, header: list[str], path: Path, tz: Any) -> None:
        positions = header_positions(header, path)
        time_col = mapping.time
        if time_col is None:
            time_col = next((c for c in TIME_COLUMNS if c in positions), "")
        cols = resolve_columns(
            {
                "customer_id": mapping.customer_id,
                "email": mapping.email,
                "phone": mapping.phone,
                "loyalty_card": mapping.loyalty_card,
                "time": time_col,
            },
            header,
            (),
            path,
        )
        self.width = len(header)
        self.tz = tz
        self.i_id, self.i_card, self.i_time = cols["customer_id"], cols["loyalty_card"], cols["time"]
        self.time_name = header[self.i_time] if self.i_time >= 0 else ""
        traits: dict[str, int] = {}
        for name, column in mapping.traits.items():
            if column not in positions:
                raise ImportFileError(
                    f"{path.name}: column {column!r} (for trait {name}) is not in the header; "
                    f"columns: {', '.join(header)}"
                )
            traits[name] = positions[column]
        if cols["email"] >= 0:
            traits.setdefault("email", cols["email"])
        if cols["phone"] >= 0:
            traits.setdefault("phone", cols["phone"])
        taken = set(traits.values()) | {self.i_id, self.i_card}
        for i, column in enumerate(header):
            if i not in taken and column:
                traits.setdefault(TRAIT_NAMES.get(column.lower(), column), i)
        self.traits = list(traits.items())
        self.has_email, self.has_phone = "email" in traits, "phone" in traits

    def run(self, reader: Any) -> None:
        width, tz, traits = self.width, self.tz, self.traits
        i_id, i_card, i_time = self.i_id, self.i_card, self.i_time
        sender = self.sender
        add, reject = sender.add, sender.reject
        line = reader.line_num
        for fields in reader:
            start = line + 1
            line = reader.line_num
            if not fields:
                continue  # an empty line is no row
            rows = [(start, fields)]
            if len(fields) != width:
                reject(rows, "invalid_row", f"row has {len(fields)} fields; the header has {width}")
                continue
            values = {name: value for name, i in traits if (value := fields[i].strip())}
            customer_id = fields[i_id].strip() if i_id >= 0 else ""
            card = fields[i_card].strip() if i_card >= 0 else ""
            if not (customer_id or card or values.get("email") or values.get("phone")):
                reject(rows, "missing_identity", "row has no identifier (customer id, email, phone or loyalty card)")
                continue
            message: dict[str, Any] = {"type": "identify", "traits": values}
            if i_time >= 0 and (text := fields[i_time].strip()):
                timestamp = aware_time(text, tz)
                if timestamp is None:
                    reject(rows, "invalid_timestamp", time_reason(self.time_name, text, tz))
                    continue
                message["timestamp"] = timestamp
            external = []
            if customer_id:
                external.append({"id": customer_id, "type": "customer_id", "collection": "users", "encoding": "none"})
            if card:
                external.append({"id": card, "type": "loyalty_card", "collection": "users", "encoding": "none"})
            if external:
                message["context"] = {"externalIds": external}
            message["messageId"] = "crm:" + hashlib.sha256(_encode(message)).hexdigest()[:40]
            add(start, message, rows)
