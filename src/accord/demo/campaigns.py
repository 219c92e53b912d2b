"""Campaign holdouts, message costs and ad spend of the demo retailer, with the true incremental effect per channel.

Every email, SMS and push campaign the generator simulates targets some customers; a random ``holdout_percent``
share of them is held out and gets no message (drawn from a random stream of its own, so the rest of the
simulation draws exactly what it drew before). A message's only effect is the visit its click starts, and a visit
can end in an order; the held-out customers never click, so the effect applies to those who got the message only.

The truth, per channel, is the share of treated targets whose purchase in the ``lift_window_days`` after the send
happened only because of the message: an order of the visit the message started, and no other purchase of that
customer (online or in a store) in the window. That is what a holdout test measures as the difference of
conversion rates, treated minus holdout (intention to treat). Channels in ``inert_channels`` are delivered but
never opened or clicked: their true effect is zero.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from random import Random

DAY_MS = 86_400_000
COST_CURRENCY = "PLN"
# What the retailer pays per delivered message (minor units of COST_CURRENCY): an SMS gateway, an ESP, push is free.
MESSAGE_COST_MINOR = {"email": 1, "sms": 20, "push": 0}
# What an ad view (per impression, CPM 10 PLN) and an ad click (CPC 1.50 PLN) cost.
AD_COST_MINOR = {"Ad Viewed": 1, "Ad Clicked": 150}
HOLDOUTS_HEADER = ("campaign", "channel", "sent_at", "user_id", "group")
SPEND_HEADER = ("date", "channel", "campaign", "cost", "currency")


def _row_order(row: tuple[str, str, str, str, str]) -> tuple[str, str, str]:
    return row[2], row[0], row[3]


class CampaignLedger:
    """Who each campaign targeted and held out, what was caused, what it cost; written out at the end."""

    def __init__(self, seed: int, holdout_percent: float, inert: tuple[str, ...], window_days: int) -> None:
        self.rng = Random(seed * 7919 + 104_729)  # own stream: the main simulation is unchanged by holdouts
        self.share = holdout_percent / 100.0
        self.holdout_percent = holdout_percent
        self.inert = frozenset(inert)
        self.window_days = window_days
        self.window_ms = window_days * DAY_MS
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.campaigns: dict[str, set[str]] = defaultdict(set)
        self.spend: dict[tuple[str, str], int] = defaultdict(int)

    def assign(self, channel: str, campaign: str, sent_at: str, user_id: str) -> bool:
        """Record a target of CAMPAIGN; True when the target is held out (gets no message)."""
        held = self.share > 0 and self.rng.random() < self.share
        self.rows.append((campaign, channel, sent_at, user_id, "holdout" if held else "treated"))
        self.campaigns[channel].add(campaign)
        stats = self.stats[channel]
        stats["targeted"] += 1
        stats["held_out" if held else "treated"] += 1
        if not held:
            stats["cost_minor"] += MESSAGE_COST_MINOR.get(channel, 0)
        return held

    def settle(self, treated: list[tuple[str, str, int]], purchases: list[tuple[int, str | None]]) -> None:
        """Count, for one customer, the treated (channel, campaign, send ms) whose window holds an order the
        campaign caused and no other purchase (PURCHASES: (ms, causing campaign or None))."""
        for channel, campaign, sent in treated:
            end = sent + self.window_ms
            inside = [c for ms, c in purchases if sent <= ms < end]
            if inside and all(c == campaign for c in inside):
                self.stats[channel]["caused"] += 1

    def ad(self, day: str, campaign: str, event: str) -> None:
        """Add what an ad view or click cost to its network campaign's spend of the day."""
        self.spend[(day, campaign)] += AD_COST_MINOR.get(event, 0)

    def truth(self) -> dict[str, object]:
        """Per channel: targets, holdouts, the conversions the messages caused and the true lift; the costs."""
        channels = {}
        for channel in sorted(self.stats):
            s = self.stats[channel]
            treated = s["treated"]
            channels[channel] = {
                "campaigns": len(self.campaigns[channel]),
                "targeted": s["targeted"],
                "held_out": s["held_out"],
                "treated": treated,
                "caused_conversions": s["caused"],
                "true_lift": s["caused"] / treated if treated else 0.0,
                "inert": channel in self.inert,
                "message_cost_minor": MESSAGE_COST_MINOR.get(channel, 0),
                "cost_minor": s["cost_minor"],
            }
        return {
            "holdout_percent": self.holdout_percent,
            "window_days": self.window_days,
            "currency": COST_CURRENCY,
            "definition": "true_lift = treated targets whose only purchase in the window after the send was an order "
            "of the visit the message started, divided by treated targets (the conversion-rate difference a holdout "
            "test estimates)",
            "channels": channels,
            "ad_spend_minor": sum(self.spend.values()),
        }

    def write(self, out_dir: Path, counts: dict[str, int]) -> None:
        """holdouts.csv, channel_truth.json and ad_spend.csv into OUT_DIR; targets and holdouts into COUNTS."""
        with open(out_dir / "holdouts.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(HOLDOUTS_HEADER)
            rows = sorted(self.rows, key=_row_order)
            w.writerows(rows)
        with open(out_dir / "channel_truth.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(self.truth(), fh, indent=2)
            fh.write("\n")
        with open(out_dir / "ad_spend.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(SPEND_HEADER)
            for (day, campaign), minor in sorted(self.spend.items()):
                w.writerow((day, "ads", campaign, f"{minor // 100}.{minor % 100:02d}", COST_CURRENCY))
        counts["campaign_targets"] = len(self.rows)
        counts["campaign_holdouts"] = sum(s["held_out"] for s in self.stats.values())
