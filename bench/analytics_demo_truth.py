"""How close each attribution model comes to the channel effects the demo generator simulated.

    .venv/bin/python bench/analytics_demo_truth.py [--customers 3000] [--window 30d] [--json FILE]

The generator records, per order, which channel's click started the session that ended in it (email, sms, push,
ads; organic web and app sessions; store receipts): ``orders_caused_by_*`` in its manifest counts. Every order
would not have happened without that session, so these counts are the true incremental orders per channel. The
script generates the demo, loads it into a temporary ACCORD_HOME, runs every model on the event store and prints
each model's share of conversions per channel next to the true share, with the total variation distance
(half the sum of absolute share differences: 0 = exact, 1 = disjoint).
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
    parser.add_argument("--json", type=Path, default=Path("bench/results/analytics_demo_truth.json"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="accord-truth-"))
    os.environ["ACCORD_HOME"] = str(home)
    from accord.analytics import service
    from accord.analytics.store import parse_window
    from accord.cli.demo import generate_files, load_files
    from accord.config import load_settings
    from accord.platform import open_platform

    started = time.perf_counter()
    counts = generate_files(args.customers, args.days, args.seed, home / "demo-data")
    load_files(home / "demo-data")
    truth = {k.removeprefix("orders_caused_by_"): v for k, v in counts.items() if k.startswith("orders_caused_by_")}
    platform = open_platform(load_settings(), read_only_events=True)
    try:
        doc = service.attribution_from_store(platform.events, "all", parse_window(args.window))
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
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
