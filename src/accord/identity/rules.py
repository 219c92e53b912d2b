"""Identity rules: identifier types, their priority, per-profile limits and blocked values."""

from __future__ import annotations

from dataclasses import dataclass, field

CORE_TYPES: tuple[str, ...] = (
    "user_id",
    "email",
    "phone",
    "loyalty_card",
    "customer_id",
    "device_id",
    "push_token",
    "anonymous_id",
)

# Segment-like defaults: a profile holds one user id; a few emails, phones and cards;
# many anonymous ids and devices.
DEFAULT_LIMITS: dict[str, int] = {
    "user_id": 1,
    "email": 5,
    "phone": 5,
    "loyalty_card": 5,
    "customer_id": 5,
    "device_id": 50,
    "push_token": 50,
    "anonymous_id": 500,
}

DEFAULT_BLOCKED: frozenset[str] = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "unknown",
        "n/a",
        "na",
        "-1",
        "0",
        "test",
        "[object object]",
    }
)


@dataclass(frozen=True)
class IdentityRules:
    """The configurable rules of the identity graph."""

    priority: tuple[str, ...] = CORE_TYPES
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    blocked: frozenset[str] = DEFAULT_BLOCKED
    default_region: str = "PL"
    default_limit: int = 5
    _ranks: dict[str, int] = field(init=False, repr=False, compare=False)  # rank() of the listed types
    _other_rank: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ranks: dict[str, int] = {}
        for i, id_type in enumerate(self.priority):
            ranks.setdefault(id_type, i)  # the first place, as tuple.index gives
        other = ranks["anonymous_id"] - 1 if "anonymous_id" in ranks else len(self.priority)
        object.__setattr__(self, "_ranks", ranks)
        object.__setattr__(self, "_other_rank", other)

    def rank(self, id_type: str) -> int:
        """Lower is stronger; types not in the priority list rank after known ones, before anonymous ids."""
        return self._ranks.get(id_type, self._other_rank)

    def key_order(self, key: str) -> tuple[int, str]:
        """Sort key of an identifier key 'type:value': by its type's rank, then by the key."""
        return self._ranks.get(key.partition(":")[0], self._other_rank), key

    def limit(self, id_type: str) -> int:
        """How many identifiers of this type one profile may hold."""
        return self.limits.get(id_type, self.default_limit)

    def is_blocked(self, value: str) -> bool:
        """Placeholder values that must never link people together."""
        folded = value.strip().lower()
        if folded in self.blocked:
            return True
        return bool(folded) and not folded.strip("0-")  # only zeros and dashes

    @classmethod
    def from_settings(
        cls, priority: tuple[str, ...], limits: dict[str, int], blocked: tuple[str, ...], default_region: str
    ) -> IdentityRules:
        """Rules with the deployment's overrides applied over the defaults."""
        merged = dict(DEFAULT_LIMITS)
        merged.update(limits)
        prio = priority or CORE_TYPES
        if "anonymous_id" not in prio:
            prio = (*prio, "anonymous_id")
        return cls(
            priority=prio,
            limits=merged,
            blocked=DEFAULT_BLOCKED | {b.lower() for b in blocked},
            default_region=default_region,
        )
