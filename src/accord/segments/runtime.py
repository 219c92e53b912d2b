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

    def affected(self, after_seq: int, upto_seq: int, change_seq: int) -> tuple[set[str], int]:
        """Profiles touched by events in (after_seq, upto_seq] or by identity changes after change_seq."""
        rows = self.engine.rows(
            Compiled(
                "SELECT DISTINCT profile_id FROM events WHERE journal_seq > $a AND journal_seq <= $b "
                "AND profile_id IS NOT NULL",
                {"a": after_seq, "b": upto_seq},
                self.engine.dialect,
            )
        )
        pids = {str(r[0]) for r in rows}
        changes = self.identity_changes(change_seq)
        moved = {pid for _seq, _key, pid in changes}
        for pid in moved:
            for merge in self.merges_of(pid):
                pids.update((merge["from_profile"], merge["into_profile"]))
        pids |= moved
        return pids, max((seq for seq, _k, _p in changes), default=change_seq)

    def on_events(self, after_seq: int, upto_seq: int) -> None:
        """Processor listener: re-evaluate every segment for the affected profiles only."""
        with self.lock:
            journal_seq, change_seq = self.cursors()
            upto = max(upto_seq, journal_seq)
            if not service.vocabulary(self.state).segments:
                self._save_cursors(
                    upto, max((s for s, _k, _p in self.identity_changes(change_seq)), default=change_seq)
                )
                return
            pids, new_change_seq = self.affected(min(journal_seq, after_seq), upto, change_seq)
            if pids:
                service.evaluate_all(self.state, self.engine, self.journal, self.clock(), sorted(pids))
            self._save_cursors(upto, new_change_seq)

    def tick(self) -> list[service.EvaluationResult]:
        """Time-driven: fully re-evaluate the segments whose truth changes with time alone (rolling windows)."""
        with self.lock:
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
