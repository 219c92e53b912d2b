"""The demo retailer's loyalty program and rewards catalogue (what `accord demo` sets up; a starting point to edit)."""

from __future__ import annotations

from typing import Any

from accord.loyalty.service import LoyaltyService

EXAMPLE_PROGRAM: dict[str, Any] = {
    "points_per_unit": {"PLN": 1.0, "DKK": 0.6, "RUB": 0.04, "KZT": 0.008, "CNY": 0.5, "default": 1.0},
    "channel_multipliers": {"app": 2.0},
    "category_multipliers": {},
    "tier_multipliers": {"silver": 1.25, "gold": 1.5},
    "tiers": [{"name": "member", "threshold": 0}, {"name": "silver", "threshold": 500},
              {"name": "gold", "threshold": 2000}],
    "expiry_days": 365,
}  # fmt: skip
EXAMPLE_REWARDS: tuple[tuple[str, int, int | None], ...] = (
    ("Coffee in any store", 150, None),
    ("10% off the next order", 400, None),
    ("Canvas tote bag", 800, 200),
    ("Early access to the spring collection", 2000, 50),
)


def apply_example(loyalty: LoyaltyService) -> dict[str, Any]:
    """Configure the example program unless one is configured, and add the example rewards to an empty catalogue.
    Orders loaded before the program earn nothing until the history is backfilled (`accord.loyalty.history`,
    which `accord demo` runs next)."""
    configured = not loyalty.enabled()
    if configured:
        loyalty.configure(EXAMPLE_PROGRAM)
    added = 0
    if not loyalty.rewards():
        for name, cost, stock in EXAMPLE_REWARDS:
            loyalty.add_reward(name, cost, stock)
            added += 1
    return {"program_configured": configured, "rewards_added": added}
