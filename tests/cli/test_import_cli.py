"""`accord import events|customers|orders`: exit codes, summaries, rejects and re-imports (no server running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from accord.cli import imports
from accord.config import load_settings
from accord.identity.queries import profile_for_identifier
from accord.platform import open_platform

ORDERS_HEADER = "order_id,store_id,ordered_at,loyalty_card,email,phone,sku,quantity,unit_price,currency"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root."""

    app.add_typer(imports.app, name="import")
    return app


def run(cli: typer.Typer, home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["import", *args], env={"ACCORD_HOME": str(home)})
    return result.exit_code, result.output


def test_orders_import_then_reimport_then_rejects(cli: typer.Typer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    orders = tmp_path / "orders.csv"
    orders.write_text(
        f"{ORDERS_HEADER}\n"
        "P1,s1,2025-03-01T12:00:00+01:00,2990000000011,,,SKU-A,2,12.50,PLN\n"
        "P1,s1,2025-03-01T12:00:00+01:00,2990000000011,,,SKU-B,1,5.00,PLN\n"
        "P2,s1,2025-03-01T13:00:00+01:00,,,,SKU-A,1,12.50,PLN\n",
        encoding="utf-8",
    )
    code, out = run(cli, home, "orders", str(orders))
    assert code == 0, out
    assert "3 rows, 2 orders" in out and "accepted 2," in out

    code, out = run(cli, home, "orders", str(orders), "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["messages"], data["accepted"], data["duplicates"], data["via"]) == (2, 0, 2, "local")
    assert data["processed"] is True and data["source"] == "pos-import"

    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{ORDERS_HEADER}\nP3,s1,2025-03-01T14:00:00Z,,,,SKU-A,1,1.00,PLN\nP4,s1,yesterday,,,,SKU-A,1,1.00,PLN\n",
        encoding="utf-8",
    )
    code, out = run(cli, home, "orders", str(bad))
    assert code == 2, out
    assert "1 rows rejected" in out and "bad.csv.rejects.csv" in out.replace("\n", "")
    assert "3,invalid_timestamp" in (tmp_path / "bad.csv.rejects.csv").read_text(encoding="utf-8")

    platform = open_platform(load_settings({"ACCORD_HOME": str(home)}))
    try:
        orders = platform.events.query(
            "SELECT count(*), sum(revenue_minor) FROM events WHERE event = 'Order Completed'"
        )
        assert orders[0] == (3, 2500 + 500 + 1250 + 100)  # P1, P2, P3: loaded before the command exited
        earned = platform.events.query("SELECT count(*) FROM events WHERE event <> 'Order Completed'")[0][0]
        assert earned == 1  # loyalty: points for P1, the one receipt with a loyalty card
        assert profile_for_identifier(platform.state, "loyalty_card:2990000000011") is not None
    finally:
        platform.close()


def test_customers_and_events_commands(cli: typer.Typer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    crm = tmp_path / "crm.csv"
    crm.write_text("id,mail,karte,stand\nK1,k1@example.com,CARD-1,2024-05-01T08:00:00Z\n", encoding="utf-8")
    code, out = run(
        cli, home, "customers", str(crm), "--id-col", "id", "--email-col", "mail", "--map", "loyalty_card=karte"
    )
    assert code == 0, out
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps({"type": "track", "event": "Viewed", "userId": "u1", "messageId": "e1"}) + "\n{oops\n",
        encoding="utf-8",
    )
    code, out = run(cli, home, "events", str(events), "--format", "json")
    assert code == 2, out
    data = json.loads(out)
    assert (data["accepted"], data["rejected_rows"], data["source"]) == (1, 1, "file-import-events")
    platform = open_platform(load_settings({"ACCORD_HOME": str(home)}))
    try:
        assert profile_for_identifier(platform.state, "customer_id:K1") == profile_for_identifier(
            platform.state, "email:k1@example.com"
        )
        assert platform.events.count_events() == 2
    finally:
        platform.close()


def test_errors_exit_1_with_a_clear_message(cli: typer.Typer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out = run(cli, home, "orders", str(tmp_path / "missing.csv"))
    assert code == 1 and "file not found" in out and "Traceback" not in out
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    code, out = run(cli, home, "orders", str(wrong))
    assert code == 1 and "order_id" in out and "Traceback" not in out
    code, out = run(cli, home, "orders", str(wrong), "--map", "colour=a")
    assert code == 1 and "unknown order field" in out
    code, out = run(cli, home, "orders", str(wrong), "--timezone", "Mars/Olympus")
    assert code == 1 and "time zone" in out
    code, out = run(cli, home, "customers", str(wrong), "--map", "oops")
    assert code == 1 and "trait=column" in out
