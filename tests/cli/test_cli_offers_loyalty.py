"""`accord offers` and `accord loyalty` without a server: the same API runs in the CLI process on the local stores."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import make_settings
from typer.testing import CliRunner

from accord.cli.main import app
from accord.collect.emit import emit
from accord.platform import open_platform
from accord.profiles import service as profiles


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """The in-process API configures logging onto CliRunner's streams; put the test process's logging back."""
    known = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]
    saved = {id(lg): (lg.handlers[:], lg.level, lg.propagate) for lg in loggers}
    yield
    for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(lg, logging.Logger):
            handlers, level, propagate = saved.get(id(lg), ([], logging.NOTSET, True))
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ACCORD_HOME", str(home))
    monkeypatch.setenv("ACCORD_ADMIN_TOKEN", "test-admin-token")
    monkeypatch.delenv("ACCORD_STATE_URL", raising=False)
    return home


def test_offers_and_loyalty_commands(home: Path, tmp_path: Path) -> None:
    platform = open_platform(make_settings(home))
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "crm", "crm", [{"type": "identify", "userId": "ann"}])
    assert platform.processor.drain()
    pid = profiles.resolve(platform.state, platform.rules, "user_id:ann")
    platform.close()
    assert pid
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        assert (result.exit_code == 0) == ok, result.output
        return result.stdout if ok else result.output

    offer = json.loads(cli("offers", "create", "Spring", "--code", "spring", "--percent", "10", "--format", "json"))
    assert offer["code"] == "SPRING" and offer["discount_value"] == 1000
    verdict = json.loads(cli("offers", "validate", "SPRING", "--channel", "store", "--basket-minor", "10000",
                             "--currency", "PLN", "--format", "json"))  # fmt: skip
    assert verdict["valid"] and verdict["discount_minor"] == 1000
    first = json.loads(cli("offers", "redeem", "spring", "--channel", "store", "--key", "k1", "--format", "json"))
    again = json.loads(cli("offers", "redeem", "spring", "--channel", "store", "--key", "k1", "--format", "json"))
    assert again["id"] == first["id"] and again["replayed"]
    unique = json.loads(cli("offers", "create", "Welcome", "--unique", "--format", "json"))
    out = tmp_path / "codes.txt"
    cli("offers", "codes", unique["id"], "--count", "5", "--output", str(out))
    assert len(out.read_text().split()) == 5
    assert "not valid" in cli("offers", "validate", "NOPE", "--channel", "web")
    assert "Spring" in cli("offers", "list")

    assert (
        json.loads(cli("loyalty", "earn", pid, "--channel", "app", "--points", "100", "--format", "json"))[
            "balance_after"
        ]
        == 100
    )
    refused = cli("loyalty", "burn", pid, "150", "--channel", "store", ok=False)
    assert "insufficient_points" in refused
    cli("loyalty", "burn", pid, "40", "--channel", "store")
    account = json.loads(cli("loyalty", "show", pid, "--format", "json"))
    assert account["balance"] == 60
    assert [e["kind"] for e in json.loads(cli("loyalty", "ledger", pid, "--format", "json"))] == ["burn", "earn"]


def test_loyalty_backfill_without_a_server(home: Path, tmp_path: Path) -> None:
    """`accord loyalty backfill` on the local stores: past orders earn, dated at their purchase; again: nothing."""
    bought = [datetime.now(UTC) - timedelta(days=d) for d in (90, 30)]
    platform = open_platform(make_settings(home))
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "pos", "store", [
            {"type": "track", "userId": "bo", "event": "Order Completed", "timestamp": at.isoformat(),
             "properties": {"order_id": f"p{i}", "revenue": 50, "currency": "PLN"}}
            for i, at in enumerate(bought)
        ])  # fmt: skip
    assert platform.processor.drain()
    pid = profiles.resolve(platform.state, platform.rules, "user_id:bo")
    platform.close()
    assert pid
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        assert (result.exit_code == 0) == ok, result.output
        return result.stdout if ok else result.output

    assert "no_program" in cli("loyalty", "backfill", ok=False)
    program = tmp_path / "program.json"
    program.write_text(json.dumps({"points_per_unit": {"default": 2}}))
    cli("loyalty", "program", "--set", str(program))
    assert "invalid_date" in cli("loyalty", "backfill", "--until", "soon", ok=False)
    assert "invalid_range" in cli("loyalty", "backfill", "--since", "2026-05-01", "--until", "2026-04-30", ok=False)
    assert "2 purchases earned 200 points" in cli("loyalty", "backfill")
    again = json.loads(cli("loyalty", "backfill", "--format", "json"))
    assert (again["earned"], again["already_done"], again["order_events"]) == (0, 2, 2)
    ledger = json.loads(cli("loyalty", "ledger", pid, "--format", "json"))
    assert [datetime.fromisoformat(e["created_at"]) for e in ledger] == bought[::-1]
    platform = open_platform(make_settings(home))  # the points' timeline events waited in the journal
    try:
        assert platform.processor.drain()
        timeline = platform.events.timeline(pid, limit=50).events
        assert [e["timestamp"] for e in timeline if e["event"] == "Loyalty Points Earned"] == bought
    finally:
        platform.close()
