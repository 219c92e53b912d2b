"""The reservation desk: batched reservations never oversell, keep idempotency keys, give clear answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from accord.commerce import inventory
from accord.commerce.desk import ReservationDesk
from accord.commerce.errors import CommerceError, Conflict, InsufficientStock, NotFound
from accord.platform import Platform


def test_batched_reservations_never_oversell(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 10)
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 1000)
    desk = ReservationDesk(s, j).start()
    try:
        futures = [desk.submit("waw-centrum", "LAMP-1", 1, customer_key=f"user_id:{i}") for i in range(60)]
        futures += [desk.submit("waw-centrum", "BOOK-1", 2, idempotency_key=f"b-{i % 20}") for i in range(40)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=60).sku)
            except InsufficientStock:
                outcomes.append("short")
        assert outcomes.count("LAMP-1") == 10 and outcomes.count("short") == 50
        book_ids = {f.result().id for f in futures[60:]}
        assert len(book_ids) == 20  # the same key twice is the same reservation
        assert inventory.stock_level(s, "waw-centrum", "BOOK-1")["reserved"] == 40
        with ThreadPoolExecutor(8) as pool:  # from many threads at once, too
            held = list(pool.map(lambda i: _try(desk, f"b-{i}"), range(20, 60)))
        assert held.count("ok") == 40
        with pytest.raises(Conflict):
            desk.submit("waw-centrum", "BOOK-1", 3, idempotency_key="b-1").result(timeout=60)
        with pytest.raises(NotFound):
            desk.submit("nowhere", "BOOK-1", 1)
    finally:
        desk.stop()
    assert inventory.stock_level(s, "waw-centrum", "LAMP-1") | {"sku": ""} == {
        "location_id": "waw-centrum",
        "sku": "",
        "on_hand": 10,
        "reserved": 10,
        "safety_stock": 0,
        "atp": 0,
    }


def _try(desk: ReservationDesk, key: str) -> str:
    try:
        desk.reserve("waw-centrum", "BOOK-1", 1, idempotency_key=key)
        return "ok"
    except CommerceError as exc:
        return exc.code
