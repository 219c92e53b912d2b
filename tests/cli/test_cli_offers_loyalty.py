"""`accord offers` and `accord loyalty` without a server: the same API runs in the CLI process on the local stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import make_settings
from typer.testing import CliRunner

from accord.cli.main import app
from accord.collect.emit import emit
from accord.platform import open_platform
from accord.profiles import service as profiles


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
