"""Realistic Segment request bodies for the load generator, with a placeholder where each request's unique id goes.

Every body is a template: the text ``@@ID@@`` stands where wrk's Lua script puts a per-request prefix (run nonce,
thread, counter). It appears in each message's ``messageId`` and in the anonymous visitor ids, so every request
carries new messages and new visitors; logged-in users come from a fixed pool, as on a real shop.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

PLACEHOLDER = "@@ID@@"
USERS = 20_000

_CITIES = [("Warszawa", "PL"), ("Kraków", "PL"), ("Gdańsk", "PL"), ("Berlin", "DE"), ("Praha", "CZ"), ("Wien", "AT")]
_FIRST = ["Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Jan", "Zofia", "Michał", "Ewa", "Paweł"]
_LAST = ["Nowak", "Kowalska", "Wiśniewski", "Wójcik", "Kamińska", "Lewandowski", "Zielińska", "Szymański"]
_CATEGORIES = ["Shoes", "Jackets", "Dresses", "Accessories", "Kids", "Sport", "Home"]
_BRANDS = ["Nordwind", "Vistula", "Tatra", "Baltica", "Mazur"]
_PAGES = [
    ("Home", "/", "Accord Fashion — new season"),
    ("Category", "/c/shoes", "Shoes | Accord Fashion"),
    ("Product", "/p/{sku}", "{name} | Accord Fashion"),
    ("Search", "/search?q=sneakers", "Search results | Accord Fashion"),
    ("Cart", "/cart", "Your cart | Accord Fashion"),
]
_UA_WEB = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605",
]


def product(rng: random.Random) -> dict[str, Any]:
    """A catalogue product as shops send it in properties (id, SKU, name, category, brand, price)."""
    n = rng.randrange(1, 5000)
    category = rng.choice(_CATEGORIES)
    return {
        "product_id": f"prod-{n}",
        "sku": f"SKU-{n:05d}-{rng.choice('SMLX')}",
        "name": f"{rng.choice(_BRANDS)} {category} {n % 97}",
        "category": category,
        "brand": rng.choice(_BRANDS),
        "price": round(rng.uniform(9, 400), 2),
        "currency": "PLN",
    }


class _Session:
    """One visitor's session: an anonymous id that is new per request, maybe a logged-in user."""

    def __init__(self, rng: random.Random, index: int, app: bool, now: datetime) -> None:
        self.rng = rng
        self.app = app
        self.anonymous_id = f"anon-{PLACEHOLDER}-{index}"
        self.user = rng.randrange(USERS) if rng.random() < 0.6 else None
        self.clock = now - timedelta(seconds=rng.randint(30, 600))
        city, country = rng.choice(_CITIES)
        self.city, self.country = city, country
        self.device_id = f"dev-{rng.getrandbits(64):016x}"
        self.ua = rng.choice(_UA_WEB)
        self.ip = f"83.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def context(self, page: tuple[str, str, str] | None = None) -> dict[str, Any]:
        ctx: dict[str, Any] = {"ip": self.ip, "locale": "pl-PL"}
        if self.app:
            ctx["app"] = {"name": "Accord Fashion", "version": "5.12.0", "build": "5120"}
            ctx["device"] = {"id": self.device_id, "manufacturer": "Apple", "model": "iPhone15,3", "type": "ios"}
            ctx["os"] = {"name": "iOS", "version": "17.4.1"}
            ctx["network"] = {"wifi": self.rng.random() < 0.5, "carrier": "Orange PL"}
            ctx["library"] = {"name": "analytics-ios", "version": "4.1.8"}
        else:
            ctx["userAgent"] = self.ua
            ctx["library"] = {"name": "analytics.js", "version": "next-1.64.0"}
            if page is not None:
                ctx["page"] = {"path": page[1], "url": "https://shop.example.pl" + page[1], "title": page[2]}
            if self.rng.random() < 0.2:
                ctx["campaign"] = {"source": "newsletter", "medium": "email", "name": "spring-sale"}
        return ctx

    def base(self, msg_type: str, seq: int) -> dict[str, Any]:
        self.clock += timedelta(seconds=self.rng.randint(2, 40))
        msg: dict[str, Any] = {
            "type": msg_type,
            "messageId": f"{PLACEHOLDER}-{seq}",
            "anonymousId": self.anonymous_id,
            "timestamp": self.clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if self.user is not None:
            msg["userId"] = f"user-{self.user}"
        return msg

    def view(self, seq: int) -> dict[str, Any]:
        """A page view on the web or a screen view in the app."""
        item = product(self.rng)
        name, path, title = self.rng.choice(_PAGES)
        path = path.format(sku=item["sku"].lower())
        title = title.format(name=item["name"])
        if self.app:
            msg = self.base("screen", seq)
            msg["name"] = name
            msg["properties"] = {"name": name, "product_id": item["product_id"], "category": item["category"]}
            msg["context"] = self.context()
        else:
            msg = self.base("page", seq)
            msg["name"] = name
            msg["properties"] = {
                "path": path,
                "url": "https://shop.example.pl" + path,
                "title": title,
                "referrer": self.rng.choice(["https://www.google.com/", "", "https://www.instagram.com/"]),
            }
            msg["context"] = self.context((name, path, title))
        return msg

    def product_event(self, seq: int, event: str) -> dict[str, Any]:
        msg = self.base("track", seq)
        msg["event"] = event
        item = product(self.rng)
        msg["properties"] = {**item, "quantity": self.rng.randint(1, 3), "position": self.rng.randint(1, 24)}
        msg["context"] = self.context()
        return msg

    def identify(self, seq: int) -> dict[str, Any]:
        msg = self.base("identify", seq)
        user = self.user if self.user is not None else self.rng.randrange(USERS)
        msg["userId"] = f"user-{user}"
        first, last = _FIRST[user % len(_FIRST)], _LAST[user % len(_LAST)]
        msg["traits"] = {
            "email": f"{first.lower()}.{user}@example.pl",
            "phone": f"+4860{user:07d}",
            "firstName": first,
            "lastName": last,
            "loyalty_card": f"LC{user:09d}",
            "address": {"city": self.city, "country": self.country},
            "createdAt": "2023-03-14T10:00:00Z",
            "marketing_opt_in": user % 3 == 0,
        }
        msg["context"] = self.context()
        return msg

    def order(self, seq: int) -> dict[str, Any]:
        msg = self.base("track", seq)
        msg["event"] = "Order Completed"
        products = [{**product(self.rng), "quantity": self.rng.randint(1, 2)} for _ in range(self.rng.randint(1, 3))]
        for p in products:
            p.pop("currency")
        subtotal = round(sum(p["price"] * p["quantity"] for p in products), 2)
        msg["properties"] = {
            "order_id": f"ord-{PLACEHOLDER}-{seq}",
            "total": round(subtotal + 14.99, 2),
            "revenue": subtotal,
            "shipping": 14.99,
            "tax": round(subtotal * 0.23 / 1.23, 2),
            "currency": "PLN",
            "coupon": self.rng.choice([None, "SPRING10"]),
            "products": products,
        }
        msg["context"] = self.context()
        return msg


def batch_messages(rng: random.Random, size: int, now: datetime) -> list[dict[str, Any]]:
    """SIZE messages from sessions of about ten: views, product events, identifies and orders."""
    messages: list[dict[str, Any]] = []
    session_index = 0
    while len(messages) < size:
        session = _Session(rng, session_index, app=rng.random() < 0.4, now=now)
        session_index += 1
        plan = ["view", "view", "viewed", "view", "added", "view", "viewed"]
        if session.user is not None or rng.random() < 0.2:
            plan.insert(1, "identify")
        if rng.random() < 0.35:
            plan.append("order")
        for step in plan:
            if len(messages) >= size:
                break
            seq = len(messages)
            if step == "view":
                messages.append(session.view(seq))
            elif step == "viewed":
                messages.append(session.product_event(seq, "Product Viewed"))
            elif step == "added":
                messages.append(session.product_event(seq, "Product Added"))
            elif step == "identify":
                messages.append(session.identify(seq))
            else:
                messages.append(session.order(seq))
    return messages


def batch_templates(count: int, size: int = 100, seed: int = 7) -> list[str]:
    """COUNT /v1/batch bodies of SIZE messages each, as JSON text with placeholders."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sent_at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bodies = []
    for _ in range(count):
        messages = batch_messages(rng, size, now)
        bodies.append(msgspec.json.encode({"batch": messages, "sentAt": sent_at}).decode())
    return bodies


def track_templates(count: int, seed: int = 11) -> list[str]:
    """COUNT single /v1/track bodies (product events and orders), as JSON text with placeholders."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    for i in range(count):
        session = _Session(rng, 0, app=rng.random() < 0.4, now=now)
        if i % 5 == 4:
            msg = session.order(0)
        else:
            msg = session.product_event(0, rng.choice(["Product Viewed", "Product Added"]))
        msg["sentAt"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        bodies.append(msgspec.json.encode(msg).decode())
    return bodies


def write_templates(path: str, bodies: list[str]) -> None:
    """One template per line (compact JSON has no raw newlines), read by bench/wrk_post.lua."""
    for body in bodies:
        if "\n" in body:
            raise ValueError("a template must not contain a newline")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(bodies) + "\n")
