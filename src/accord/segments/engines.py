"""Where compiled segment SQL runs: the DuckDB event store, or ClickHouse (chdb in-process, for tests and scale)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from accord.segments.compile import Compiled
from accord.storage.events import EventStore
from accord.storage.events.rollup import CLICKHOUSE_BUILD, CLICKHOUSE_DDL


class QueryEngine(Protocol):
    """Runs compiled queries of one dialect."""

    dialect: str
    rollups: bool  # whether the derived daily tables (event_days, event_anchors) exist beside the events
    # incremental queries read the touched profiles' events once and answer every condition from them (DuckDB)
    subset: bool

    def rows(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        """The result rows."""

    def flush(self) -> None:
        """Wait until the events handed to the store are written (full evaluations read only those)."""

    def change_seq(self) -> int | None:
        """The last identity change the event store has taken (written or staged); None: no such limit."""


class DuckDBEngine:
    """The embedded event store (named `$p` parameters)."""

    dialect = "duckdb"

    def __init__(self, events: EventStore, rollups: bool | None = None, subset: bool = True) -> None:
        self.events = events
        self.rollups = events.rollups_ready() if rollups is None else rollups
        self.subset = subset

    def rows(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        return self.events.query(compiled.sql, cast(Any, compiled.params))

    def flush(self) -> None:
        self.events.flush()

    def change_seq(self) -> int | None:
        return self.events.staged_cursors()[1]


def _ch_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list):
        return "[" + ",".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ChdbEngine:
    """ClickHouse in-process (chdb): an `events` table with the event store's columns in DATABASE (and the derived
    daily tables when ROLLUPS)."""

    dialect = "clickhouse"

    def __init__(self, session: Any, database: str = "accord", rollups: bool = True) -> None:
        self.session = session
        self.database = database
        self.rollups = rollups
        self.subset = False  # event_days is ordered by profile: restricted queries prune by the primary key

    def flush(self) -> None:
        """Nothing is staged here: the tests fill ClickHouse before they evaluate."""

    def change_seq(self) -> int | None:
        return None

    def rows(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        params = {k: _ch_value(v) for k, v in compiled.params.items()}
        sql = f"USE {self.database}; " if self.database else ""
        result = self.session.query(
            sql + compiled.sql + " SETTINGS join_use_nulls = 1, allow_nonconst_timezone_arguments = 1",
            "JSONCompact",
            params=params,
        )
        data = json.loads(result.bytes() or b'{"data": []}')
        types = [m["type"] for m in data.get("meta", [])]
        return [tuple(_ch_cell(v, t) for v, t in zip(row, types, strict=True)) for row in data["data"]]


def _ch_cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if "DateTime" in kind:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    if "Int" in kind and isinstance(value, str):
        return int(value)
    return value


CH_EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.events (
    event_id String, journal_seq Nullable(Int64), source_id Nullable(String), message_id Nullable(String),
    type String, event Nullable(String), name Nullable(String), channel String,
    timestamp DateTime64(6, 'UTC'), received_at DateTime64(6, 'UTC'), sent_at Nullable(DateTime64(6, 'UTC')),
    original_timestamp Nullable(DateTime64(6, 'UTC')), user_id Nullable(String), anonymous_id Nullable(String),
    identifiers Array(String), anchor Nullable(String), profile_id Nullable(String), revenue_minor Nullable(Int64),
    currency Nullable(String), store_id Nullable(String), library Nullable(String),
    campaign_source Nullable(String), campaign_medium Nullable(String), campaign_name Nullable(String),
    raw Nullable(String)
) ENGINE = MergeTree ORDER BY (timestamp, event_id)
"""


def load_chdb_from_parquet(session: Any, parquet_path: str, database: str = "accord") -> None:
    """Create DATABASE.events in chdb and fill it from a Parquet export of the DuckDB events table."""
    session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
    session.query(CH_EVENTS_DDL.format(db=database))
    session.query(f"TRUNCATE TABLE {database}.events")
    session.query(f"INSERT INTO {database}.events SELECT * FROM file('{parquet_path}', Parquet)")
    build_chdb_rollups(session, database)


def build_chdb_rollups(session: Any, database: str = "accord") -> None:
    """(Re)build the derived daily tables of DATABASE.events in ClickHouse."""
    for statement in [*CLICKHOUSE_DDL, *CLICKHOUSE_BUILD]:
        session.query(statement.format(db=database))
