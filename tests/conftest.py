"""Shared fixtures: state stores on SQLite and PostgreSQL, a platform on real files, a live server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.config import Settings, load_settings
from accord.platform import Platform, open_platform

PG_URL = os.environ.get("ACCORD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


@pytest.fixture
def pg_url(pg_reason: str | None) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; in CI an unreachable server fails the test instead of skipping."""
    if pg_reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {pg_reason}")
        pytest.skip(f"PostgreSQL unreachable: {pg_reason}")
    schema = "t_" + secrets.token_hex(6)
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every state-store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def make_settings(home: Path, state_url: str | None = None, **extra: str) -> Settings:
    env = {"ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "test-admin-token", **extra}
    if state_url:
        env["ACCORD_STATE_URL"] = state_url
    return load_settings(env)


@pytest.fixture
def settings(tmp_path: Path, state_url: str) -> Settings:
    return make_settings(tmp_path / "home", state_url)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    """A platform on real files (SQLite or PostgreSQL state, DuckDB events), processed synchronously."""
    plat = open_platform(settings)
    yield plat
    plat.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    """A platform on SQLite only (for tests about other things than the state engine)."""
    plat = open_platform(make_settings(tmp_path / "home"))
    yield plat
    plat.close()
