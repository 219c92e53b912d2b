"""The state store engine: SQLite in WAL mode by default, PostgreSQL by URL, schema by Alembic."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from ulid import ULID

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def new_id() -> str:
    """A new sortable id (ULID, 26 characters)."""
    return str(ULID())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _sqlite_pragmas(synchronous: str, checkpoints: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        if not checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def create_state_engine(url: str, deferred_sync: bool = False) -> Engine:
    """Open the state store at URL (sqlite:///path or postgresql+psycopg://...).

    DEFERRED_SYNC (SQLite only; for a background writer such as the processing worker): commits do not fsync
    while they hold the database's one write lock, so they never make the durable intake wait for a disk flush;
    the writer calls `sync_state(engine)` once its work is committed, which makes it durable outside the lock.
    Its commits do not checkpoint the write-ahead log either: the writer runs `PRAGMA wal_checkpoint(PASSIVE)`
    itself when it holds no lock (the processing worker does after each slice).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas("NORMAL" if deferred_sync else "FULL", not deferred_sync))
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def sync_state(engine: Engine) -> None:
    """Make every transaction committed so far durable (fsync the SQLite write-ahead log; a no-op elsewhere).

    In WAL mode a commit appends to the -wal file; with synchronous=NORMAL it is not flushed at commit. One fsync of
    the file afterwards, without holding any lock, flushes every frame committed before it.
    """
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return
    try:
        fd = os.open(engine.url.database + "-wal", os.O_RDONLY)
    except FileNotFoundError:
        return  # no log: everything is in the database file, which checkpoints fsync
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


YIELD_POLL = 0.001  # seconds between looks at whether the other side still wants the lock
YIELD_IDLE = 0.005  # the lock free this long after a hand-over: the other side is not busy (see WriteTurn._yield)


class WriteTurn:
    """Fair turns at the SQLite write lock for the writers that take turns often (the intake and the processing
    worker): `with turn():` around a write transaction.

    SQLite's own busy handler sleeps with back-off (1, 2, 5, ... 100 ms) and a writer that commits and begins
    again at once can take the lock back before a sleeping waiter wakes, so one busy writer can starve the other
    for many transactions. Here a waiter blocks in the kernel (flock) and is woken at the hand-over; holding the
    turnstile while it waits keeps the other side from jumping the queue. Two files next to the database:
    ``-turn`` (the turnstile) and ``-wlock`` (the turn). A no-op for PostgreSQL and in-memory SQLite. Each
    instance has its own open files: give every thread or process that takes turns its own instance.
    """

    def __init__(self, engine: Engine, share: float | None = None) -> None:
        self._fds: tuple[int, int] | None = None
        # SHARE (0 < share < 1): when another side waited for the turn, pause after handing it over so that this
        # side holds the lock about that share of the time (the processing worker yields to the intake)
        self.share = share
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if database and database != ":memory:":
            self._paths: tuple[str, str] | None = (database + "-turn", database + "-wlock")
        else:
            self._paths = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._paths is None:
            yield
            return
        if self._fds is None:
            self._fds = (
                os.open(self._paths[0], os.O_RDWR | os.O_CREAT, 0o600),
                os.open(self._paths[1], os.O_RDWR | os.O_CREAT, 0o600),
            )
        turnstile, turn = self._fds
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        started = time.monotonic()
        contended = False
        try:
            yield
        finally:
            if self.share:
                contended = _is_locked(turnstile)  # a waiter holds the turnstile while it waits for the turn
            fcntl.flock(turn, fcntl.LOCK_UN)
        if contended and self.share:
            self._yield((time.monotonic() - started) * (1.0 - self.share) / self.share)

    def _yield(self, budget: float) -> None:
        """Pause while the other side keeps wanting the lock, at most BUDGET seconds. A busy intake (a burst, a
        load test) comes back for the lock within a few milliseconds, so the worker keeps about `share` of it as
        before; once the lock has stood free for YIELD_IDLE the intake is only trickling (one request took its
        turn and left) and the worker goes on, instead of sleeping out the budget after every request (a steady
        trickle would otherwise hold processing to about `share` of its speed while the lock stands mostly free)."""
        assert self._fds is not None
        turnstile, turn = self._fds
        now = time.monotonic()
        deadline, free_since = now + budget, None
        while (left := deadline - now) > 0:
            time.sleep(min(left, YIELD_POLL))
            now = time.monotonic()
            if _is_locked(turn) or _is_locked(turnstile):
                free_since = None
            elif free_since is None:
                free_since = now
            elif now - free_since >= YIELD_IDLE:
                return

    def close(self) -> None:
        """Close the lock files."""
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None


def _is_locked(fd: int) -> bool:
    """Whether another open file holds FD's lock (tried without waiting; released at once if taken)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def migrate(engine: Engine) -> None:
    """Bring the state store schema to the newest Alembic revision."""
    import logging

    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")  # one branch per domain, all applied


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware, on every engine."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
