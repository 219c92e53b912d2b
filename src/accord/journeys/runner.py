"""The journey runner: a background loop that advances due instances and delivers queued webhooks."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import httpx
import sqlalchemy as sa

from accord.journeys import tables as t
from accord.journeys.engine import Engine

log = logging.getLogger(__name__)
MAX_WEBHOOK_ATTEMPTS = 8


def deliver_webhooks(engine: Engine, client: httpx.Client, limit: int = 100) -> int:
    """POST due webhook actions (header `Idempotency-Key: instance:step`); retry with backoff; returns attempts."""
    now = engine.clock()
    act = t.journey_actions
    with engine.state.connect() as conn:
        rows = conn.execute(
            sa.select(act.c.id, act.c.instance_id, act.c.step_id, act.c.payload, act.c.attempts)
            .where(act.c.kind == "webhook", act.c.status == "pending", act.c.next_attempt_at <= now)
            .order_by(act.c.next_attempt_at)
            .limit(limit)
        ).all()
    for action_id, instance_id, step_id, payload_text, attempts in rows:
        payload = json.loads(payload_text)
        body = {"journey": payload["journey"], "profile_id": payload["profile_id"], **payload["body"]}
        error = None
        try:
            response = client.post(
                payload["url"], json=body, headers={"Idempotency-Key": f"{instance_id}:{step_id}"}, timeout=10
            )
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        tries = attempts + 1
        if error is None:
            values = {"status": "done", "attempts": tries, "last_error": None}
        elif tries >= MAX_WEBHOOK_ATTEMPTS or (error.startswith("HTTP 4") and not error.startswith("HTTP 429")):
            values = {"status": "failed", "attempts": tries, "last_error": error}
        else:
            values = {"attempts": tries, "last_error": error, "next_attempt_at": now + timedelta(seconds=2**tries)}
        with engine.state.begin() as conn:
            conn.execute(act.update().where(act.c.id == action_id).values(**values))
    return len(rows)


class Runner:
    """Runs due journey steps when woken (new entries, awaited events) and at least every INTERVAL seconds."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        engine.on_work = self.wake

    def wake(self) -> None:
        """There is new work."""
        self._wake.set()

    def start(self) -> None:
        """Start the loop in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="accord-journeys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                try:
                    self.engine.run_until_idle()
                    deliver_webhooks(self.engine, client)
                    self.last_error = None
                except Exception as exc:  # the batch rolled back; it is retried on the next round
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("journey batch failed; retrying")
                self._wake.wait(timeout=self.interval)
                self._wake.clear()
