"""A dry run of a journey for one profile: each decision the engine would take, and why. Nothing is stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from accord.journeys.conditions import holds, lookup
from accord.journeys.definition import Journey
from accord.journeys.engine import Engine, in_holdout


def simulate(engine: Engine, journey: Journey, profile_id: str, traits: dict[str, Any], now: datetime) -> list[str]:
    """The steps a new entry of PROFILE_ID would take (awaited events are assumed not to come: timeout paths)."""
    lines = [f"{now:%Y-%m-%d %H:%M} UTC  enter {journey.name!r} (trigger: {_trigger(journey)})"]
    held = in_holdout(journey.name, profile_id, journey.holdout_percent)
    if journey.holdout_percent:
        lines.append(
            f"  holdout {journey.holdout_percent:g}%: this profile is in the "
            + ("CONTROL group: no message will be sent, conversions still count" if held else "treated group")
        )
    if journey.exit_events:
        lines.append("  exits at once on: " + ", ".join(m.event for m in journey.exit_events))
    at = now
    step_id: str | None = journey.steps[0].id
    while step_id is not None:
        step = journey.step(step_id)
        following = journey.following(step.id)
        spec = step.spec
        if step.kind == "send":
            what = (
                f"send {spec['template']!r} ({spec['purpose']}) by the first reachable of {', '.join(spec['channels'])}"
            )
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] " + ("skip (control group): " if held else "") + what)
        elif step.kind == "wait":
            wake = engine.wake_time(spec, traits, at)
            zone = traits.get("timezone") or engine.default_timezone
            lines.append(
                f"{at:%Y-%m-%d %H:%M}  [{step.id}] wait until {wake:%Y-%m-%d %H:%M} UTC (profile time zone {zone})"
            )
            at = wake
        elif step.kind == "wait_until":
            timeout = at + timedelta(seconds=spec["timeout"])
            then = spec["then"] or following
            otherwise = spec["else"] or following
            lines.append(
                f"{at:%Y-%m-%d %H:%M}  [{step.id}] wait for {spec['event']!r} until {timeout:%Y-%m-%d %H:%M}: "
                f"if it comes -> {then or 'end'}; assumed not to come -> {otherwise or 'end'}"
            )
            at, following = timeout, otherwise
        elif step.kind == "branch":
            chosen = None
            for arm in spec["arms"]:
                tests = [(c, holds(c["field"], c["op"], c["value"], traits)) for c in arm["if"]]
                reasons = ", ".join(
                    f"{c['field']}={lookup(traits, c['field'])!r} {c['op']} {c['value']!r}: {'yes' if ok else 'no'}"
                    for c, ok in tests
                )
                lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] test arm -> {arm['next']}: {reasons}")
                if all(ok for _, ok in tests):
                    chosen = arm["next"]
                    break
            following = chosen or spec["else"] or following
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] go to {following or 'end'}")
        elif step.kind == "split":
            arms = ", ".join(f"{a['name']} {a['percent']:g}% -> {a['next']}" for a in spec["arms"])
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] random split per entry: {arms} (simulating the first)")
            following = spec["arms"][0]["next"]
        elif step.kind == "update_profile":
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] set traits {spec['traits']}")
        elif step.kind == "webhook":
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] POST {spec['url']}")
        elif step.kind == "task":
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] task for {spec['queue']}: {spec['title']}")
        elif step.kind == "goal":
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] goal checkpoint {spec['label']}")
        else:
            lines.append(f"{at:%Y-%m-%d %H:%M}  [{step.id}] exit")
            return lines
        step_id = following
    lines.append(f"{at:%Y-%m-%d %H:%M}  completed")
    return lines


def _trigger(journey: Journey) -> str:
    if journey.trigger_event:
        return f"event {journey.trigger_event.event}"
    return ", ".join(f"{k} {v}" for k, v in journey.trigger.items())
