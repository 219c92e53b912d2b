"""A journey worker process for the crash and multi-worker tests: its sender writes one durable row per send."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accord.journeys.engine import Engine, SendRequest
from accord.storage import create_state_engine

SENDS = sa.Table(
    "test_sends",
    sa.MetaData(),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(100), nullable=False),
    sa.Column("worker", sa.String(20), nullable=False),
)


def sender(worker: str) -> object:
    def send(conn: sa.Connection, request: SendRequest) -> str:
        conn.execute(SENDS.insert().values(idempotency_key=request.idempotency_key, worker=worker))
        return "recorded"

    return send


def main() -> None:
    url, worker, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    state = create_state_engine(url)
    ticks = iter(range(10**9))  # time leaps two hours per batch, so the journey's waits pass between batches
    start = datetime.now(UTC)
    engine = Engine(state, sender=sender(worker), clock=lambda: start + timedelta(hours=2 * next(ticks)))  # type: ignore[arg-type]
    print("ready", flush=True)
    active = sa.text("SELECT count(*) FROM journey_instances WHERE state = 'active'")
    while True:  # until every instance has finished (time leaps on, so waits always end)
        if not engine.run_due(batch):
            with state.connect() as conn:
                if not conn.execute(active).scalar():
                    return


if __name__ == "__main__":
    main()
