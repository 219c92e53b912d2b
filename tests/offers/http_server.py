"""One live server per state engine for a whole test module (starting servers is the slow part of these tests)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, LiveServer


def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`accord serve` on SQLite (param "sqlite") or on a fresh PostgreSQL schema (param "postgres")."""
    home = tmp_path_factory.mktemp("live") / "home"
    env: dict[str, str] = {}
    schema = None
    admin = None
    if request.param == "postgres":
        reason = request.getfixturevalue("pg_reason")
        if reason is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}")
            pytest.skip(f"PostgreSQL unreachable: {reason}")
        schema = "t_" + secrets.token_hex(6)
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in PG_URL else "?"
        env["ACCORD_STATE_URL"] = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    live = LiveServer(home, env).start()
    try:
        yield live
    finally:
        live.stop()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
