"""`accord analyze` on files, and /api/v1/analytics on a live server fed through the Segment endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from accord.cli.main import app as cli

from .test_clv import lifetimes_data


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["analyze", *args], env={"ACCORD_HOME": str(home), **(env or {})})
    return result.exit_code, result.output


def test_attribution_on_a_paths_file_with_chart(tmp_path: Path) -> None:
    f = tmp_path / "paths.csv"
    f.write_text("path;conv;null;value\nA > B;1;0;10\nA;0;1;0\nB;1;0;30\n".replace(";", ","))
    code, out = run(tmp_path, "attribution", "--paths", str(f), "--path-col", "path", "--sep", ">",
                    "--conversions-col", "conv", "--nulls-col", "null", "--value-col", "value",
                    "--model", "markov", "--format", "json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert set(doc) == {"model", "total_conversions", "channels"} and doc["model"] == "markov"
    assert {c["channel"]: round(c["removal_effect"], 6) for c in doc["channels"]} == {"A": 0.5, "B": 1.0}
    chart = tmp_path / "models.png"
    code, out = run(tmp_path, "attribution", "--paths", str(f), "--conversions-col", "conv", "--chart", str(chart))
    assert code == 0, out
    assert "shapley" in out and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out = run(tmp_path, "attribution", "--paths", str(f), "--path-col", "route")
    assert code == 1 and "no column 'route'" in out and "Traceback" not in out


def test_lift_and_sample_size_on_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "ab.csv"
    rows = ["arm,bought,spent"]
    rows += [f"holdout,{int(i % 10 == 0)},{(i % 7) * 3.5}" for i in range(500)]
    rows += [f"email,{int(i % 6 == 0)},{(i % 9) * 4.0}" for i in range(500)]
    f.write_text("\n".join(rows) + "\n")
    code, out = run(tmp_path, "lift", "--input", str(f), "--group-col", "arm", "--control", "holdout",
                    "--metric", "bought", "--metric", "spent", "--format", "json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["control"] == "holdout" and {"control", "treatments"} <= set(doc)
    assert [set(t) for t in doc["treatments"]] == [{"group", "n", "metrics"}]
    metrics = doc["treatments"][0]["metrics"]
    assert {"rate", "lift_abs", "lift_rel", "ci_low", "ci_high", "statistic", "p_value"} <= set(metrics["bought"])
    assert metrics["bought"]["rate"] == pytest.approx(84 / 500)
    code, out = run(tmp_path, "sample-size", "--baseline", "0.1", "--effect", "0.02")
    assert code == 0 and "3841 per group" in out


def test_clv_and_cohorts_on_a_transactions_file(tmp_path: Path) -> None:
    rows = [r.split() for r in (lifetimes_data() / "CDNOW_sample.txt").read_text().splitlines() if r.strip()]
    f = tmp_path / "cdnow.csv"
    f.write_text("cust,day,amount\n" + "".join(f"{p[1]},{p[2]},{p[4]}\n" for p in rows))
    code, out = run(tmp_path, "clv", "--transactions", str(f), "--customer-col", "cust", "--date-col", "day",
                    "--value-col", "amount", "--calibration-end", "1997-09-30", "--format", "json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["customers"] == 2357
    assert doc["bg_nbd"]["r"] == pytest.approx(0.243, abs=2e-3) and doc["gamma_gamma"]["p"] > 0
    # the keys issue 7 lists (the documents may carry more, e.g. the Gamma-Gamma log-likelihood)
    assert {"customers", "bg_nbd", "gamma_gamma"} <= set(doc)
    assert set(doc["bg_nbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert {"p", "q", "gamma"} <= set(doc["gamma_gamma"])
    code, out = run(tmp_path, "cohorts", "--transactions", str(f), "--customer-col", "cust", "--date-col", "day",
                    "--periods", "3", "--format", "json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)[0]["retention"][0] == 1.0


def _cdnow_rows() -> list[tuple[str, str, float]]:
    rows = [r.split() for r in (lifetimes_data() / "CDNOW_sample.txt").read_text().splitlines() if r.strip()]
    return [(p[1], p[2], float(p[4])) for p in rows]


def _message(kind: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": ts, **fields}


@pytest.mark.slow
def test_api_and_cli_on_a_live_server(live_server: Any, tmp_path: Path) -> None:
    key = live_server.add_source("shop", "auto")
    batch = [
        _message("track", "2026-03-01T10:00:00Z", event="Ad Viewed", anonymousId="a1", messageId="m1",
                 context={"channel": "ads"}),
        _message("identify", "2026-03-02T10:00:00Z", userId="u1", anonymousId="a1", messageId="m2"),
        _message("track", "2026-03-03T10:00:00Z", event="Email Link Clicked", userId="u1", messageId="m3",
                 context={"channel": "email"}),
        _message("track", "2026-03-04T10:00:00Z", event="Order Completed", userId="u1", messageId="m4",
                 properties={"revenue": 120.0, "currency": "PLN"}, context={"channel": "store"}),
        _message("track", "2026-03-01T11:00:00Z", event="Email Opened", userId="u2", messageId="m5",
                 context={"channel": "email"}),
    ]  # fmt: skip
    assert httpx.post(f"{live_server.url}/v1/batch", json={"batch": batch}, auth=(key, "")).status_code == 200
    live_server.wait_processed()
    with live_server.admin() as client:
        first = client.get("/api/v1/analytics/attribution", params={"model": "first"}).json()
        assert first["total_conversions"] == 1
        credit = {c["channel"]: c for c in first["channels"]}
        assert credit["ads"]["conversions"] == 1 and credit["ads"]["value"] == 12_000  # across identities
        every = client.get("/api/v1/analytics/attribution", params={"model": "all", "window": "7d"}).json()
        assert every["currency"] == "PLN" and len(every["models"]) == 7
        bad = client.get("/api/v1/analytics/attribution", params={"model": "magic"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
        too_few = client.post("/api/v1/analytics/clv", json={})
        assert too_few.status_code == 400 and too_few.json()["error"]["code"] == "not_enough_data"
        card = client.get("/api/v1/analytics/channels").json()
        assert {c["channel"] for c in card["channels"]} >= {"ads", "email", "store"}
        svg = client.get("/api/v1/analytics/attribution.svg")
        assert svg.status_code == 200 and b"<svg" in svg.content
        lift = client.post(
            "/api/v1/analytics/lift",
            json={"control": "c", "groups": ["c", "c", "t", "t"], "metrics": {"bought": [0, 1, 1, 1]}},
        ).json()
        assert lift["treatments"][0]["metrics"]["bought"]["lift_abs"] == pytest.approx(0.5)
        assert client.get("/api/v1/analytics/scores/nobody").status_code == 404
        described = client.get("/api/v1/openapi.json").json()["paths"]
        assert {
            "/api/v1/analytics/attribution",
            "/api/v1/analytics/attribution/paths",
            "/api/v1/analytics/channels",
            "/api/v1/analytics/spend",
            "/api/v1/analytics/spend.csv",
            "/api/v1/analytics/lift/broadcast/{name}",
            "/api/v1/analytics/lift/global-control",
            "/api/v1/analytics/sample-size",
            "/api/v1/analytics/clv/transactions",
            "/api/v1/analytics/charts/{name}",
        } <= set(described)
        no_products = client.get("/api/v1/analytics/recommendations/whoever")
        assert no_products.status_code == 400 and no_products.json()["error"]["code"] == "not_enough_data"
        # ad spend imported over HTTP (CSV body), re-import unchanged, bad rows named
        csv_body = "date,channel,cost,currency\n2026-03-02,ads,80.00,PLN\n2026-03-02,ads,1,PLN\n"
        spend = client.post("/api/v1/analytics/spend.csv", content=csv_body, headers={"Content-Type": "text/csv"})
        assert spend.status_code == 200, spend.text
        assert spend.json()["inserted"] == 1
        assert spend.json()["rejected"] == [{"row": 2, "reason": "same date, channel and campaign as row 1"}]
        again = client.post("/api/v1/analytics/spend", json={"rows": [{"date": "2026-03-02", "channel": "ads",
                            "cost_minor": 8000, "currency": "PLN"}]}).json()  # fmt: skip
        assert (again["inserted"], again["unchanged"]) == (0, 1)
        assert [r["cost_minor"] for r in client.get("/api/v1/analytics/spend").json()] == [8000]
        ads = next(c for c in client.get("/api/v1/analytics/channels").json()["channels"] if c["channel"] == "ads")
        assert ads["cost_ads"] == 8000 and ads["cpa"] == pytest.approx(
            8000 / ads["attributed"]["markov"]["conversions"]
        )
        assert (
            client.get("/api/v1/analytics/sample-size", params={"baseline": 0.1, "effect": 0.02}).json()["per_group"]
            == 3841
        )
        posted = client.post("/api/v1/analytics/attribution/paths", json={
            "rows": [{"path": "A > B", "conv": 1, "null": 0}, {"path": "A", "conv": 0, "null": 1},
                     {"path": "B", "conv": 1, "null": 0}],
            "conversions_col": "conv", "nulls_col": "null", "model": "markov"}).json()  # fmt: skip
        assert {c["channel"]: round(c["removal_effect"], 6) for c in posted["channels"]} == {"A": 0.5, "B": 1.0}
        for name, magic in (("channels.svg", b"<svg"), ("attribution.png", b"\x89PNG"), ("cohorts.html", b"<!DOCTYPE")):
            chart = client.get(f"/api/v1/analytics/charts/{name}")
            assert chart.status_code == 200 and magic in chart.content[:400], name
        assert client.get("/api/v1/analytics/charts/channels.gif").json()["error"]["code"] == "invalid_input"
        assert client.get("/api/v1/analytics/charts/pie.svg").status_code == 400
        nope = client.get("/api/v1/analytics/lift/broadcast/nope")
        assert nope.status_code == 404 and nope.json()["error"]["code"] == "unknown_broadcast"
        no_control = client.get("/api/v1/analytics/lift/global-control")
        assert no_control.status_code == 400 and no_control.json()["error"]["code"] == "not_enough_data"
        tx = [{"customer": c, "date": d, "amount": a} for c, d, a in _cdnow_rows()]
        fitted = client.post("/api/v1/analytics/clv/transactions", json={
            "rows": tx, "value_col": "amount", "calibration_end": "1997-09-30"}).json()  # fmt: skip
        assert fitted["customers"] == 2357 and fitted["bg_nbd"]["r"] == pytest.approx(0.243, abs=2e-3)
    # the CLI asks the running server (it owns the event store)
    code, out = run(live_server.home, "attribution", "--model", "last", "--format", "json",
                    env={"ACCORD_ADMIN_TOKEN": live_server.token})  # fmt: skip
    assert code == 0, out
    assert {c["channel"]: c["conversions"] for c in json.loads(out)["channels"]}["store"] == 1
    code, out = run(live_server.home, "recommend", "user_id:u1", env={"ACCORD_ADMIN_TOKEN": live_server.token})
    assert code == 1 and "no product views" in out
    spend_file = tmp_path / "spend.csv"
    spend_file.write_text("date,channel,cost,currency\n2026-03-03,email,12.00,PLN\n")
    code, out = run(live_server.home, "spend", "import", str(spend_file), env={"ACCORD_ADMIN_TOKEN": live_server.token})
    assert code == 0 and "1 of 1 rows imported (1 new" in out, out
