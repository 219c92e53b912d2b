"""Crash and concurrency: a SIGKILLed worker loses and repeats no step; two PostgreSQL workers never duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.journeys import service as journeys
from accord.journeys import tables as t
from accord.platform import Platform
from tests.journeys.worker import SENDS

JOURNEY = """
name: three-steps
trigger: {api: true}
steps:
  - id: first
    send: {template: one, channels: [email]}
  - id: pause
    wait: 1h
  - id: second
    send: {template: two, channels: [sms]}
  - id: split
    split: [{percent: 50, next: third}, {percent: 50, next: third-b}]
  - id: third
    send: {template: three, channels: [push]}
    next: end
  - id: third-b
    send: {template: three-b, channels: [push]}
  - id: end
    exit: true
"""
ROOT = Path(__file__).resolve().parents[2]


def start_worker(url: str, name: str, batch: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.journeys.worker", url, name, str(batch)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def enter(platform: Platform, n: int) -> None:
    SENDS.create(platform.state)
    journeys.apply(platform.state, JOURNEY, activate=True)
    journeys.trigger(platform.journeys, "three-steps", [f"P{i:06d}" for i in range(n)])


def check_exactly_once(platform: Platform, n: int) -> None:
    with platform.state.connect() as conn:
        per_key = conn.execute(
            sa.select(SENDS.c.idempotency_key, sa.func.count()).group_by(SENDS.c.idempotency_key)
        ).all()
        finished = conn.execute(
            sa.select(sa.func.count()).select_from(t.journey_instances).where(t.journey_instances.c.state == "exited")
        ).scalar_one()
        transitions = conn.execute(sa.select(sa.func.count()).select_from(t.journey_transitions)).scalar_one()
    assert finished == n
    assert len(per_key) == 3 * n and {count for _, count in per_key} == {1}  # each send exactly once
    assert transitions == 6 * n  # first, pause, second, split, third|third-b, end


def test_a_worker_killed_mid_journey_resumes_without_losing_or_repeating_a_step(
    sqlite_platform: Platform,
) -> None:
    platform, n = sqlite_platform, 10_000
    enter(platform, n)
    url = platform.settings.state_url
    kills = 0
    for _ in range(3):  # kill it a few times while it works, then let the last one finish
        proc = start_worker(url, f"w{kills}", 500)
        time.sleep(1.5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    start_worker(url, "final", 500).wait(timeout=300)
    assert kills >= 1
    check_exactly_once(platform, n)


@pytest.mark.postgres
def test_two_workers_on_postgresql_share_the_work_without_duplicates(pg_url: str, tmp_path: Path) -> None:
    from accord.platform import open_platform
    from tests.conftest import make_settings

    platform = open_platform(make_settings(tmp_path / "home", pg_url))
    try:
        n = 3000
        enter(platform, n)
        workers = [start_worker(pg_url, f"w{i}", 100) for i in range(2)]
        for w in workers:
            assert w.wait(timeout=300) == 0
        check_exactly_once(platform, n)
        with platform.state.connect() as conn:
            by_worker = dict(conn.execute(sa.select(SENDS.c.worker, sa.func.count()).group_by(SENDS.c.worker)).all())
        assert len(by_worker) == 2, by_worker  # both did part of the work
    finally:
        platform.close()
