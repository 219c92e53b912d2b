"""What the analytics faces (API, CLI, web) gather from other domains: holdout tests of messaging and journeys,
broadcast groups, the global control group (analytics itself reads only the event store and its own tables)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from accord.analytics.holdouts import HoldoutTest
from accord.platform import Platform


def _send_channels(node: Any, out: list[list[str]]) -> None:
    """Channel lists of every send step in a journey definition (["best"] when a step names none)."""
    if isinstance(node, dict):
        if "send" in node:
            body = node["send"]
            channels = body.get("channels") if isinstance(body, dict) else None
            out.append([str(c) for c in (channels or node.get("channels") or ["best"])])
        elif isinstance(node.get("template"), str) and isinstance(node.get("channels"), list):
            out.append([str(c) for c in node["channels"]])
        for value in node.values():
            if isinstance(value, dict | list):
                _send_channels(value, out)
    elif isinstance(node, list):
        for item in node:
            _send_channels(item, out)


def journey_channel(definition: Any) -> str | None:
    """The one channel every send step of a journey uses; None when steps use several, "best" or none."""
    found: list[list[str]] = []
    _send_channels(definition, found)
    names = {c for channels in found for c in channels}
    if len(names) != 1 or any(len(channels) != 1 for channels in found) or "best" in names:
        return None
    return names.pop()


def single_channel(channels: dict[str, int]) -> str | None:
    """The channel of a broadcast whose messages all went out on one channel."""
    return next(iter(channels)) if len(channels) == 1 else None


def holdout_tests(platform: Platform) -> Callable[[datetime, datetime], list[HoldoutTest]]:
    """Holdout tests for a scorecard period: broadcasts sent in it that held people out (measured on the event
    store after the send), and journeys with a holdout (their goal conversions as the journeys domain counts them,
    over the journey's whole life)."""

    def tests(start: datetime, end: datetime) -> list[HoldoutTest]:
        from accord.journeys import service as journeys
        from accord.messaging.broadcasts import holdout_broadcasts

        out = [
            HoldoutTest(
                "broadcast", b["name"], single_channel(b["channels"]), datetime.fromisoformat(b["sent_at"]), b["groups"]
            )
            for b in holdout_broadcasts(platform.state, start, end)
        ]
        for summary in journeys.list_journeys(platform.state):
            conversion = journeys.stats(platform.state, summary["name"])["conversion"]
            treated, held = conversion["journey"], conversion["holdout"]
            if not held["entered"]:
                continue
            definition = journeys.get(platform.state, summary["name"])["definition"]
            counts = (treated["entered"], treated["converted"], held["entered"], held["converted"])
            out.append(HoldoutTest("journey", summary["name"], journey_channel(definition), counts=counts))
        return out

    return tests


def broadcast_groups(platform: Platform, name: str) -> dict[str, Any]:
    """Messaging's groups of a broadcast (raises MessagingError when there is none of that name)."""
    from accord.messaging.broadcasts import broadcast_groups as groups

    return groups(platform.state, name)


def in_global_control(platform: Platform) -> Callable[[str], bool]:
    """Messaging's test of the global control group, with this installation's policy."""
    from accord.messaging.policy import in_control_group

    policy = platform.messaging.policy
    return lambda profile_id: in_control_group(profile_id, policy)
