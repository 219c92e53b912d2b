"""The loyalty program: earn rules (points per currency unit; multipliers by channel, category, tier), tiers, expiry."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from babel.numbers import get_currency_precision

DEFAULT_CONFIG: dict[str, Any] = {
    "points_per_unit": {"default": 1.0},
    "channel_multipliers": {},
    "category_multipliers": {},
    "tier_multipliers": {},
    "tiers": [{"name": "member", "threshold": 0}],
    "expiry_days": 365,
}


class ProgramError(ValueError):
    """A program configuration that cannot work."""


@dataclass(frozen=True)
class Program:
    """Validated program configuration."""

    points_per_unit: Mapping[str, float] = field(default_factory=lambda: {"default": 1.0})
    channel_multipliers: Mapping[str, float] = field(default_factory=dict)
    category_multipliers: Mapping[str, float] = field(default_factory=dict)
    tier_multipliers: Mapping[str, float] = field(default_factory=dict)
    tiers: Sequence[tuple[str, int]] = (("member", 0),)
    expiry_days: int | None = 365

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Program:
        """Check and build a program from its JSON form (missing keys take the defaults)."""
        merged = {**DEFAULT_CONFIG, **config}
        unknown = set(config) - set(DEFAULT_CONFIG)
        if unknown:
            raise ProgramError(f"unknown program settings: {', '.join(sorted(unknown))}")

        def rates(name: str) -> dict[str, float]:
            value = merged[name]
            if not isinstance(value, Mapping) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value.values()
            ):
                raise ProgramError(f"{name} must map names to non-negative numbers")
            return {str(k).lower() if name != "points_per_unit" else str(k): float(v) for k, v in value.items()}

        tiers_raw = merged["tiers"]
        if not isinstance(tiers_raw, list) or not tiers_raw:
            raise ProgramError("tiers must be a non-empty list of {name, threshold}")
        tiers: list[tuple[str, int]] = []
        for tier in tiers_raw:
            if not isinstance(tier, Mapping) or not isinstance(tier.get("name"), str):
                raise ProgramError("each tier needs a name and a threshold")
            threshold = tier.get("threshold")
            if not isinstance(threshold, int) or threshold < 0:
                raise ProgramError(f"tier {tier['name']}: threshold must be a non-negative integer of points")
            tiers.append((tier["name"], threshold))
        tiers.sort(key=lambda x: x[1])
        if tiers[0][1] != 0:
            raise ProgramError("the lowest tier must have threshold 0")
        expiry = merged["expiry_days"]
        if expiry is not None and (not isinstance(expiry, int) or expiry < 1):
            raise ProgramError("expiry_days must be a positive integer or null (never)")
        ppu = rates("points_per_unit")
        return cls(
            points_per_unit={k.upper() if k != "default" else k: v for k, v in ppu.items()},
            channel_multipliers=rates("channel_multipliers"),
            category_multipliers=rates("category_multipliers"),
            tier_multipliers=rates("tier_multipliers"),
            tiers=tuple(tiers),
            expiry_days=expiry,
        )

    def as_config(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "points_per_unit": dict(self.points_per_unit),
            "channel_multipliers": dict(self.channel_multipliers),
            "category_multipliers": dict(self.category_multipliers),
            "tier_multipliers": dict(self.tier_multipliers),
            "tiers": [{"name": n, "threshold": th} for n, th in self.tiers],
            "expiry_days": self.expiry_days,
        }

    def tier_for(self, lifetime_points: int) -> str:
        """The highest tier whose threshold the lifetime points reach."""
        name = self.tiers[0][0]
        for tier, threshold in self.tiers:
            if lifetime_points >= threshold:
                name = tier
        return name

    def points_for(
        self,
        lines: Sequence[tuple[int, str | None]],
        currency: str,
        channel: str | None,
        tier: str | None,
    ) -> tuple[int, dict[str, Any]]:
        """Points earned for LINES (amount in minor units, category) paid in CURRENCY, and how they were counted."""
        currency = currency.upper()
        rate = self.points_per_unit.get(currency, self.points_per_unit.get("default", 0.0))
        precision = get_currency_precision(currency)
        base = 0.0
        for amount_minor, category in lines:
            multiplier = self.category_multipliers.get((category or "").lower(), 1.0) if category else 1.0
            base += amount_minor / 10**precision * rate * multiplier
        channel_mult = self.channel_multipliers.get((channel or "").lower(), 1.0)
        tier_mult = self.tier_multipliers.get((tier or "").lower(), 1.0)
        points = math.floor(base * channel_mult * tier_mult + 1e-9)
        return max(points, 0), {
            "rate": rate,
            "currency": currency,
            "channel_multiplier": channel_mult,
            "tier_multiplier": tier_mult,
            "tier": tier,
        }
