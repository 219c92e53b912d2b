"""The reservation desk: concurrent reservations share one transaction (group commit), so a commit's fsync is
paid once per batch instead of once per reservation. Each reservation is still its own conditional UPDATE, so
the batch never oversells; results are delivered per request."""

from __future__ import annotations

import contextlib
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from accord.collect.journal import Journal
from accord.commerce.errors import CommerceError, Conflict, InsufficientStock, InvalidInput
from accord.commerce.inventory import MAX_TTL_SECONDS, Reservation, positive_int, release_expired, reservation_from_row
from accord.commerce.locations import get_location
from accord.commerce.tables import reservations
from accord.storage import WriteTurn, new_id, utcnow


@dataclass(frozen=True)
class _Statements:
    """The desk's statements in the driver's own parameter style (no per-call statement building)."""

    reserve: str
    unreserve: str
    insert: str
    sqlite: bool

    def stamp(self, at: datetime) -> Any:
        """A UTC time as the UTCDateTime columns store it."""
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else at


_COLUMNS = (
    "id",
    "location_id",
    "sku",
    "quantity",
    "status",
    "expires_at",
    "order_id",
    "customer_key",
    "idempotency_key",
    "created_at",
    "updated_at",
)


def _sql(dialect: str) -> _Statements:
    sqlite = dialect == "sqlite"

    def p(name: str) -> str:
        return f":{name}" if sqlite else f"%({name})s"

    where = f"location_id = {p('loc')} AND sku = {p('sku')}"
    return _Statements(
        reserve=f"UPDATE stock_levels SET reserved = reserved + {p('qty')}, updated_at = {p('now')} WHERE {where} "
        f"AND on_hand - reserved - safety_stock >= {p('qty')}",
        unreserve=f"UPDATE stock_levels SET reserved = reserved - {p('qty')} WHERE {where}",
        insert=f"INSERT INTO reservations ({', '.join(_COLUMNS)}) VALUES ({', '.join(p(c) for c in _COLUMNS)}) "
        "ON CONFLICT DO NOTHING",
        sqlite=sqlite,
    )


@dataclass(eq=False)
class _Request:
    location_id: str
    sku: str
    quantity: int
    ttl_seconds: int
    customer_key: str | None
    idempotency_key: str | None
    future: Future[Reservation] = field(default_factory=Future)
    retried: bool = False


class ReservationDesk:
    """Serves reservations from one thread in batched transactions. Start it, `submit` from any thread or
    `await asyncio.wrap_future(desk.submit(...))` from the event loop, stop it at shutdown."""

    def __init__(self, state: sa.Engine, journal: Journal, max_batch: int = 256) -> None:
        self.state = state
        self.journal = journal
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.served = 0
        self._turn = WriteTurn(state)  # fair turns at the SQLite write lock for the desk's thread

    def start(self) -> ReservationDesk:
        """Start serving."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="reservation-desk", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the queued requests and stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._turn.close()

    def submit(
        self,
        location_id: str,
        sku: str,
        quantity: int,
        ttl_seconds: int = 900,
        customer_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> Future[Reservation]:
        """Queue a reservation; bad input and unknown locations raise here, stock answers come in the future."""
        positive_int(quantity, "quantity")
        if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidInput(f"ttl_seconds must be in [1, {MAX_TTL_SECONDS}]", code="invalid_ttl")
        get_location(self.state, location_id)
        request = _Request(location_id, sku, quantity, ttl_seconds, customer_key, idempotency_key)
        if self._thread is None:
            raise RuntimeError("the reservation desk is not running")
        self._queue.put(request)
        return request.future

    def reserve(self, *args: Any, **kwargs: Any) -> Reservation:
        """Blocking form of submit."""
        return self.submit(*args, **kwargs).result()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        later: list[_Request] = []
        keyed: dict[str, _Request] = {}
        now_batch: list[_Request] = []
        for request in batch:
            key = request.idempotency_key
            if key is not None and key in keyed:
                later.append(request)  # the same key twice in one batch: answer it after the first is settled
            else:
                if key is not None:
                    keyed[key] = request
                now_batch.append(request)
        results: dict[int, Reservation | CommerceError] = {}
        short: list[_Request] = []
        try:
            existing = self._existing(list(keyed))
            now = utcnow()
            sql = _sql(self.state.dialect.name)
            stamp = sql.stamp(now)
            with self._turn(), self.state.begin() as conn:
                for request in now_batch:
                    key = request.idempotency_key
                    if key is not None and key in existing:
                        results[id(request)] = self._same(existing[key], request)
                        continue
                    params = {"loc": request.location_id, "sku": request.sku, "qty": request.quantity, "now": stamp}
                    if conn.exec_driver_sql(sql.reserve, params).rowcount != 1:
                        short.append(request)
                        continue
                    row: dict[str, Any] = {
                        "id": new_id(),
                        "location_id": request.location_id,
                        "sku": request.sku,
                        "quantity": request.quantity,
                        "status": "active",
                        "expires_at": now + timedelta(seconds=request.ttl_seconds),
                        "order_id": None,
                        "customer_key": request.customer_key,
                        "idempotency_key": key,
                        "created_at": now,
                        "updated_at": now,
                    }
                    insert = {
                        **row,
                        "expires_at": sql.stamp(row["expires_at"]),
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                    if not conn.exec_driver_sql(sql.insert, insert).rowcount:
                        # another process took this key meanwhile: give the units back, answer from its row
                        conn.exec_driver_sql(sql.unreserve, params)
                        later.append(request)
                        continue
                    results[id(request)] = Reservation(**{n: row[n] for n in Reservation.__dataclass_fields__})
        except Exception as exc:  # the whole batch failed (e.g. the database is gone): tell everyone
            for request in now_batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            for request in later:
                self._queue.put(request)
            return
        self.batches += 1
        for request in now_batch:
            result = results.get(id(request))
            if result is None:
                continue
            if isinstance(result, CommerceError):
                request.future.set_exception(result)
            else:
                self.served += 1
                request.future.set_result(result)
        for request in short:
            released = 0
            if not request.retried:
                with contextlib.suppress(Exception):
                    released = release_expired(
                        self.state, self.journal, location_id=request.location_id, sku=request.sku
                    )
            if released:
                request.retried = True
                self._queue.put(request)
            else:
                request.future.set_exception(
                    InsufficientStock(
                        f"fewer than {request.quantity} units of {request.sku} available at {request.location_id}"
                    )
                )
        for request in later:
            self._queue.put(request)

    def _existing(self, keys: list[str]) -> dict[str, Reservation]:
        if not keys:
            return {}
        with self.state.connect() as conn:
            rows = conn.execute(sa.select(reservations).where(reservations.c.idempotency_key.in_(keys)))
            return {row.idempotency_key: reservation_from_row(row) for row in rows}

    @staticmethod
    def _same(found: Reservation, request: _Request) -> Reservation | CommerceError:
        if (found.location_id, found.sku, found.quantity) != (request.location_id, request.sku, request.quantity):
            return Conflict("this idempotency key was used for a different reservation", code="idempotency_key_reused")
        return found
