"""SIGKILL the sender in the middle of a broadcast: after a restart every recipient has exactly one message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from accord.messaging import tables as t
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.policy import PolicyConfig
from accord.platform import Platform
from tests.messaging.helpers import ScriptedProvider

N = 240


def test_sigkill_mid_broadcast_then_restart_sends_each_message_exactly_once(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    messaging = platform.messaging
    messaging.policy = PolicyConfig(quiet_hours=None)
    messaging.save_template(
        {"name": "flash", "purpose": "order_updates", "locales": {"en": {"sms": {"text": "Flash"}}}}
    )
    from accord.collect.emit import emit

    with platform.state.begin() as conn:
        emit(
            conn,
            platform.journal,
            "crm",
            "other",
            [{"type": "identify", "userId": f"c{i}", "traits": {"phone": f"+4860200{i:04d}"}} for i in range(N)],
        )
    assert platform.processor.drain()
    home = platform.settings.home
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_MESSAGING_POLICY": '{"quiet_hours": null}'}
    accord = str(Path(sys.executable).parent / "accord")
    with ScriptedProvider(delay=0.01) as provider:
        messaging.add_provider("gw", "sms", "http", {"url": provider.url})
        ids = [f"user_id:c{i}" for i in range(N)]
        planned = create_broadcast(messaging, "flash", "flash", {"identifiers": ids}, channels=["sms"])
        assert planned["planned"] == {"queued": N}
        run = [accord, "outbox", "run", "--batch", "10", "--lease", "1", "--backoff", "0.05"]
        first = subprocess.Popen(run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(provider.requests) < N // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        before = len(provider.accepted)
        assert 0 < before < N, "the sender was killed in the middle of the broadcast"
        done = subprocess.run([*run, "--until-idle"], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        with platform.state.connect() as conn:
            rows = conn.execute(sa.select(t.deliveries.c.id, t.deliveries.c.status, t.deliveries.c.profile_id)).all()
        assert len(rows) == N and {r.status for r in rows} == {"sent"}
        assert len({r.profile_id for r in rows}) == N
        # every recipient's message reached the provider, once per idempotency key; resends after the crash
        # carried the same key and were deduplicated by it
        assert set(provider.accepted) == {r.id for r in rows}
        assert len(provider.requests) >= N
        print(f"accepted before kill {before}, requests {len(provider.requests)}, unique keys {len(provider.accepted)}")
