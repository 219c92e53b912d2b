"""Keeps segments true: incremental evaluation after each loaded slice of events, timed re-evaluation for windows.

The runtime keeps its own cursors (journal seq of events, identity change seq) in the state store, so a missed or
failed call is caught up on the next one. Affected profiles are those with new events, those whose identifiers
moved (merges, unmerges) and the profiles merged away from them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accord.collect.journal import Journal
from accord.segments import service
from accord.segments.compile import Compiled
from accord.segments.engines import QueryEngine
from accord.segments.service import _get_state, _set_state
from accord.storage import utcnow

log = logging.getLogger(__name__)


class SegmentRuntime:
    """Incremental and time-driven evaluation of every saved segment in one process."""

    def __init__(
        self,
        state: sa.Engine,
        engine: QueryEngine,
        journal: Journal | None,
        identity_changes: Callable[[int], list[tuple[int, str, str]]],
        merges_of: Callable[[str], list[dict[str, Any]]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.state = state
        self.engine = engine
        self.journal = journal
        self.identity_changes = identity_changes
        self.merges_of = merges_of
        self.clock = clock
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cursors(self) -> tuple[int, int]:
        """(journal seq, identity change seq) evaluated so far."""
        with self.state.connect() as conn:
            value = _get_state(conn, "cursors")
        return (int(value[0]), int(value[1])) if value else (0, 0)

    def _save_cursors(self, journal_seq: int, change_seq: int) -> None:
        with self.state.begin() as conn:
            _set_state(conn, "cursors", [journal_seq, change_seq])

    def affected(self, after_seq: int, upto_seq: int, changes: list[tuple[int, str, str]]) -> set[str]:
        """Profiles touched by events in (after_seq, upto_seq] or by the identity CHANGES."""
        sql = (
            "SELECT DISTINCT profile_id FROM events WHERE journal_seq > $a AND journal_seq <= $b "
            "AND profile_id IS NOT NULL"
        )
        if self.engine.subset:  # and the staged events (DuckDB: see EventStore.stage)
            sql = (
                f"SELECT DISTINCT profile_id FROM ({sql} UNION ALL SELECT profile_id FROM staged_events WHERE "
                "journal_seq > $a AND journal_seq <= $b AND profile_id IS NOT NULL) AS u"
            )
        rows = self.engine.rows(Compiled(sql, {"a": after_seq, "b": upto_seq}, self.engine.dialect))
        pids = {str(r[0]) for r in rows}
        moved = {pid for _seq, _key, pid in changes}
        for pid in moved:
            for merge in self.merges_of(pid):
                pids.update((merge["from_profile"], merge["into_profile"]))
        return pids | moved

    def _changes(self, change_seq: int) -> list[tuple[int, str, str]]:
        """Identity changes after CHANGE_SEQ that the event store has taken (written or staged): one resolved
        meanwhile (the next slice, in the worker) is evaluated with the slice that carries it."""
        taken = self.engine.change_seq()
        return [c for c in self.identity_changes(change_seq) if taken is None or c[0] <= taken]

    def on_events(self, after_seq: int, upto_seq: int) -> None:
        """Processor listener: re-evaluate every segment for the affected profiles only."""
        with self.lock:
            journal_seq, change_seq = self.cursors()
            upto = max(upto_seq, journal_seq)
            changes = self._changes(change_seq)
            new_change_seq = max((seq for seq, _k, _p in changes), default=change_seq)
            if not service.vocabulary(self.state).segments:
                self._save_cursors(upto, new_change_seq)
                return
            if changes:
                # identity changes move stored events: evaluate once the staged slices (resolved before or with
                # them) are written and moved too
                self.engine.flush()
            pids = self.affected(min(journal_seq, after_seq), upto, changes)
            if pids:
                service.evaluate_all(self.state, self.engine, self.journal, self.clock(), sorted(pids))
            self._save_cursors(upto, new_change_seq)

    def tick(self) -> list[service.EvaluationResult]:
        """Time-driven: fully re-evaluate the segments whose truth changes with time alone (rolling windows)."""
        with self.lock:
            self.engine.flush()  # a full evaluation reads the written events (and daily tables) only
            return service.evaluate_all(self.state, self.engine, self.journal, self.clock(), time_driven_only=True)

    def start(self, interval: float = 60.0) -> None:
        """Run tick() every INTERVAL seconds in a background thread (until stop)."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:
                    log.exception("timed segment evaluation failed; retrying at the next tick")

        self._thread = threading.Thread(target=loop, name="accord-segments-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
