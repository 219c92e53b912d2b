"""The durable ingest journal: accepted messages are committed here before the client hears 200."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from accord.collect.tables import ingest_rejects, journal
from accord.storage import utcnow

JournalRow = tuple[str, str, datetime, bytes]  # source id, message id, received at, payload


class Journal:
    """Append (deduplicated per source and message id) and read in sequence order."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def append(self, rows: Sequence[JournalRow]) -> int:
        """Commit rows durably in one transaction; returns how many were new (the rest were retries)."""
        return self.append_groups([rows])[0]

    def append_groups(self, groups: Sequence[Sequence[JournalRow]]) -> list[int]:
        """Commit several requests' rows in ONE transaction (group commit); new-row count per group."""
        counts: list[int] = []
        with self.engine.begin() as conn:
            if self.dialect != "sqlite":
                # One writer at a time keeps sequence order equal to commit order for the processor.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
            for rows in groups:
                if not rows:
                    counts.append(0)
                    continue
                if self.dialect == "sqlite":
                    params = [(s, m, r.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), p) for s, m, r, p in rows]
                    result = conn.exec_driver_sql(
                        "INSERT OR IGNORE INTO journal (source_id, message_id, received_at, payload) VALUES (?,?,?,?)",
                        params,
                    )
                else:
                    result = conn.execute(
                        postgresql.insert(journal).on_conflict_do_nothing(index_elements=["source_id", "message_id"]),
                        [{"source_id": s, "message_id": m, "received_at": r, "payload": p} for s, m, r, p in rows],
                    )
                counts.append(max(int(result.rowcount), 0))
        return counts

    def read(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to LIMIT entries after AFTER_SEQ, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(journal.c.seq, journal.c.payload)
                .where(journal.c.seq > after_seq)
                .order_by(journal.c.seq)
                .limit(limit)
            )
            return [(int(seq), bytes(payload)) for seq, payload in rows]

    def last_seq(self) -> int:
        """The newest sequence number (0 when empty)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(journal.c.seq), 0))).scalar_one())

    def count(self) -> int:
        """Number of journal entries."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(journal)).scalar_one())

    def record_rejects(self, rejects: Sequence[tuple[str | None, str, str, str, str | None]]) -> None:
        """Keep rejected messages (source, channel of entry, code, reason, payload) so nothing vanishes."""
        if not rejects:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                ingest_rejects.insert(),
                [
                    {
                        "source_id": s,
                        "received_at": now,
                        "channel": ch,
                        "code": code,
                        "reason": reason,
                        "payload": (payload or "")[:32768],
                    }
                    for s, ch, code, reason, payload in rejects
                ],
            )

    def count_rejects(self) -> int:
        """Number of rejected messages kept."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ingest_rejects)).scalar_one())
