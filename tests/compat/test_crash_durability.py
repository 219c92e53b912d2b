"""A 200 means durable: kill -9 the server during a load and every acknowledged message is there after restart."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import duckdb
import httpx

from tests.conftest import LiveServer


def _load(url: str, key: str, acked: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(100)]
            batch = {
                "batch": [
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "anonymousId": f"a-{i % 7}",
                        "messageId": mid,
                        "properties": {"sku": "s1"},
                    }
                    for i, mid in enumerate(ids)
                ]
            }
            try:
                response = client.post(f"{url}/v1/batch", json=batch, auth=(key, ""))
            except httpx.HTTPError:
                return  # the server died under us: this batch was never acknowledged
            if response.status_code == 200:
                acked.extend(ids)


def test_sigkill_during_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "home").start()
    key = server.add_source("web", "web")
    acked: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_load, args=(server.url, key, acked, stop)) for _ in range(4)]
    for worker in workers:
        worker.start()
    while len(acked) < 3000:
        threading.Event().wait(0.01)
    server.stop(signal.SIGKILL)  # no shutdown hooks, no flush
    stop.set()
    for worker in workers:
        worker.join()
    assert len(acked) >= 3000

    server.start()  # same files
    server.wait_processed(timeout=120)
    server.stop()
    con = duckdb.connect(str(tmp_path / "home" / "events.duckdb"), read_only=True)
    stored = {row[0] for row in con.execute("SELECT message_id FROM events").fetchall()}
    count = con.execute("SELECT count(*) FROM events").fetchone()
    con.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged messages lost"
    assert count is not None and count[0] == len(stored)  # and nothing was loaded twice
