"""Processing slices by message count, and the worker's short write transactions (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.collect.intake import parse_request
from accord.collect.resolver import Resolver
from accord.collect.sources import add_source
from accord.collect.writer import JournalWriter
from accord.config import load_settings
from accord.identity import queries
from accord.platform import Platform, open_platform
from accord.storage import WriteTurn, create_state_engine, sync_state


def accept(platform: Platform, key: str, messages: list[dict], kind: str = "batch") -> None:
    body = json.dumps({"batch": messages} if kind == "batch" else messages[0]).encode()
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    intake = parse_request(body, None, auth, kind, platform.lookup_source, datetime.now(UTC))
    assert not intake.rejects, intake.rejects
    platform.journal.append(intake.journal_batch())


def _traffic(platform: Platform) -> None:
    """Single messages and batches, client retries across entries, and merges (anonymous visitors logging in)."""
    key = add_source(platform.state, "web", "web").write_key
    for i in range(12):
        accept(
            platform, key, [{"type": "track", "event": "Viewed", "anonymousId": f"a{i}", "messageId": f"t{i}"}], "track"
        )
    batch = [
        {"type": "identify", "userId": f"u{i % 4}", "anonymousId": f"a{i}", "messageId": f"b{i}"} for i in range(12)
    ]
    accept(platform, key, batch)
    accept(platform, key, batch[:5])  # a retry: nothing new
    accept(platform, key, [{"type": "track", "event": "Bought", "userId": "u1", "messageId": "t3"}], "track")  # dup id


def test_read_limits_a_slice_by_messages(platform: Platform) -> None:
    _traffic(platform)
    entries = platform.journal.read(0, 1000, max_messages=5)
    assert [len(e.items) for e in entries] == [1, 1, 1, 1, 1]
    first_batch = platform.journal.read(12, 1000, max_messages=5)
    assert [len(e.items) for e in first_batch] == [12]  # one request is never split
    assert len(platform.journal.read(0, 3, max_messages=100)) == 3  # the entry limit still holds
    assert platform.journal.read(platform.journal.last_seq(), 10, max_messages=5) == []


def test_small_slices_and_short_transactions_give_the_same_result(platform: Platform) -> None:
    _traffic(platform)
    platform.processor.resolver = Resolver(platform.journal, platform.graph, write_chunk=2)
    platform.processor.batch_messages = 4
    assert platform.processor.drain()
    assert platform.events.count_events() == 12 + 12  # 12 single visits, 12 identifies; retries deduplicated
    assert queries.count_profiles(platform.state) == 4  # every visitor logged in as one of four users
    rows = platform.events.query("SELECT count(DISTINCT profile_id) FROM events")
    assert rows[0][0] == 4


def test_a_crash_between_short_transactions_replays_without_loss(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    _traffic(platform)
    resolver = Resolver(platform.journal, platform.graph, write_chunk=3)
    platform.processor.resolver = resolver
    real_resolve = platform.graph.resolve
    calls = 0

    def crash_on_third(touches: list) -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("power cut")  # two chunks committed, the slice not loaded
        return real_resolve(touches)

    monkeypatch.setattr(platform.graph, "resolve", crash_on_third)
    with pytest.raises(RuntimeError):
        platform.processor.run_once()
    assert platform.events.count_events() == 0
    monkeypatch.setattr(platform.graph, "resolve", real_resolve)
    assert platform.processor.drain()
    assert platform.events.count_events() == 24
    assert queries.count_profiles(platform.state) == 4


def test_a_deferred_sync_engine_commits_without_fsync_and_syncs_on_request(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite"
    deferred, normal = create_state_engine(url, deferred_sync=True), create_state_engine(url)
    with deferred.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    sync_state(deferred)
    with normal.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: the intake's acknowledgements
        assert conn.execute(sa.text("SELECT a FROM t")).scalar() == 1
    deferred.dispose()
    normal.dispose()


def test_write_turns_exclude_each_other_and_a_waiter_goes_before_the_holder_comes_back(tmp_path: object) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path}/state.sqlite")
    mine, theirs = WriteTurn(engine), WriteTurn(engine)  # own open files each, like the intake and the worker
    order: list[str] = []
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        with theirs():
            order.append("theirs")

    with mine():
        order.append("mine 1")
        thread = threading.Thread(target=other)
        thread.start()
        waiting.wait()
        time.sleep(0.3)  # let it block on the turn while holding the turnstile
        assert order == ["mine 1"]  # excluded while the turn is held
    with mine():  # coming straight back: waits behind the one that was waiting
        order.append("mine 2")
    thread.join()
    assert order == ["mine 1", "theirs", "mine 2"]
    mine.close()
    theirs.close()
    engine.dispose()


def _hand_over(worker: WriteTurn, intake: WriteTurn, hold: threading.Event) -> threading.Thread:
    """The worker holds its turn 0.05 s while the intake queues for it; the intake, once it has the turn, keeps
    it until HOLD is set. Returns the intake's thread (started) after the worker's turn and pause."""
    from accord.storage import state as state_module

    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        with intake():
            hold.wait(10)

    thread = threading.Thread(target=other)
    with worker():
        thread.start()
        waiting.wait()
        deadline = time.monotonic() + 5
        assert worker._fds is not None
        while not state_module._is_locked(worker._fds[0]) and time.monotonic() < deadline:
            pass  # until the intake holds the turnstile, queued for the turn
        held_from = time.monotonic()
        while time.monotonic() - held_from < 0.05:
            pass
    return thread


def test_a_turn_with_a_share_pauses_after_handing_over_only_while_the_other_side_wants_the_lock(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody waited: no pause. The intake waited and then kept the lock (a burst): the worker pauses up to
    (1 - share) / share times the time it held the lock. The intake waited, took its turn and left: the worker
    pauses until the lock has stood free a moment, not the whole budget (a trickle of requests must not slow
    processing to its share)."""
    from accord.storage import state as state_module

    engine = create_state_engine(f"sqlite:///{tmp_path}/state.sqlite")
    worker, intake = WriteTurn(engine, share=0.25), WriteTurn(engine)
    pauses: list[float] = []
    real_sleep = time.sleep
    intake_thread: list[threading.Thread] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if released.is_set():
            intake_thread[0].join()  # the intake took its turn and gave it back
        real_sleep(seconds)

    monkeypatch.setattr(state_module.time, "sleep", sleep)
    released = threading.Event()
    with worker():
        pass
    assert pauses == []

    hold = threading.Event()
    burst = _hand_over(worker, intake, hold)  # the intake keeps its turn all through the worker's pause
    hold.set()
    burst.join()
    # polled while the intake kept the lock, until the budget ((1 - 0.25) / 0.25 = 3 times the 0.05 s held) ran out
    assert len(pauses) > 1 and max(pauses) <= state_module.YIELD_POLL
    assert all(p <= state_module.YIELD_POLL for p in pauses)

    pauses.clear()
    released.set()  # from now on the intake leaves its turn at once

    original_thread = threading.Thread

    def recording_thread(*args: object, **kwargs: object) -> threading.Thread:
        thread = original_thread(*args, **kwargs)  # type: ignore[arg-type]
        intake_thread.append(thread)
        return thread

    monkeypatch.setattr(threading, "Thread", recording_thread)
    _hand_over(worker, intake, released).join()
    # the lock stood free for YIELD_IDLE after the intake left: the worker went on well before its budget
    assert len(pauses) <= state_module.YIELD_IDLE / state_module.YIELD_POLL + 2
    assert max(pauses) <= state_module.YIELD_POLL
    worker.close()
    intake.close()
    engine.dispose()


def test_the_processing_share_setting_is_checked() -> None:
    assert load_settings({"ACCORD_HOME": "/tmp/x"}).processing_share == 0.1
    assert load_settings({"ACCORD_HOME": "/tmp/x", "ACCORD_PROCESSING_SHARE": "1"}).processing_share == 1.0
    for bad in ("0", "-1", "1.5", "half"):
        with pytest.raises(ValueError, match="ACCORD_PROCESSING_SHARE"):
            load_settings({"ACCORD_HOME": "/tmp/x", "ACCORD_PROCESSING_SHARE": bad})


def test_the_intake_checkpoints_the_write_ahead_log_off_the_commit_path(tmp_path: object) -> None:
    settings = load_settings({"ACCORD_HOME": f"{tmp_path}/home", "ACCORD_ADMIN_TOKEN": "x"})
    platform = open_platform(settings)
    try:
        key = add_source(platform.state, "web", "web").write_key
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        padding = "x" * 20_000
        bodies = [
            json.dumps(
                {
                    "batch": [
                        {"type": "track", "event": "E", "anonymousId": f"a{i}-{j}", "properties": {"p": padding}}
                        for j in range(10)
                    ]
                }
            )
            for i in range(40)  # 40 requests of ~200 KB: two checkpoints' worth of journal
        ]

        async def run() -> None:
            writer = JournalWriter(platform.journal)
            await writer.start()
            for body in bodies:
                intake = parse_request(body.encode(), None, auth, "batch", platform.lookup_source, datetime.now(UTC))
                await writer.submit(intake.journal_batch())
            await writer.stop()

        asyncio.run(run())
        assert platform.journal.own_checkpoints  # group commits no longer checkpoint by themselves ...
        assert platform.journal._raw.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert writer_checkpointed(settings.home / "state.sqlite")  # ... the writer's own thread did
        assert platform.journal.count_messages() == 400
    finally:
        platform.close()


def writer_checkpointed(path: Path) -> bool:
    """Whether the database file holds journal pages (they reach it only through a checkpoint)."""
    return path.stat().st_size > 4 << 20
