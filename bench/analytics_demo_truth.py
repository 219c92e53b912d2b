"""How close each attribution model comes to the channel effects the demo generator simulated.

    .venv/bin/python bench/analytics_demo_truth.py [--customers 3000] [--window 30d] [--holdout-percent 10]
        [--inert-channel push] [--json FILE]

The generator records, per order, which channel's click started the session that ended in it (email, sms, push,
ads; organic web and app sessions; store receipts): ``orders_caused_by_*`` in its manifest counts. Every order
would not have happened without that session, so these counts are the true incremental orders per channel. The
script generates the demo, loads it into a temporary ACCORD_HOME, runs every model on the event store and prints
each model's share of conversions per channel next to the true share, with the total variation distance
(half the sum of absolute share differences: 0 = exact, 1 = disjoint).

Story 19: each email/SMS/push campaign held out ``--holdout-percent`` of its targets; the generator knows the true
incremental conversion rate each channel's messages caused in the 7 days after a send (channel_truth.json). The
script runs the channel scorecard (``--window`` 7d for the lift) and prints, per channel, the pooled holdout lift
with its 95 % interval next to the truth, and the message costs and ad spend it read.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--window", default="30d")
    parser.add_argument("--holdout-percent", type=float, default=10.0)
    parser.add_argument("--inert-channel", action="append", default=[], help="a channel whose messages do nothing")
    parser.add_argument("--json", type=Path, default=Path("bench/results/analytics_demo_truth.json"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="accord-truth-"))
    os.environ["ACCORD_HOME"] = str(home)
    from accord.analytics import service
    from accord.analytics.store import parse_window
    from accord.analytics_sources import holdout_tests
    from accord.cli.demo import load_files
    from accord.config import load_settings
    from accord.demo.generator import DemoSpec, generate
    from accord.platform import open_platform

    started = time.perf_counter()
    spec = DemoSpec(
        customers=args.customers, days=args.days, seed=args.seed, holdout_percent=args.holdout_percent,
        inert_channels=tuple(args.inert_channel),
    )  # fmt: skip
    counts = dict(generate(spec, home / "demo-data").counts)
    load_files(home / "demo-data")
    lift_truth = json.loads((home / "demo-data" / "channel_truth.json").read_text())
    truth = {k.removeprefix("orders_caused_by_"): v for k, v in counts.items() if k.startswith("orders_caused_by_")}
    platform = open_platform(load_settings(), read_only_events=True)
    try:
        doc = service.attribution_from_store(platform.events, "all", parse_window(args.window))
        card = service.channel_scorecard(
            platform.events, platform.state, parse_window(f"{lift_truth['window_days']}d"), model="markov",
            holdout_tests=holdout_tests(platform),
        )  # fmt: skip
        # receipts without a card, email or phone belong to nobody's path: the truth counts identified orders only
        anonymous = int(
            platform.events.query(
                "SELECT count(*) FROM events WHERE type = 'track' AND event = 'Order Completed' AND profile_id IS NULL"
            )[0][0]
        )
    finally:
        platform.close()
    truth["store"] = counts["orders"] - anonymous
    total_truth = sum(truth.values())
    rows: list[dict[str, Any]] = []
    channels = sorted({c["channel"] for m in doc["models"] for c in m["channels"]} | set(truth))
    true_share = {ch: truth.get(ch, 0) / total_truth for ch in channels}
    summary = {}
    for m in doc["models"]:
        share = {c["channel"]: c["conversions"] / m["total_conversions"] for c in m["channels"]}
        tvd = 0.5 * sum(abs(share.get(ch, 0.0) - true_share[ch]) for ch in channels)
        summary[m["model"]] = {"total_variation_distance": tvd, "shares": share}
    for ch in channels:
        rows.append(
            {"channel": ch, "true": true_share[ch], **{k: v["shares"].get(ch, 0.0) for k, v in summary.items()}}
        )
    report = {
        "customers": args.customers,
        "window": args.window,
        "true_orders": truth,
        "anonymous_receipts_left_out": anonymous,
        "conversions_in_event_store": doc["models"][0]["total_conversions"],
        "paths": doc["paths"],
        "models": {k: v["total_variation_distance"] for k, v in summary.items()},
        "shares": rows,
        "lift": lift_rows(card, lift_truth),
        "seconds": time.perf_counter() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    models = list(summary)
    print("| channel | true | " + " | ".join(models) + " |")
    print("|---|---:|" + "---:|" * len(models))
    for r in rows:
        print(f"| {r['channel']} | {r['true']:.3f} | " + " | ".join(f"{r[m]:.3f}" for m in models) + " |")
    print(
        "| **distance to truth** | 0 | "
        + " | ".join(f"{summary[m]['total_variation_distance']:.3f}" for m in models)
        + " |"
    )
    print(f"true orders: {truth}; conversions seen: {report['conversions_in_event_store']}; paths {doc['paths']}")
    print()
    print(f"holdout lift, {lift_truth['holdout_percent']:g} % held out, {lift_truth['window_days']}-day window:")
    print("| channel | campaigns | treated | held out | true lift | estimated lift | 95 % interval | p | covers truth "
          "| cost (PLN) | CPA (PLN) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|")
    for r in report["lift"]:
        cpa = "—" if r["cpa"] is None else f"{r['cpa'] / 100:.2f}"
        cost = "—" if r["cost"] is None else f"{r['cost'] / 100:,.2f}"
        if r["estimate"] is None:
            true = "—" if r["true_lift"] is None else f"{r['true_lift']:.4f}"  # ads: no holdouts
            print(f"| {r['channel']} | {r['campaigns']} | — | — | {true} | — | — | — | — | {cost} | {cpa} |")
            continue
        print(
            f"| {r['channel']} | {r['campaigns']} | {r['n']} | {r['control_n']} | {r['true_lift']:.4f} | "
            f"{r['estimate']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['p_value']:.3f} | "
            f"{'yes' if r['covers'] else 'no'} | {cost} | {cpa} |"
        )
    print(f"written to {args.json}")


def lift_rows(card: dict[str, Any], truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Per channel with a simulated effect or a cost: the scorecard's lift and cost next to the generator's truth."""
    rows = {r["channel"]: r for r in card["channels"]}
    out = []
    for channel, sim in truth["channels"].items():
        row = rows.get(channel, {})
        lift = row.get("lift")
        out.append(
            {
                "channel": channel,
                "campaigns": sim["campaigns"],
                "true_lift": sim["true_lift"],
                "inert": sim["inert"],
                "estimate": lift["lift_abs"] if lift else None,
                "ci_low": lift["ci_low"] if lift else None,
                "ci_high": lift["ci_high"] if lift else None,
                "p_value": lift["p_value"] if lift else None,
                "n": lift["n"] if lift else None,
                "control_n": lift["control_n"] if lift else None,
                "covers": bool(lift and lift["ci_low"] <= sim["true_lift"] <= lift["ci_high"]),
                "cost": row.get("cost"),
                "cpa": row.get("cpa"),
            }
        )
    ads = rows.get("ads", {})
    out.append({"channel": "ads", "campaigns": 0, "true_lift": None, "inert": False, "estimate": None,
                "cost": ads.get("cost"), "cpa": ads.get("cpa")})  # fmt: skip
    return out


if __name__ == "__main__":
    main()
