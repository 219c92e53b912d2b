"""Shared fixtures: state stores on SQLite and PostgreSQL, a platform on real files, a live server."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    except Exception as exc:
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`accord serve` in a subprocess on real files, reached over real HTTP."""

    def __init__(self, home: Path, env_extra: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "test-admin-token"
        self.env = {
            **os.environ,
            "ACCORD_HOME": str(home),
            "ACCORD_PORT": str(self.port),
            "ACCORD_ADMIN_TOKEN": self.token,
            **(env_extra or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> LiveServer:
        import httpx

        accord = Path(sys.executable).parent / "accord"
        self.log = open(self.home.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([str(accord), "serve"], env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop(signal.SIGKILL)  # never leave a half-started server behind
        raise RuntimeError("server did not come up")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def admin(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def add_source(self, name: str, channel: str) -> str:
        with self.admin() as client:
            response = client.post("/api/v1/sources", json={"name": name, "channel": channel})
            response.raise_for_status()
            return str(response.json()["write_key"])

    def collected(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """EVENTS without those Accord's own domains wrote (loyalty points, journey updates): what was sent."""
        with self.admin() as client:
            internal = {s["id"] for s in client.get("/api/v1/sources").json() if s["write_key"].startswith("internal_")}
        return [e for e in events if e["source_id"] not in internal]

    def wait_processed(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.admin() as client:
            while time.monotonic() < deadline:
                stats = client.get("/api/v1/stats").json()
                if stats["processing_lag"] == 0:
                    return dict(stats)
                time.sleep(0.1)
        raise AssertionError(f"processing did not finish: {stats}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "home").start()
    yield server
    server.stop()
