"""Hold-outs from the timeline: sales conversations and support cases opened or closed in other systems."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from accord.messaging import tables as t
from accord.messaging.service import Messaging
from accord.storage.events import EventStore

# event name -> (hold-out reason, opens it?)
HOLD_OUT_EVENTS: dict[str, tuple[str, bool]] = {
    "Sales Conversation Started": ("sales_conversation", True),
    "Sales Conversation Ended": ("sales_conversation", False),
    "Support Case Opened": ("support_case", True),
    "Support Case Closed": ("support_case", False),
}
CURSOR = "hold_outs"


def hold_out_listener(messaging: Messaging, events: EventStore) -> Callable[[int, int], None]:
    """A processor listener: after each loaded slice, open or close hold-outs for the events above, in time
    order, from its own cursor (kept in the state store), so a missed call is caught up on the next one."""

    state: dict[str, float] = {}  # cursor kept in memory; written to the state store when it matters

    def listen(_after: int, upto: int) -> None:
        c = t.listener_cursors
        if "done" not in state:
            with messaging.engine.connect() as conn:
                state["done"] = float(conn.execute(sa.select(c.c.seq).where(c.c.name == CURSOR)).scalar() or 0)
            state["saved_at"] = time.monotonic()
        done = int(state["done"])
        if upto <= done:
            return
        names = list(HOLD_OUT_EVENTS)
        marks = ", ".join("?" for _ in names)
        rows = events.query(
            f"SELECT profile_id, event, timestamp FROM events WHERE journal_seq > ? AND journal_seq <= ? "
            f"AND type = 'track' AND event IN ({marks}) AND profile_id IS NOT NULL ORDER BY timestamp, event_id",
            [done, upto, *names],
        )
        if not rows and time.monotonic() - state["saved_at"] < 10:
            state["done"] = upto
            return  # nothing to do: spare the state store a write (a replay of this range would find nothing)
        with messaging.engine.begin() as conn:
            for profile_id, event, _at in rows:
                reason, opens = HOLD_OUT_EVENTS[event]
                if opens:
                    messaging.suppress_in(conn, profile_id, reason, None, f"from event {event}")
                else:
                    s = t.suppressions
                    conn.execute(s.delete().where(s.c.profile_id == profile_id, s.c.reason == reason))
            if conn.execute(sa.select(c.c.seq).where(c.c.name == CURSOR)).first() is None:
                conn.execute(c.insert().values(name=CURSOR, seq=upto))
            else:
                conn.execute(c.update().where(c.c.name == CURSOR).values(seq=upto))
        state["done"], state["saved_at"] = upto, time.monotonic()

    return listen
