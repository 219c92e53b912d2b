"""Planning on worker processes: each worker decides, renders and writes whole chunks in its own transactions.

Rendering is CPU-bound Python, so one process plans at most one core's worth of messages. Workers open the state
store themselves; on SQLite (WAL) they read without holding a snapshot and only their short inserts (outbox rows
and the journal entry of their events) take turns at the write lock. Chunks must hold different people (a
broadcast's audience does), so that each person's caps are counted by one worker. Recipients travel to the
workers already loaded, so workers never open the event store (which one process owns).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from accord.consent.service import Consents, Purpose
from accord.identity.rules import IdentityRules
from accord.messaging.policy import PolicyConfig
from accord.messaging.recipients import Recipient
from accord.messaging.service import Messaging, SendRequest
from accord.messaging.templates import check_sample
from accord.storage import WriteTurn

_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@dataclass(frozen=True)
class PlannerSetup:
    """What a worker needs to rebuild the messaging service (all picklable)."""

    state_url: str
    secret: bytes
    base_url: str
    rules: IdentityRules
    purposes: dict[str, Purpose]
    policy: PolicyConfig
    emit_queued: bool


_worker: Messaging | None = None
_turn: WriteTurn | None = None


def _init(setup: PlannerSetup) -> None:
    global _worker, _turn
    from accord.collect.journal import Journal
    from accord.storage import create_state_engine

    engine = create_state_engine(setup.state_url)
    journal = Journal(engine)
    consents = Consents(engine, journal, setup.rules, setup.secret, setup.base_url, dict(setup.purposes))
    _worker = Messaging(engine, journal, consents, lambda _ids: {}, setup.policy, emit_queued=setup.emit_queued)
    _turn = WriteTurn(engine)


def _plan(batch: Sequence[tuple[Recipient, str]], request: SendRequest) -> dict[str, int]:
    assert _worker is not None and _turn is not None, "worker not initialised"
    with _worker.engine.connect() as conn:  # reads and rendering: no write lock held
        planned = _worker.prepare_in(conn, batch, request)
    with _turn(), _worker.engine.begin() as conn:  # fair turns at the write lock (no busy-wait back-off)
        return _worker.write_in(conn, planned)


def _ready(templates: Sequence[str]) -> bool:
    """Compile TEMPLATES and render them once (loading their Babel locale data) in this worker."""
    assert _worker is not None, "worker not initialised"
    for name in templates:
        check_sample(_worker.template(name))
    return True


class ParallelPlanner:
    """A pool of planning processes for one messaging service; use as a context manager."""

    def __init__(self, messaging: Messaging, workers: int = 2) -> None:
        consents = messaging.consents
        setup = PlannerSetup(
            messaging.engine.url.render_as_string(hide_password=False),
            consents.secret,
            consents.base_url,
            consents.rules,
            dict(consents.purposes),
            messaging.policy,
            messaging.emit_queued,
        )
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(_START_METHOD),
            initializer=_init,
            initargs=(setup,),
        )

    def warm_up(self, templates: Sequence[str] = ()) -> None:
        """Start every worker now and compile TEMPLATES in each (importing, connecting, compiling and loading
        locale data take a moment), rather than on the first chunks."""
        futures = [self._pool.submit(_ready, list(templates)) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def pids(self) -> list[int]:
        """Process ids of the running workers (for CPU accounting)."""
        return [p.pid for p in (self._pool._processes or {}).values() if p.pid is not None]

    def submit(self, batch: Sequence[tuple[Recipient, str]], request: SendRequest) -> Future[dict[str, int]]:
        """Plan BATCH in a worker (one transaction); the future gives counts by status."""
        return self._pool.submit(_plan, list(batch), request)

    def plan(self, batches: Iterable[tuple[Sequence[tuple[Recipient, str]], SendRequest]]) -> dict[str, int]:
        """Plan every (batch, request) across the workers; total counts by status. A failing chunk raises after
        the others have finished (each chunk is its own transaction, so a rerun with the same keys resumes)."""
        futures = [self.submit(batch, request) for batch, request in batches]
        totals: dict[str, int] = {}
        error: BaseException | None = None
        for future in futures:
            try:
                for status, n in future.result().items():
                    totals[status] = totals.get(status, 0) + n
            except BaseException as exc:  # keep collecting: the other chunks are committed
                error = error or exc
        if error is not None:
            raise error
        return totals

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelPlanner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
