"""The messaging CLI on local stores (no server): templates, consent, providers, broadcast with A/B, outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from accord.collect.emit import emit
from accord.platform import open_platform
from tests.conftest import make_settings

ACCORD = str(Path(sys.executable).parent / "accord")


def run(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_MESSAGING_POLICY": '{"quiet_hours": null}'}
    done = subprocess.run([ACCORD, *args], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def test_cli_templates_consent_providers_broadcast_ab_and_outbox(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = open_platform(make_settings(home))
    with platform.state.begin() as conn:
        emit(
            conn,
            platform.journal,
            "crm",
            "other",
            [
                {
                    "type": "identify",
                    "userId": f"u{i}",
                    "traits": {"first_name": f"N{i}", "locale": "pl"},
                    "context": {"device": {"id": f"dev{i}"}},
                }
                for i in range(16)
            ],
        )
    assert platform.processor.drain()
    for i in range(2, 16):
        if i != 7:  # u7 never agreed; u1 agrees through the CLI below
            platform.consents.set(f"user_id:u{i}", "promotions", "in_app", "opted_in", "app")
    platform.close()

    spec = {
        "name": "app-hello",
        "purpose": "promotions",
        "locales": {
            "en": {"in_app": {"title": "Hello {{ first_name }}", "body": "A"}},
            "pl": {"in_app": {"title": "Cześć {{ first_name }}", "body": "A"}},
        },
    }
    (tmp_path / "a.json").write_text(json.dumps(spec))
    (tmp_path / "b.json").write_text(json.dumps({**spec, "name": "app-hello-b"}))
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "locales": {"en": {"in_app": {"title": "{{ x"}}}}))
    assert "saved" in run(home, "template", "apply", str(tmp_path / "a.json")).stdout
    run(home, "template", "apply", str(tmp_path / "b.json"))
    bad = run(home, "template", "apply", str(tmp_path / "bad.json"), ok=False)
    assert "en/in_app" in bad.stderr and "Traceback" not in bad.stderr
    preview = as_json(run(home, "template", "preview", "app-hello", "--identifier", "user_id:u1", "--format", "json"))
    assert preview["channels"]["in_app"]["title"] == "Cześć N1"

    run(home, "consent", "set", "user_id:u1", "promotions", "in_app", "opted_in", "--source", "app")
    shown = as_json(run(home, "consent", "show", "user_id:u1", "--format", "json"))
    assert shown["reachable"] == ["in_app"] and shown["consents"][0]["status"] == "opted_in"
    assert (
        "unknown status" in run(home, "consent", "set", "user_id:u3", "promotions", "in_app", "maybe", ok=False).stderr
    )

    run(
        home, "providers", "add", "inbox", "--channel", "in_app", "--kind", "in_app", "--cost", "2", "--currency", "PLN"
    )
    assert [p["name"] for p in as_json(run(home, "providers", "list", "--format", "json"))] == ["inbox"]

    (tmp_path / "audience.txt").write_text("\n".join(f"user_id:u{i}" for i in range(1, 16)))
    planned = as_json(
        run(
            home,
            "broadcast",
            "send",
            "--template",
            "app-hello",
            "--identifiers",
            str(tmp_path / "audience.txt"),
            "--channels",
            "in_app",
            "--holdout",
            "10%",
            "--variant",
            "A=app-hello",
            "--variant",
            "B=app-hello-b",
            "--format",
            "json",
        )
    )
    # u7 never agreed: dropped, unless the deterministic 10% holdout (by profile id) took it first
    counts = planned["planned"]
    assert planned["audience"] == 15 and counts.get("dropped", 0) + counts.get("held_out", 0) + counts["queued"] == 15
    assert counts.get("dropped", 0) == 1 or counts.get("held_out", 0) >= 1
    assert counts["queued"] <= 14
    assert "handled" in run(home, "outbox", "run", "--until-idle").stdout
    report = as_json(run(home, "broadcast", "show", planned["id"], "--format", "json"))
    assert set(report["variants"]) <= {"A", "B"}  # deterministic A/B split by profile
    delivered = sum(v["by_status"].get("delivered", 0) for v in report["variants"].values())
    assert delivered == planned["planned"]["queued"]
    assert sum(v["cost_minor"] for v in report["variants"].values()) == 2 * delivered
    assert run(home, "broadcast", "send", "--template", "app-hello", ok=False).stderr.count("exactly one audience")


def test_cli_promoted_items_purchases_and_rebuild(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = open_platform(make_settings(home))
    with platform.state.begin() as conn:
        emit(
            conn,
            platform.journal,
            "crm",
            "other",
            [
                {"type": "identify", "userId": u, "traits": {"first_name": u.title(), "email": f"{u}@example.com"}}
                for u in ("ann", "bob")
            ],
        )
        emit(
            conn,
            platform.journal,
            "pos",
            "store",
            [
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": "ann",
                    "properties": {"order_id": "POS-1", "products": [{"sku": "SKU-RUN-42", "category": "shoes"}]},
                }
            ],
        )
    assert platform.processor.drain()
    for u in ("ann", "bob"):
        platform.consents.set(f"email:{u}@example.com", "promotions", "email", "opted_in", "test")
    platform.close()

    template = tmp_path / "launch.yaml"
    template.write_text(
        "name: launch\npurpose: promotions\npromotes:\n  skus: [SKU-RUN-42]\n  within: 30d\n"
        "locales:\n  en:\n    email: {subject: 'New runners', text: 'Here they are'}\n"
    )
    assert "promotes" in run(home, "template", "apply", str(template)).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(template.read_text().replace("within: 30d", "within: soon"))
    failed = run(home, "template", "apply", str(bad), ok=False)
    assert "within must be like 90d" in failed.stdout + failed.stderr

    bought = as_json(run(home, "purchases", "show", "email:ann@example.com", "--format", "json"))
    assert [(p["sku"], p["category"], p["channel"]) for p in bought] == [("SKU-RUN-42", "shoes", "store")]
    rebuilt = as_json(run(home, "purchases", "rebuild", "--format", "json"))
    assert (rebuilt["purchase_lines"], rebuilt["people"], rebuilt["events"]) == (1, 1, 1)

    audience = tmp_path / "people.txt"
    audience.write_text("email:ann@example.com\nemail:bob@example.com\n")
    sent = as_json(
        run(home, "broadcast", "send", "--identifiers", str(audience), "--template", "launch", "--format", "json")
    )
    assert sent["planned"] == {"suppressed": 1, "queued": 1}
    by_category_args = [
        "broadcast", "send", "--identifiers", str(audience), "--template", "launch", "--name", "shoes",
        "--promotes-category", "shoes", "--within", "12w", "--format", "json",
    ]  # fmt: skip
    by_category = as_json(run(home, *by_category_args))
    assert by_category["planned"] == {"suppressed": 1, "queued": 1}
    wrong = run(
        home, "broadcast", "send", "--identifiers", str(audience), "--template", "launch", "--promotes", "X",
        "--within", "soon", ok=False,
    )  # fmt: skip
    assert "within must be like 90d" in wrong.stdout + wrong.stderr
