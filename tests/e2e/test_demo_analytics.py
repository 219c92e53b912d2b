"""Stories 18-23 on the demo retailer, through the real CLI: attribution, scorecard, purchase rate by channels,
customer value written to profiles, recommendations and demand forecasts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.main import app as cli


def analyze(env: dict[str, str], *args: str) -> Any:
    done = CliRunner().invoke(cli, ["analyze", *args, "--format", "json"], env=env)
    assert done.exit_code == 0, done.output[-2000:]
    return json.loads(done.output)


@pytest.mark.slow
def test_stories_18_to_23_on_the_demo_retailer(tmp_path: Path) -> None:
    env = {"ACCORD_HOME": str(tmp_path / "home")}
    loaded = CliRunner().invoke(
        cli, ["demo", "--customers", "250", "--days", "365", "--seed", "11", "--no-serve"], env=env
    )
    assert loaded.exit_code == 0, loaded.output[-2000:]
    counts = json.loads((tmp_path / "home" / "demo.json").read_text())["counts"]
    caused = {k.removeprefix("orders_caused_by_"): v for k, v in counts.items() if k.startswith("orders_caused_by_")}
    assert caused.get("web", 0) > 0 and caused.get("app", 0) > 0  # the generator's ground truth is recorded

    # 18: every model side by side; store receipts are conversions on the same paths as online touches
    every = analyze(env, "attribution", "--model", "all", "--window", "30d")
    models = {m["model"]: m for m in every["models"]}
    assert set(models) == {"first", "last", "linear", "time_decay", "position", "markov", "shapley"}
    for m in models.values():
        assert sum(c["conversions"] for c in m["channels"]) == pytest.approx(m["total_conversions"])
    markov = {c["channel"]: c for c in models["markov"]["channels"]}
    assert markov["store"]["conversions"] > 0 and markov["store"]["removal_effect"] > 0
    assert {"web", "app", "email"} <= set(markov)

    # 19 + 20: scorecard and purchase rate by number of channels reached
    card = analyze(env, "channels")
    assert {c["channel"] for c in card["channels"]} >= {"web", "store", "email"}
    # the demo's campaigns held out 10 % of their targets and priced their messages; ads have imported spend
    rows = {c["channel"]: c for c in card["channels"]}
    assert rows["email"]["lift"] is not None and rows["email"]["lift"]["control_n"] > 0
    assert rows["email"]["cost_messages"] > 0 and rows["ads"]["cost_ads"] > 0 and rows["ads"]["cpa"] is not None
    rates = card["purchase_rate_by_channels"]
    assert rates and all(0 <= r["purchase_rate"] <= 1 for r in rates)

    # 21: customer models fitted on every channel's purchases, scores written back to profiles, RFM segments
    clv = analyze(env, "clv", "--time-unit", "week")
    assert clv["customers"] > 50 and clv["run_id"] and clv["bg_nbd"]["r"] > 0
    rfm = analyze(env, "rfm")
    assert {"champions", "hibernating"} & {r["segment"] for r in rfm}

    # 22: recommendations for a known customer and the held-out evaluation
    quality = analyze(env, "recommend", "--evaluate", "--k", "10")
    assert quality["held_out_users"] > 10
    assert quality["model"]["recall_at_k"] >= 0 and quality["popularity"]["recall_at_k"] >= 0

    # 23: demand per store and SKU from every channel's order lines, with hold-out accuracy and safety stock
    fc = analyze(env, "forecast", "--horizon", "4")
    assert fc["series"] > 10 and fc["model"] in {"CrostonOptimized", "ADIDA", "IMAPA"}
    assert any(r["store"] == "online" for r in fc["forecasts"]) and any(r["store"] != "online" for r in fc["forecasts"])
