"""Whole-log page figures: computed once, served while a refresh runs behind, recomputed only after new events."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from accord.web.figures import Figures


class Log:
    """Stands for an event store: only its cursors matter here."""

    def __init__(self) -> None:
        self.seq = 1

    def cursors(self) -> tuple[int, int]:
        return (self.seq, 0)


def test_first_figures_are_waited_for_then_served_until_new_events_and_staleness() -> None:
    figures, log, runs = Figures("test"), Log(), []

    def compute() -> dict[str, Any]:
        runs.append(log.seq)
        return {"seq": log.seq}

    assert figures.get(log, "k", compute, max_stale=0.0) == {"seq": 1}  # type: ignore[arg-type]
    assert figures.get(log, "k", compute, max_stale=0.0) == {"seq": 1}  # type: ignore[arg-type]
    assert runs == [1]  # no new events: not recomputed
    log.seq = 2
    assert figures.get(log, "k", compute, max_stale=3600.0) == {"seq": 1}  # type: ignore[arg-type]
    assert runs == [1]  # new events, but the figures are younger than the staleness bound
    assert figures.get(log, "k", compute, max_stale=0.0, refresh_wait=None) == {"seq": 2}  # type: ignore[arg-type]
    assert runs == [1, 2]


def test_stale_figures_serve_while_the_refresh_runs_and_a_first_request_may_not_wait() -> None:
    figures, log = Figures("test"), Log()
    release, started = threading.Event(), threading.Event()

    def slow() -> dict[str, Any]:
        started.set()
        assert release.wait(30)
        return {"seq": log.seq}

    assert figures.get(log, "k", slow, max_stale=0.0, first_wait=0) is None  # type: ignore[arg-type]
    assert started.wait(30)
    assert figures.get(log, "k", slow, max_stale=0.0, first_wait=0) is None  # type: ignore[arg-type]  # one run
    release.set()
    assert figures.get(log, "k", slow, max_stale=0.0, first_wait=None) == {"seq": 1}  # type: ignore[arg-type]
    release.clear()
    started.clear()
    log.seq = 2
    assert figures.get(log, "k", slow, max_stale=0.0) == {"seq": 1}  # type: ignore[arg-type]  # refresh behind
    assert started.wait(30)
    assert figures.get(log, "k", slow, max_stale=0.0) == {"seq": 1}  # type: ignore[arg-type]
    release.set()
    assert figures.get(log, "k", slow, max_stale=0.0, refresh_wait=None) == {"seq": 2}  # type: ignore[arg-type]


def test_a_failed_first_computation_raises_and_the_next_request_retries() -> None:
    figures, log, calls = Figures("test"), Log(), []

    def flaky() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("log unreadable")
        return {"ok": True}

    with pytest.raises(RuntimeError, match="log unreadable"):
        figures.get(log, "k", flaky, max_stale=0.0)  # type: ignore[arg-type]
    assert figures.get(log, "k", flaky, max_stale=0.0) == {"ok": True}  # type: ignore[arg-type]
    assert len(calls) == 2
