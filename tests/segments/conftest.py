"""Engines for the segment tests: DuckDB (the event store) and ClickHouse through chdb, on the same events."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.segments.engines import ChdbEngine, DuckDBEngine, QueryEngine, load_chdb_from_parquet
from accord.storage.events import EVENT_COLUMNS
from accord.storage.events.duckdb import DuckDBEventStore

from .fixtures import duck_store, scenario


@pytest.fixture(scope="session")
def chdb_session() -> Iterator[Any]:
    chdb = pytest.importorskip("chdb.session")
    session = chdb.Session()
    yield session
    session.close()


def engines_for(rows: list[dict[str, Any]], tmp_path: Path, chdb_session: Any) -> dict[str, QueryEngine]:
    store = duck_store(tmp_path / "events.duckdb", rows)
    parquet = tmp_path / "events.parquet"
    store.query(f"COPY (SELECT {', '.join(EVENT_COLUMNS)} FROM events) TO '{parquet}' (FORMAT parquet)")
    database = "t_" + secrets.token_hex(4)
    load_chdb_from_parquet(chdb_session, str(parquet), database)
    return {
        "duckdb": DuckDBEngine(store, rollups=False),
        "clickhouse": ChdbEngine(chdb_session, database, rollups=False),
        "duckdb-rollups": DuckDBEngine(store),
        "clickhouse-rollups": ChdbEngine(chdb_session, database),
    }


@pytest.fixture(scope="module")
def scenario_engines(tmp_path_factory: pytest.TempPathFactory, chdb_session: Any) -> Iterator[dict[str, QueryEngine]]:
    engines = engines_for(scenario(), tmp_path_factory.mktemp("scenario"), chdb_session)
    yield engines
    store = engines["duckdb"].events  # type: ignore[attr-defined]
    assert isinstance(store, DuckDBEventStore)
    store.close()


@pytest.fixture(params=["duckdb", "clickhouse", "duckdb-rollups", "clickhouse-rollups"])
def engine(request: pytest.FixtureRequest, scenario_engines: dict[str, QueryEngine]) -> QueryEngine:
    """Every segment test runs on DuckDB and on ClickHouse (chdb), from the events alone and with the daily
    tables (event_days, event_anchors) where a condition can be answered from them."""
    return scenario_engines[request.param]
