"""Delivery policy: consent, suppression (hold-outs, already purchased), control group, channel choice and fallback,
caps, quiet hours — pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from accord.consent.service import ConsentRecord, Purpose, channel_identifiers, decide_contact, reachable

MARKETING = "marketing"
TRANSACTIONAL = "transactional"
ONE_TO_ONE = "one_to_one"
KINDS = (MARKETING, TRANSACTIONAL, ONE_TO_ONE)

PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
DEFAULT_CHANNELS = ("push", "in_app", "sms", "email")
HOLD_OUT_REASONS = ("sales_conversation", "support_case", "complained", "erased")
ALREADY_PURCHASED = "already_purchased"  # the reason of a promotion not sent to someone who bought the item


class PolicyError(ValueError):
    """A policy setting that makes no sense (unknown period, bad time zone, bad quiet hours)."""


@dataclass(frozen=True)
class CapRule:
    """At most MAX marketing messages per PERIOD (rolling), optionally only on CHANNEL or only with TAG."""

    max: int
    period: str = "day"
    channel: str | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise PolicyError(f"unknown cap period {self.period!r}; known: {', '.join(PERIODS)}")
        if self.max < 0:
            raise PolicyError("a cap must be >= 0")

    @property
    def window(self) -> timedelta:
        """Length of the rolling window."""
        return PERIODS[self.period]

    def label(self) -> str:
        """E.g. 'cap 3/week on sms tag spring'."""
        scope = (f" on {self.channel}" if self.channel else "") + (f" tag {self.tag}" if self.tag else "")
        return f"cap {self.max}/{self.period}{scope}"

    def applies(self, channel: str, tags: Sequence[str]) -> bool:
        """Whether a message on CHANNEL with TAGS counts against this rule."""
        return (self.channel is None or self.channel == channel) and (self.tag is None or self.tag in tags)


@dataclass(frozen=True)
class QuietHours:
    """No marketing messages between START and END recipient-local time; DEFER to END or DROP."""

    start: time = time(21, 0)
    end: time = time(9, 0)
    action: str = "defer"

    def __post_init__(self) -> None:
        if self.action not in ("defer", "drop"):
            raise PolicyError("quiet hours action must be defer or drop")

    def contains(self, local: time) -> bool:
        """Whether local time of day LOCAL is inside the quiet window (which may span midnight)."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_open(self, local: datetime) -> datetime:
        """The first moment at or after LOCAL (aware, local zone) outside the quiet window."""
        candidate = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate += timedelta(days=1)
        return candidate


@dataclass
class PolicyConfig:
    """Workspace-wide delivery policy, applied to every marketing message from any source."""

    caps: list[CapRule] = field(default_factory=list)
    quiet_hours: QuietHours | None = field(default_factory=QuietHours)
    workspace_timezone: str = "UTC"
    store_timezones: dict[str, str] = field(default_factory=dict)
    control_group_percent: float = 0.0
    control_group_salt: str = "accord-control"
    default_channels: tuple[str, ...] = DEFAULT_CHANNELS

    def __post_init__(self) -> None:
        _zone(self.workspace_timezone, strict=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """From JSON settings: {"caps": [{"max":1,"period":"day"}], "quiet_hours": {"start":"21:00",...}, ...}."""
        quiet = data.get("quiet_hours", {})
        return cls(
            caps=[CapRule(**c) for c in data.get("caps", [])],
            quiet_hours=None
            if quiet is None
            else QuietHours(
                time.fromisoformat(quiet.get("start", "21:00")),
                time.fromisoformat(quiet.get("end", "09:00")),
                quiet.get("action", "defer"),
            ),
            workspace_timezone=data.get("workspace_timezone", "UTC"),
            store_timezones=dict(data.get("store_timezones", {})),
            control_group_percent=float(data.get("control_group_percent", 0.0)),
            default_channels=tuple(data.get("default_channels", DEFAULT_CHANNELS)),
        )


@dataclass(frozen=True)
class Sent:
    """A marketing message already planned for the person (counts against caps at its due time)."""

    due_at: datetime
    channel: str
    tags: tuple[str, ...]


@dataclass
class Decision:
    """What happens to one message for one person, and why."""

    status: str  # queued | dropped | suppressed | held_out
    reason: str
    channels: list[str] = field(default_factory=list)  # chosen first, then fallbacks
    due_at: datetime | None = None
    timezone: str | None = None


_ZONES: dict[str, ZoneInfo | None] = {}  # recipients share few zones: looked up (or found unknown) once


def _zone(name: str | None, strict: bool = False) -> ZoneInfo | None:
    if not name or not isinstance(name, str):
        return None
    found = _ZONES.get(name, False)
    if found is not False and not (strict and found is None):
        return found  # type: ignore[return-value]
    try:
        zone: ZoneInfo | None = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if strict:
            raise PolicyError(f"unknown time zone {name!r}") from exc
        zone = None
    if len(_ZONES) < 4096:
        _ZONES[name] = zone
    return zone


def local_zone(traits: Mapping[str, Any], config: PolicyConfig) -> ZoneInfo:
    """Recipient's zone: profile `timezone` trait, else their home store's zone, else the workspace's."""
    zone = _zone(traits.get("timezone"))
    if zone is None:
        store = traits.get("home_store") or traits.get("home_store_id")
        zone = _zone(config.store_timezones.get(str(store))) if store is not None else None
        zone = zone or _zone(traits.get("home_store_timezone"))
    return zone or ZoneInfo(config.workspace_timezone)


def in_control_group(profile_id: str, config: PolicyConfig) -> bool:
    """Deterministic global control group: the same people every time, CONTROL_GROUP_PERCENT of them."""
    if config.control_group_percent <= 0:
        return False
    digest = hashlib.sha256(f"{config.control_group_salt}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < config.control_group_percent


def decide(
    *,
    profile_id: str,
    identifiers: Mapping[str, Sequence[str]],
    traits: Mapping[str, Any],
    purpose: Purpose,
    kind: str,
    channels: Sequence[str],
    tags: Sequence[str],
    consent: Mapping[tuple[str, str, str], ConsentRecord],
    history: Sequence[Sent],
    suppressed: Sequence[str],
    due_at: datetime,
    config: PolicyConfig,
    purchased: str | None = None,
) -> Decision:
    """Decide one message. CONSENT maps (identifier key, purpose, channel) to the record; HISTORY is the person's
    planned marketing messages in the longest cap window; SUPPRESSED lists their active hold-out reasons;
    PURCHASED names the promoted item they already bought (e.g. 'SKU-1 within 90d'), if they did."""
    marketing = kind == MARKETING and not purpose.transactional
    if marketing and in_control_group(profile_id, config):
        return Decision("held_out", "global control group")
    if marketing:
        active = [r for r in suppressed if r in HOLD_OUT_REASONS]
        if active:
            return Decision("suppressed", "suppressed: " + ", ".join(active))
        if purchased:
            return Decision("suppressed", f"{ALREADY_PURCHASED}: {purchased}")
    zone = local_zone(traits, config)
    if marketing and config.quiet_hours is not None:
        quiet, due_at = _quiet(config.quiet_hours, due_at, zone)
        if quiet is not None:
            return Decision("dropped", quiet, timezone=zone.key)
    candidates: list[str] = []
    refusals: list[str] = []
    can_reach = set(reachable(identifiers, channels))
    for channel in channels:
        if channel not in can_reach:
            refusals.append(f"unreachable:{channel}")
            continue
        keys = channel_identifiers(identifiers, channel)
        ok, why = decide_contact(purpose, channel, (consent.get((k, purpose.name, channel)) for k in keys), due_at)
        if not ok:
            refusals.append(why)
            continue
        if marketing:
            capped = _capped(channel, tags, history, due_at, config.caps)
            if capped is not None:
                if capped.channel is None:
                    return Decision("dropped", f"frequency {capped.label()} reached", timezone=zone.key)
                refusals.append(f"{capped.label()} reached")
                continue
        candidates.append(channel)
    if not candidates:
        return Decision("dropped", "no channel: " + "; ".join(refusals) if refusals else "no channel given")
    note = f"{candidates[0]}" + (f" (fallback {', '.join(candidates[1:])})" if candidates[1:] else "")
    if refusals:
        note += "; skipped " + "; ".join(refusals)
    note += _due_note(due_at, zone)
    return Decision("queued", note, candidates, due_at, zone.key)


@lru_cache(maxsize=8192)
def _quiet(quiet: QuietHours, due_at: datetime, zone: ZoneInfo) -> tuple[str | None, datetime]:
    """(reason to drop, or None; the due time moved out of the quiet window). Pure, and a broadcast's recipients
    share a due time and a few zones: computed once per (due time, zone)."""
    local = due_at.astimezone(zone)
    if not quiet.contains(local.time()):
        return None, due_at
    if quiet.action == "drop":
        return f"quiet hours at {local:%H:%M} {zone.key}", due_at
    return None, quiet.next_open(local).astimezone(due_at.tzinfo)


@lru_cache(maxsize=8192)
def _due_note(due_at: datetime, zone: ZoneInfo) -> str:
    return f"; due {due_at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


def _capped(
    channel: str, tags: Sequence[str], history: Sequence[Sent], due_at: datetime, caps: Sequence[CapRule]
) -> CapRule | None:
    for rule in caps:
        if not rule.applies(channel, tags):
            continue
        start, end = due_at - rule.window, due_at + rule.window
        count = sum(1 for s in history if start < s.due_at < end and rule.applies(s.channel, s.tags))
        if count >= rule.max:
            return rule
    return None
