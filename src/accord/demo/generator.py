"""Synthetic demo retailer with ground truth.

``generate(spec, out_dir)`` writes a complete, deterministic demo data set for a fictional omnichannel
retailer ("Accord Shop") with stores in Poland, Denmark, Russia, Kazakhstan, China and the United
Kingdom, plus a ground-truth file that says which identifiers belong to which person.  The same
``DemoSpec`` always produces byte-identical files: all randomness comes from one ``random.Random(seed)``
plus per-locale ``Faker`` instances seeded from it, and no wall-clock time is ever read.

Files written to ``out_dir``:

``stores.json``
    JSON list of stores (physical stores, one warehouse and the ``"online"`` fulfilment centre).
``catalog.csv``
    ``sku,name,category,price,currency,seasonal`` -- prices in PLN.
``customers.csv``
    CRM export ``customer_id,email,phone,first_name,last_name,loyalty_card,country,city,locale,
    birth_date,created_at``.  Emails/phones are deliberately *not* normalised.
``orders.csv``
    POS receipt lines ``order_id,store_id,ordered_at,loyalty_card,email,phone,sku,quantity,unit_price,
    currency``; ``ordered_at`` carries the store's UTC offset; rows are sorted by time.
``events.jsonl``
    Segment-spec messages (identify/track/page/screen/alias), one per line, sorted by ``timestamp``.
``truth.csv``
    ``identifier_type,identifier_value,entity`` -- every identifier that appears anywhere in the other
    files, normalised (email: stripped + lower-cased; phone: E.164, national numbers parsed with the
    country of the record -- store country for receipts, ``country`` column for the CRM,
    ``traits.country`` for identify calls), mapped to a person id such as ``person-000123``.
``manifest.json``
    ``{"spec": ..., "counts": ..., "files": [...]}``.
``holdouts.csv``
    ``campaign,channel,sent_at,user_id,group`` -- everyone each email/SMS/push campaign targeted, ``treated`` or
    ``holdout`` (a random ``holdout_percent`` share who got no message); see ``accord.demo.campaigns``.
``channel_truth.json``
    Per channel the simulated incremental effect of a campaign message and the message cost (the truth that
    holdout lift is measured against).
``ad_spend.csv``
    ``date,channel,campaign,cost,currency`` -- what the ad views and clicks cost, per day and ad network, in the
    shape ``accord analyze spend import`` takes.

Email addresses only use the reserved ``example.com/.net/.org`` domains so demo data can never reach a
real mailbox.  Phone numbers are valid mobile numbers for their country and therefore *could* belong to
real people: never send real SMS/calls to demo data.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from faker import Faker

from accord.demo.campaigns import COST_CURRENCY, MESSAGE_COST_MINOR, CampaignLedger
from accord.demo.legacy import LEGACY_HEADER, LegacyRegistry

__all__ = ["DemoResult", "DemoSpec", "generate"]

FORMAT_VERSION = 1

DAY_MS = 86_400_000
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (4 << 76) | (0x8000 << 48)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _make_fast_encoder() -> Callable[[Any], str]:
    """Compact JSON encoding.  ``JSONEncoder.encode`` rebuilds its C encoder on every call, which is a
    measurable share of generating ~half a million events, so build the C encoder once when available
    (and only if it produces exactly what the stdlib encoder does)."""
    slow = _JSON_ENCODER.encode
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        if c_make_encoder is None:
            return slow
        enc = c_make_encoder(None, _JSON_ENCODER.default, encode_basestring, None, ":", ",", False, False, True)

        def fast(obj: Any) -> str:
            return "".join(enc(obj, 0))

        sample = {"a": [1, 2.5, None, True, 'zß"\n'], "b": {"c": -0.1, "d": "上海"}}
        return fast if fast(sample) == slow(sample) else slow
    except Exception:  # pragma: no cover - other Python implementations
        return slow


class _Json:
    encode = staticmethod(_make_fast_encoder())


_JSON = _Json
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HMS = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
_BATCH_PERSONS = 500

# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSpec:
    """What to generate.  Events fall in ``[end - days, end)``."""

    customers: int = 10_000
    days: int = 365
    seed: int = 42
    end: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    # campaign holdouts (see accord.demo.campaigns): the share of each campaign's targets who get no message,
    # channels whose messages are delivered but change nothing (zero true effect), the lift window of the truth
    holdout_percent: float = 0.0
    inert_channels: tuple[str, ...] = ()
    lift_window_days: int = 7

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if not 0 <= self.holdout_percent < 100:
            raise ValueError("holdout_percent must be in [0, 100)")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "days": self.days,
            "seed": self.seed,
            "start": _iso_z(self.start),
            "end": _iso_z(self.end),
            "holdout_percent": self.holdout_percent,
            "inert_channels": list(self.inert_channels),
            "lift_window_days": self.lift_window_days,
        }


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    counts: dict[str, int]


FILES = (
    "stores.json", "catalog.csv", "customers.csv", "orders.csv", "events.jsonl", "truth.csv", "legacy_customers.csv",
    "holdouts.csv", "channel_truth.json", "ad_spend.csv",
)  # fmt: skip

CATALOG_HEADER = ("sku", "name", "category", "price", "currency", "seasonal")
CUSTOMERS_HEADER = (
    "customer_id", "email", "phone", "first_name", "last_name", "loyalty_card",
    "country", "city", "locale", "birth_date", "created_at", "address", "postcode",
)  # fmt: skip
ORDERS_HEADER = (
    "order_id", "store_id", "ordered_at", "loyalty_card", "email", "phone",
    "sku", "quantity", "unit_price", "currency",
)  # fmt: skip
TRUTH_HEADER = ("identifier_type", "identifier_value", "entity")


def generate(spec: DemoSpec, out_dir: Path, progress: Callable[[int, int], None] | None = None) -> DemoResult:
    """Generate the demo data set described by ``spec`` into ``out_dir`` (created if missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(spec, out_dir, progress)
    counts = gen.run()
    manifest = {"format_version": FORMAT_VERSION, "spec": spec.as_dict(), "counts": counts, "files": list(FILES)}
    with open(out_dir / "manifest.json", "w", encoding="utf-8", newline="\n") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return DemoResult(out_dir=out_dir, counts=counts)


# --------------------------------------------------------------------------------------------------
# Static reference data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Country:
    code: str
    locale: str
    tag: str  # BCP 47 tag as a browser / phone reports it
    faker: str
    currency: str
    weight: float
    mobile_prefixes: tuple[str, ...]
    nsn_len: int
    email_domains: tuple[str, ...]
    ads: tuple[tuple[str, str], ...]  # (utm source, utm medium)


_COUNTRIES: dict[str, _Country] = {
    c.code: c
    for c in (
        _Country(
            "PL", "pl", "pl-PL", "pl_PL", "PLN", 0.34,
            ("50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88"), 9,
            ("example.com", "poczta.example.net", "skrzynka.example.org"),
            (("google", "cpc"), ("facebook", "paid_social"), ("instagram", "paid_social")),
        ),
        _Country(
            "DK", "da", "da-DK", "da_DK", "DKK", 0.15,
            ("20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "40", "41", "42",
             "50", "51", "52", "53", "60", "61", "71", "81", "91", "92", "93"), 8,
            ("example.com", "post.example.net", "mail.example.org"),
            (("google", "cpc"), ("facebook", "paid_social"), ("instagram", "paid_social")),
        ),
        _Country(
            "RU", "ru", "ru-RU", "ru_RU", "RUB", 0.13,
            ("90", "91", "92", "95", "96", "98", "99"), 10,
            ("example.com", "pochta.example.net", "mail.example.org"),
            (("yandex", "cpc"), ("vk", "paid_social")),
        ),
        _Country(
            "KZ", "ru", "ru-KZ", "ru_RU", "KZT", 0.05,
            ("700", "701", "702", "705", "707", "747", "771", "775", "776", "777", "778"), 10,
            ("example.com", "pochta.example.net", "mail.example.org"),
            (("google", "cpc"), ("yandex", "cpc"), ("instagram", "paid_social")),
        ),
        _Country(
            "CN", "zh", "zh-CN", "zh_CN", "CNY", 0.16,
            ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
             "156", "157", "158", "159", "180", "181", "182", "183", "185", "186", "187", "188", "189"), 11,
            ("example.com", "youxiang.example.net", "mail.example.org"),
            (("baidu", "cpc"), ("wechat", "paid_social"), ("douyin", "paid_social")),
        ),
        _Country(
            "GB", "en", "en-GB", "en_GB", "GBP", 0.17,
            ("74", "75", "77", "78", "79"), 10,
            ("example.com", "mail.example.net", "example.org"),
            (("google", "cpc"), ("facebook", "paid_social"), ("instagram", "paid_social")),
        ),
    )
}  # fmt: skip

# Approximate FX from the PLN catalogue price to each store currency.
_FX_FROM_PLN = {"PLN": 1.0, "DKK": 1.75, "RUB": 21.0, "KZT": 125.0, "CNY": 1.8, "GBP": 0.2}

_PL_HOURS = {d: ["09:00", "21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}
_DK_HOURS = {d: ["10:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": ["10:00", "17:00"],
    "sun": ["10:00", "16:00"],
}
_DAILY_10_22 = {d: ["10:00", "22:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
_GB_HOURS = {d: ["09:00", "20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": ["10:00", "16:00"]}
_WAREHOUSE_HOURS = {d: ["06:00", "22:00"] for d in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": ["08:00", "16:00"],
    "sun": None,
}
_ALWAYS_HOURS = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

# (store_id, name, kind, country, city, lat, lon, timezone, hours, pickup, geofence_m, weight)
_STORES: tuple[tuple[Any, ...], ...] = (
    ("st-waw-01", "Accord Warszawa Centrum", "store", "PL", "Warsaw",
     52.2297, 21.0122, "Europe/Warsaw", _PL_HOURS, True, 150, 3.0),
    ("st-waw-02", "Accord Warszawa Mokotów", "store", "PL", "Warsaw",
     52.1806, 21.0027, "Europe/Warsaw", _PL_HOURS, True, 200, 2.0),
    ("st-krk-01", "Accord Kraków Rynek", "store", "PL", "Kraków",
     50.0617, 19.9373, "Europe/Warsaw", _PL_HOURS, True, 150, 2.0),
    ("st-gdn-01", "Accord Gdańsk Oliwa", "store", "PL", "Gdańsk",
     54.4110, 18.5697, "Europe/Warsaw", _PL_HOURS, False, 250, 1.0),
    ("st-wro-01", "Accord Wrocław Rynek", "store", "PL", "Wrocław",
     51.1100, 17.0320, "Europe/Warsaw", _PL_HOURS, True, 150, 1.5),
    ("st-cph-01", "Accord København Strøget", "store", "DK", "Copenhagen",
     55.6786, 12.5775, "Europe/Copenhagen", _DK_HOURS, True, 120, 2.0),
    ("st-cph-02", "Accord Fields", "store", "DK", "Copenhagen",
     55.6304, 12.5781, "Europe/Copenhagen", _DK_HOURS, True, 300, 1.0),
    ("st-aar-01", "Accord Aarhus C", "store", "DK", "Aarhus",
     56.1567, 10.2108, "Europe/Copenhagen", _DK_HOURS, False, 150, 1.0),
    ("st-mow-01", "Accord Москва Тверская", "store", "RU", "Moscow",
     55.7616, 37.6094, "Europe/Moscow", _DAILY_10_22, True, 150, 2.0),
    ("st-led-01", "Accord Санкт-Петербург Невский", "store", "RU", "Saint Petersburg",
     59.9343, 30.3351, "Europe/Moscow", _DAILY_10_22, True, 150, 1.0),
    ("st-ala-01", "Accord Алматы Достык", "store", "KZ", "Almaty",
     43.2330, 76.9560, "Asia/Almaty", _DAILY_10_22, True, 200, 1.0),
    ("st-sha-01", "Accord 上海南京路", "store", "CN", "Shanghai",
     31.2352, 121.4751, "Asia/Shanghai", _DAILY_10_22, True, 150, 2.0),
    ("st-pek-01", "Accord 北京三里屯", "store", "CN", "Beijing",
     39.9360, 116.4551, "Asia/Shanghai", _DAILY_10_22, True, 150, 1.5),
    ("st-szx-01", "Accord 深圳万象城", "store", "CN", "Shenzhen",
     22.5385, 114.1116, "Asia/Shanghai", _DAILY_10_22, False, 200, 1.0),
    ("st-lon-01", "Accord London Oxford Street", "store", "GB", "London",
     51.5152, -0.1419, "Europe/London", _GB_HOURS, True, 120, 2.0),
    ("st-lon-02", "Accord London Shoreditch", "store", "GB", "London",
     51.5246, -0.0784, "Europe/London", _GB_HOURS, False, 120, 1.0),
    ("st-man-01", "Accord Manchester Arndale", "store", "GB", "Manchester",
     53.4833, -2.2410, "Europe/London", _GB_HOURS, True, 200, 1.0),
    ("wh-lcj-01", "Accord Central Warehouse Stryków", "warehouse", "PL", "Stryków",
     51.9033, 19.6044, "Europe/Warsaw", _WAREHOUSE_HOURS, False, 500, 0.0),
    ("online", "Accord Online", "online", "PL", "Warsaw",
     52.2297, 21.0122, "Europe/Warsaw", _ALWAYS_HOURS, False, 0, 0.0),
)  # fmt: skip

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# (category, min PLN, max PLN, weight, ((noun, seasonal), ...))
_CATEGORIES: tuple[tuple[str, int, int, float, tuple[tuple[str, str], ...]], ...] = (
    ("Outerwear", 199, 899, 1.2, (("Parka", "winter"), ("Down Jacket", "winter"), ("Rain Jacket", "spring"),
                                  ("Fleece", ""), ("Softshell Jacket", ""), ("Wool Coat", "winter"))),
    ("Knitwear", 49, 299, 1.0, (("Sweater", "winter"), ("Cardigan", ""), ("Scarf", "winter"),
                                ("Beanie", "winter"), ("Gloves", "winter"))),
    ("Footwear", 129, 599, 1.1, (("Sneakers", ""), ("Hiking Boots", ""), ("Winter Boots", "winter"),
                                 ("Sandals", "spring"), ("Running Shoes", ""), ("Rain Boots", "spring"))),
    ("Garden", 19, 399, 0.9, (("Planter", "spring"), ("Seed Kit", "spring"), ("Garden Gloves", "spring"),
                              ("Pruning Shears", "spring"), ("Watering Can", "spring"), ("Raised Bed", "spring"))),
    ("Home", 29, 299, 1.2, (("Throw Blanket", ""), ("Cushion", ""), ("Candle", ""), ("Table Lamp", ""),
                            ("Mug Set", ""), ("Vase", ""), ("Storage Basket", ""))),
    ("Outdoor", 39, 999, 0.8, (("Tent", "spring"), ("Sleeping Bag", ""), ("Camping Chair", "spring"),
                               ("Backpack", ""), ("Water Bottle", ""), ("Picnic Blanket", "spring"))),
    ("Beauty", 15, 149, 0.9, (("Hand Cream", ""), ("Lip Balm", "winter"), ("Shower Gel", ""),
                              ("Face Serum", ""), ("Sunscreen", "spring"))),
    ("Kids", 29, 299, 0.7, (("Rain Suit", "spring"), ("Snow Suit", "winter"), ("Kids Sneakers", ""),
                            ("Puzzle", ""), ("Plush Toy", ""))),
)  # fmt: skip
_ADJECTIVES = ("Nordic", "Classic", "Urban", "Alpine", "Coastal", "Everyday", "Trail", "Cozy", "Studio",
               "Essential", "Harbour", "Meadow", "Summit", "Linen", "Vista")  # fmt: skip
_COLOURS = ("Black", "Navy", "Olive", "Sand", "Grey", "Red", "Oat", "Forest", "Rust", "Sky")

_THEMES = {
    1: ("winter-sale", "new-year-new-gear"),
    2: ("winter-sale", "valentines-gifts"),
    3: ("spring-collection", "garden-season"),
    4: ("easter-deals", "garden-season"),
    5: ("spring-collection", "outdoor-weekend"),
    6: ("summer-essentials", "midsummer-sale"),
    7: ("summer-sale", "camping-season"),
    8: ("back-to-school", "summer-sale"),
    9: ("autumn-arrivals", "back-to-school"),
    10: ("autumn-arrivals", "cozy-home"),
    11: ("black-friday", "winter-warmers"),
    12: ("christmas-gifts", "last-minute-gifts"),
}

LIB_WEB = {"name": "analytics.js", "version": "2.11.1"}
LIB_IOS = {"name": "analytics-ios", "version": "4.1.8"}
LIB_ANDROID = {"name": "analytics-android", "version": "4.11.3"}
LIB_SERVER = {"name": "analytics-python", "version": "2.3.4"}
_LIB_WEB_JSON = json.dumps(LIB_WEB, separators=(",", ":"))
APP_IOS = {"name": "Accord Shop", "version": "5.3.0", "build": "5300", "namespace": "com.accord.shop"}
APP_ANDROID = {"name": "Accord Shop", "version": "5.3.0", "build": "530", "namespace": "com.accord.shop"}
OS_IOS = {"name": "iOS", "version": "18.5"}
OS_ANDROID = {"name": "Android", "version": "15"}
WEB_BASE = "https://shop.accord.example"
_UA_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:144.0) Gecko/20100101 Firefox/144.0",
)
_UA_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36",
)  # fmt: skip
_REFERRERS = {
    "google": "https://www.google.com/",
    "facebook": "https://l.facebook.com/",
    "instagram": "https://l.instagram.com/",
    "yandex": "https://yandex.ru/",
    "vk": "https://vk.com/",
    "baidu": "https://www.baidu.com/",
    "wechat": "https://weixin.qq.com/",
    "douyin": "https://www.douyin.com/",
}
_CALL_REASONS = ("delivery_status", "return", "product_question", "complaint", "loyalty_points", "payment")

# Per persona: yearly rates (before the per-person activity multiplier).
_RATES: dict[str, dict[str, float]] = {
    "web_only": {"web": 6.0, "app": 0.0, "store": 0.3, "call": 0.25, "chat": 0.15, "adv": 3.0, "adc": 1.0},
    "app_heavy": {"web": 1.0, "app": 8.0, "store": 1.0, "call": 0.25, "chat": 0.3, "adv": 1.0, "adc": 0.3},
    "store_only": {"web": 0.0, "app": 0.0, "store": 6.0, "call": 0.4, "chat": 0.2, "adv": 0.0, "adc": 0.0},
    "omni": {"web": 3.5, "app": 3.5, "store": 3.5, "call": 0.3, "chat": 0.3, "adv": 2.0, "adc": 0.6},
    "story2": {"web": 0.0, "app": 4.0, "store": 5.0, "call": 0.3, "chat": 0.3, "adv": 0.0, "adc": 0.0},
    "household": {"web": 5.0, "app": 1.5, "store": 3.0, "call": 0.25, "chat": 0.2, "adv": 2.0, "adc": 0.6},
}
_PERSONAS = (("web_only", 0.23), ("app_heavy", 0.19), ("store_only", 0.27), ("omni", 0.31))

# Hour-of-day weights (local time) per activity.
_HOURS_WEB = (1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 2, 3, 4, 4, 4, 5, 4, 4, 4, 4, 5, 6, 8, 9, 9, 7, 3)
_HOURS_APP = (1, 0.5, 0.3, 0.2, 0.2, 0.4, 1.5, 4, 4, 3, 3, 4, 6, 5, 3, 3, 4, 6, 6, 7, 8, 8, 6, 3)
_HOURS_CALL = (0, 0, 0, 0, 0, 0, 0, 0, 3, 6, 7, 7, 6, 6, 6, 6, 5, 5, 4, 3, 0, 0, 0, 0)
_HOURS_CHAT = (0.5, 0.2, 0.1, 0, 0, 0, 0.5, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6, 6, 5, 3, 1)


def _cum(weights: Iterable[float]) -> list[float]:
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


_CUM_WEB = _cum(_HOURS_WEB)
_CUM_APP = _cum(_HOURS_APP)
_CUM_CALL = _cum(_HOURS_CALL)
_CUM_CHAT = _cum(_HOURS_CHAT)

_TRANSLIT = {
    "ą": "a", "ć": "c", "ę": "e", "ł": "l", "ń": "n", "ó": "o", "ś": "s", "ź": "z", "ż": "z",
    "æ": "ae", "ø": "oe", "å": "aa", "ß": "ss",
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y",
    "ь": "", "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip


def _ascii_slug(text: str) -> str:
    text = "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", text)


def _iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ean13(rng: Random, prefix: str) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _local_price(pln: float, currency: str) -> float:
    value = pln * _FX_FROM_PLN[currency]
    if currency in ("RUB", "KZT"):
        return float(max(9, round(value / 10.0) * 10 - 1))
    return max(0.99, round(value) - 0.01)


# --------------------------------------------------------------------------------------------------
# Internal model
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Store:
    store_id: str
    name: str
    kind: str
    country: str
    city: str
    lat: float
    lon: float
    timezone: str
    hours: dict[str, list[str] | None]
    pickup: bool
    geofence_m: int
    weight: float
    # per weekday (0=mon): (open seconds, close seconds) or None
    open_s: list[tuple[int, int] | None] = field(default_factory=list)


@dataclass(slots=True)
class _Product:
    sku: str
    name: str
    category: str
    price: float  # PLN
    seasonal: str


@dataclass(slots=True)
class _Campaign:
    name: str
    ms: int


@dataclass(slots=True)
class _Browser:
    anon: str
    ua: str
    shared: bool = False
    logged_in: bool = False


@dataclass(slots=True)
class _Install:
    anon: str
    device_id: str
    os: str  # "ios" | "android"
    token: str | None
    created_ms: int
    logged_in: bool = False


@dataclass(slots=True)
class _Person:
    idx: int
    entity: str
    persona: str
    country: _Country
    store: _Store
    first_name: str
    last_name: str
    email: str  # normalised
    phone_e164: str
    phone_national: str
    phone_intl: str
    activity: float
    start_day: int
    end_day: int  # exclusive (churn)
    spring_buyer: bool
    has_account: bool
    acct_pre: bool  # account created before the window
    app_pre: bool  # app installed before the window
    user_id: str | None
    card: str | None
    in_crm: bool
    email_optin: bool
    sms_optin: bool
    mobile_share: float
    browsers: list[_Browser] = field(default_factory=list)
    installs: list[_Install] = field(default_factory=list)
    used: dict[tuple[str, str], int] = field(default_factory=dict)
    account_ms: int | None = None
    ext_id_sent: bool = False


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


class _TimeSpill:
    """Streams lines into time-bucket files, then writes them out globally sorted by time.

    Each line is stored as ``"<14-digit ms>\t<line>"``; a bucket covers a contiguous slice of the
    window, so sorting every (small) bucket in memory and concatenating them gives a global sort.
    Ties (same millisecond) are broken by the line text, which keeps the output deterministic.
    """

    def __init__(self, directory: Path, start_ms: int, end_ms: int, n_buckets: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.start_ms = start_ms
        self.span = max(1, end_ms - start_ms)
        self.n = n_buckets
        self.pending: list[list[str]] = [[] for _ in range(n_buckets)]

    def add_all(self, rows: Iterable[tuple[int, str]]) -> None:
        start, span, n, pending = self.start_ms, self.span, self.n, self.pending
        for ms, line in rows:
            pending[(ms - start) * n // span].append(f"{ms:014d}\t{line}")

    def flush(self) -> None:
        for i, lines in enumerate(self.pending):
            if lines:
                with open(self.dir / f"{i:04d}", "a", encoding="utf-8", newline="") as fh:
                    fh.writelines(lines)
                lines.clear()

    def write_sorted(self, out: Any) -> None:
        self.flush()
        for i in range(self.n):
            path = self.dir / f"{i:04d}"
            if not path.exists():
                continue
            with open(path, encoding="utf-8", newline="") as fh:
                lines = fh.readlines()
            lines.sort()
            out.writelines(line[15:] for line in lines)
            path.unlink()


class _Generator:
    def __init__(self, spec: DemoSpec, out_dir: Path, progress: Callable[[int, int], None] | None) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.progress = progress
        self.rng = Random(spec.seed)
        self.start_ms = int(spec.start.timestamp() * 1000)
        self.end_ms = int(spec.end.timestamp() * 1000)
        self.start_epoch_day = self.start_ms // DAY_MS
        self.days = spec.days
        self.fakers: dict[str, Faker] = {}
        for i, loc in enumerate(sorted({c.faker for c in _COUNTRIES.values()})):
            fk = Faker(loc)
            fk.seed_instance(spec.seed * 1000 + i)
            self.fakers[loc] = fk
        self.legacy = LegacyRegistry(spec.seed, list(self.fakers))  # noisy duplicates, own random stream
        self._day_str: dict[int, str] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()
        self.used_user_ids: set[str] = set()
        self.used_cards: set[str] = set()
        self.used_customer_ids: set[str] = set()
        self.counts: dict[str, int] = {
            "stores": 0, "products": 0, "customers": 0, "crm_rows": 0, "events": 0,
            "orders": 0, "order_lines": 0, "online_orders": 0, "identifiers": 0,
            "households": 0, "story2_customers": 0, "churners": 0, "spring_buyers": 0, "legacy_rows": 0,
        }  # fmt: skip
        self._random = self.rng.random
        self.ledger = CampaignLedger(spec.seed, spec.holdout_percent, spec.inert_channels, spec.lift_window_days)

    def count_cause(self, campaign: dict[str, str] | None, organic: str) -> None:
        """Ground truth for attribution: the channel whose click started the session that ended in an order
        (``orders_caused_by_<channel>`` in the counts; organic sessions count as web/app, receipts as store)."""
        medium = (campaign or {}).get("medium")
        cause = organic if campaign is None else medium if medium in ("email", "sms", "push") else "ads"
        key = f"orders_caused_by_{cause}"
        self.counts[key] = self.counts.get(key, 0) + 1

    # ---- small helpers --------------------------------------------------------------------------

    def uuid4(self) -> str:
        """A random (version 4) UUID drawn from the seeded rng; same as ``uuid.UUID(int=n, version=4)``."""
        n = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def ri(self, a: int, b: int) -> int:
        """Random int in [a, b) -- a cheaper ``randrange`` for the hot paths."""
        return a + int(self._random() * (b - a))

    def hex_id(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def zone(self, tz: str) -> ZoneInfo:
        z = self._zones.get(tz)
        if z is None:
            z = self._zones[tz] = ZoneInfo(tz)
        return z

    def offset_s(self, tz: str, epoch_day: int) -> int:
        """UTC offset (seconds) of ``tz`` at local noon of ``epoch_day`` (DST switches happen at night)."""
        key = (tz, epoch_day)
        off = self._offsets.get(key)
        if off is None:
            noon = datetime.fromtimestamp(epoch_day * 86400 + 43200, UTC).astimezone(self.zone(tz))
            delta = noon.utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
            self._offsets[key] = off
        return off

    def day_str(self, epoch_day: int) -> str:
        s = self._day_str.get(epoch_day)
        if s is None:
            s = self._day_str[epoch_day] = date.fromordinal(_EPOCH_ORDINAL + epoch_day).isoformat()
        return s

    def fmt_ms(self, ms: int) -> str:
        """ISO 8601 UTC with millisecond precision and ``Z``."""
        day, rem = divmod(ms, DAY_MS)
        sec, milli = divmod(rem, 1000)
        ds = self._day_str.get(day) or self.day_str(day)
        return f"{ds}T{_HMS[sec]}.{milli:03d}Z"

    def poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit = math.exp(-lam)
        k = 0
        p = self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def pick_hour_s(self, cum: list[float]) -> int:
        hour = bisect.bisect_right(cum, self.rng.random() * cum[-1])
        return min(hour, 23) * 3600 + self.rng.randrange(3600)

    def local_to_ms(self, tz: str, day: int, sec: int) -> int:
        epoch_day = self.start_epoch_day + day
        return (epoch_day * 86400 + sec - self.offset_s(tz, epoch_day)) * 1000 + self.rng.randrange(1000)

    def pick_day(self, cum: list[float], lo: int, hi: int) -> int:
        """A day index in [lo, hi) weighted by the ``cum`` table."""
        if hi <= lo:
            return lo
        c_lo = cum[lo - 1] if lo > 0 else 0.0
        c_hi = cum[hi - 1]
        d = bisect.bisect_right(cum, c_lo + self.rng.random() * (c_hi - c_lo))
        return min(max(d, lo), hi - 1)

    # ---- reference data ---------------------------------------------------------------------------

    def build_reference(self) -> None:
        self.stores: list[_Store] = []
        for row in _STORES:
            st = _Store(*row)
            for wd in _WEEKDAYS:
                hrs = st.hours[wd]
                if hrs is None:
                    st.open_s.append(None)
                else:
                    o = int(hrs[0][:2]) * 3600 + int(hrs[0][3:]) * 60
                    c = int(hrs[1][:2]) * 3600 + int(hrs[1][3:]) * 60
                    st.open_s.append((o, c))
            self.stores.append(st)
        self.stores_by_country: dict[str, list[_Store]] = {}
        for st in self.stores:
            if st.kind == "store":
                self.stores_by_country.setdefault(st.country, []).append(st)

        # Day weights: Black Friday / Christmas peak; "spring" table for spring buyers.
        base: list[float] = []
        spring: list[float] = []
        self.day_season: list[str] = []
        for d in range(self.days):
            dt = date.fromordinal(_EPOCH_ORDINAL + self.start_epoch_day + d)
            w = 1.0
            if dt.month == 11 and dt.day >= 20:
                w = 1.9
            elif dt.month == 12 and dt.day <= 23:
                w = 1.6
            elif dt.month == 12:
                w = 0.7
            elif dt.month == 1:
                w = 1.1
            elif dt.month in (2, 6, 7, 8):
                w = 0.85
            if dt.weekday() >= 5:
                w *= 1.15
            base.append(w)
            spring.append(w * (10.0 if dt.month in (3, 4, 5) else 1.0))
            self.day_season.append(
                "spring" if dt.month in (3, 4, 5) else "winter" if dt.month in (11, 12, 1, 2) else ""
            )
        self.cum_days = _cum(base)
        self.cum_days_spring = _cum(spring)

        # Catalogue
        rng = self.rng
        n_products = 320
        self.products: list[_Product] = []
        names: set[str] = set()
        skus: set[str] = set()
        cat_cum = _cum(c[3] for c in _CATEGORIES)
        while len(self.products) < n_products:
            cat, lo, hi, _, nouns = _CATEGORIES[bisect.bisect_right(cat_cum, rng.random() * cat_cum[-1])]
            noun, seasonal = rng.choice(nouns)
            name = f"{rng.choice(_ADJECTIVES)} {noun} {rng.choice(_COLOURS)}"
            if name in names:
                continue
            sku = f"AC-{rng.randrange(100000, 1000000)}"
            if sku in skus:
                continue
            names.add(name)
            skus.add(sku)
            price = int(rng.uniform(lo, hi) / 10) * 10 + 9.99
            self.products.append(_Product(sku, name, cat, price, seasonal))
        popularity = [1.0 / (rank + 1) ** 0.8 for rank in range(n_products)]
        rng.shuffle(popularity)
        self.cum_products: dict[str, list[float]] = {}
        for season, boost in (("", {}), ("winter", {"winter": 4.0}), ("spring", {"spring": 4.0}),
                              ("spring+", {"spring": 12.0})):  # fmt: skip
            self.cum_products[season] = _cum(
                w * boost.get(p.seasonal, 1.0) for w, p in zip(popularity, self.products, strict=True)
            )

        # Marketing calendars per country: (email, sms, push) campaigns
        self.campaigns: dict[str, dict[str, list[_Campaign]]] = {}
        for cc in _COUNTRIES:
            tz = self.stores_by_country[cc][0].timezone
            per: dict[str, list[_Campaign]] = {}
            for channel, every, hour in (("email", 14, 10), ("sms", 30, 12), ("push", 14, 18)):
                lst: list[_Campaign] = []
                d = rng.randrange(every)
                while d < self.days:
                    dt = date.fromordinal(_EPOCH_ORDINAL + self.start_epoch_day + d)
                    theme = rng.choice(_THEMES[dt.month])
                    name = f"{theme}-{dt.isoformat()}-{cc.lower()}-{channel}"
                    ms = self.local_to_ms(tz, d, hour * 3600 + rng.randrange(1800))
                    lst.append(_Campaign(name, ms))
                    d += every
                per[channel] = lst
            self.campaigns[cc] = per

    def write_reference(self) -> None:
        stores_json = [
            {
                "store_id": st.store_id,
                "name": st.name,
                "kind": st.kind,
                "country": st.country,
                "city": st.city,
                "lat": st.lat,
                "lon": st.lon,
                "timezone": st.timezone,
                "locale": _COUNTRIES[st.country].locale,
                "currency": _COUNTRIES[st.country].currency,
                "opening_hours": st.hours,
                "pickup": st.pickup,
                "geofence_m": st.geofence_m,
            }
            for st in self.stores
        ]
        with open(self.out_dir / "stores.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(stores_json, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        self.counts["stores"] = len(stores_json)
        with open(self.out_dir / "catalog.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(CATALOG_HEADER)
            for p in self.products:
                w.writerow((p.sku, p.name, p.category, f"{p.price:.2f}", "PLN", p.seasonal))
        self.counts["products"] = len(self.products)

    # ---- people -----------------------------------------------------------------------------------

    def make_phone(self, c: _Country, rng: Random | None = None) -> tuple[str, str, str]:
        rng = rng or self.rng
        while True:
            pref = rng.choice(c.mobile_prefixes)
            nsn = pref + "".join(str(rng.randrange(10)) for _ in range(c.nsn_len - len(pref)))
            cc = "7" if c.code in ("RU", "KZ") else str(phonenumbers.country_code_for_region(c.code))
            e164 = f"+{cc}{nsn}"
            if e164 in self.used_phones:
                continue
            num = phonenumbers.PhoneNumber(country_code=int(cc), national_number=int(nsn))
            # the prefixes are mobile ranges; validity + region pins the rest down
            if not phonenumbers.is_valid_number(num) or phonenumbers.region_code_for_number(num) != c.code:
                continue
            self.used_phones.add(e164)
            return (
                e164,
                phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL),
                phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            )

    def make_email(self, c: _Country, first: str, last: str, rng: Random | None = None) -> str:
        rng = rng or self.rng
        f, la = _ascii_slug(first) or "user", _ascii_slug(last) or "shopper"
        r = rng.random()
        if r < 0.35:
            local = f"{f}.{la}"
        elif r < 0.6:
            local = f"{f}{la}{rng.randrange(1, 100)}"
        elif r < 0.8:
            local = f"{f[0]}{la}"
        else:
            local = f"{f}_{la}{rng.randrange(60, 100)}"
        domain = rng.choice(c.email_domains)
        email = f"{local}@{domain}"
        while email in self.used_emails:
            email = f"{local}{rng.randrange(1, 1000)}@{domain}"
        self.used_emails.add(email)
        return email

    def new_user_id(self) -> str:
        while True:
            uid = "u-" + self.hex_id(10)
            if uid not in self.used_user_ids:
                self.used_user_ids.add(uid)
                return uid

    def new_card(self) -> str:
        while True:
            card = _ean13(self.rng, "2990")
            if card not in self.used_cards:
                self.used_cards.add(card)
                return card

    def new_customer_id(self) -> str:
        while True:
            cid = f"C{self.rng.randrange(10_000_000, 100_000_000)}"
            if cid not in self.used_customer_ids:
                self.used_customer_ids.add(cid)
                return cid

    def make_person(self, idx: int, persona: str, country: _Country | None = None,
                    store: _Store | None = None) -> _Person:  # fmt: skip
        rng = self.rng
        if country is None:
            countries = list(_COUNTRIES.values())
            country = rng.choices(countries, weights=[c.weight for c in countries])[0]
        if store is None:
            cands = self.stores_by_country[country.code]
            store = rng.choices(cands, weights=[s.weight for s in cands])[0]
        fk = self.fakers[country.faker]
        female = rng.random() < 0.55
        if female:
            first, last = fk.first_name_female(), fk.last_name_female()
        else:
            first, last = fk.first_name_male(), fk.last_name_male()
        if country.code == "CN":
            email_first, email_last = fk.first_romanized_name(), fk.last_romanized_name()
        else:
            email_first, email_last = first, last
        email = self.make_email(country, email_first, email_last)
        e164, national, intl = self.make_phone(country)
        activity = min(15.0, math.exp(rng.gauss(-0.5, 1.0)))
        household = persona == "household"
        story2 = persona == "story2"
        start_day = 0 if (household or story2 or rng.random() < 0.8) else rng.randrange(max(1, self.days * 9 // 10))
        end_day = self.days
        if not household and not story2 and rng.random() < 0.15 and self.days - start_day > 20:
            end_day = rng.randrange(start_day + 10, self.days)
            self.counts["churners"] += 1
        spring_buyer = not household and not story2 and rng.random() < 0.08
        if spring_buyer:
            self.counts["spring_buyers"] += 1
        p_account = {"web_only": 0.7, "app_heavy": 1.0, "store_only": 0.08, "omni": 0.95,
                     "story2": 1.0, "household": 1.0}[persona]  # fmt: skip
        has_account = rng.random() < p_account
        acct_pre = has_account and not story2 and start_day == 0 and rng.random() < 0.7
        app_pre = acct_pre and rng.random() < 0.8
        p_card = {"web_only": 0.04, "app_heavy": 0.3, "store_only": 0.85, "omni": 0.65,
                  "story2": 1.0, "household": 0.4}[persona]  # fmt: skip
        card = self.new_card() if rng.random() < p_card else None
        in_crm = card is not None or (has_account and rng.random() < 0.5) or rng.random() < 0.08
        return _Person(
            idx=idx,
            entity=f"person-{idx:06d}",
            persona=persona,
            country=country,
            store=store,
            first_name=first,
            last_name=last,
            email=email,
            phone_e164=e164,
            phone_national=national,
            phone_intl=intl,
            activity=activity,
            start_day=start_day,
            end_day=end_day,
            spring_buyer=spring_buyer,
            has_account=has_account,
            acct_pre=acct_pre,
            app_pre=app_pre,
            user_id=self.new_user_id() if has_account else None,
            card=card,
            in_crm=in_crm,
            email_optin=has_account and rng.random() < 0.55,
            sms_optin=has_account and rng.random() < 0.25,
            mobile_share=0.55 if country.code == "CN" else 0.35,
        )

    # ---- main loop --------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        self.build_reference()
        self.write_reference()
        tmp = Path(tempfile.mkdtemp(prefix=".accord-demo-", dir=self.out_dir))
        try:
            self._run_people(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.ledger.write(self.out_dir, self.counts)
        return dict(self.counts)

    def _plan_units(self) -> list[str]:
        n = self.spec.customers
        n_house = max(1, round(n * 0.03 / 2)) if n >= 6 else 0
        n_story2 = max(1, round(n * 0.03)) if n >= 6 else 0
        units = ["household"] * n_house + ["story2"] * n_story2
        units += ["single"] * (n - 2 * n_house - n_story2)
        self.rng.shuffle(units)
        return units

    def _run_people(self, tmp: Path) -> None:
        total = self.spec.customers
        if self.progress:
            self.progress(0, total)
        units = self._plan_units()
        n_buckets = min(400, max(8, total * self.days // 40_000))
        event_spill = _TimeSpill(tmp / "events", self.start_ms, self.end_ms, n_buckets)
        order_spill = _TimeSpill(tmp / "orders", self.start_ms, self.end_ms, max(8, n_buckets // 8))
        in_batch = 0
        idx = 0
        persona_cum = _cum(w for _, w in _PERSONAS)

        with (
            open(self.out_dir / "customers.csv", "w", encoding="utf-8", newline="") as crm_fh,
            open(self.out_dir / "truth.csv", "w", encoding="utf-8", newline="") as truth_fh,
            open(self.out_dir / "legacy_customers.csv", "w", encoding="utf-8", newline="") as legacy_fh,
        ):
            legacy_w = csv.writer(legacy_fh, lineterminator="\n")
            legacy_w.writerow(LEGACY_HEADER)
            crm_w = csv.writer(crm_fh, lineterminator="\n")
            crm_w.writerow(CUSTOMERS_HEADER)
            truth_w = csv.writer(truth_fh, lineterminator="\n")
            truth_w.writerow(TRUTH_HEADER)

            def flush() -> None:
                nonlocal in_batch
                event_spill.flush()
                order_spill.flush()
                in_batch = 0
                if self.progress:
                    self.progress(idx, total)

            for unit in units:
                if unit == "household":
                    a = self.make_person(idx, "household")
                    b = self.make_person(idx + 1, "household", a.country, a.store)
                    shared = _Browser(self.uuid4(), self.rng.choice(_UA_DESKTOP), shared=True)
                    for p in (a, b):
                        p.browsers.append(shared)
                    people = [a, b]
                    self.counts["households"] += 1
                elif unit == "story2":
                    people = [self.make_person(idx, "story2")]
                    self.counts["story2_customers"] += 1
                else:
                    persona = _PERSONAS[bisect.bisect_right(persona_cum, self.rng.random() * persona_cum[-1])][0]
                    people = [self.make_person(idx, persona)]
                idx += len(people)
                for p in people:
                    ev, orders = self.simulate(p)
                    event_spill.add_all(ev)
                    order_spill.add_all(orders)
                    self.write_crm(p, crm_w, legacy_w)
                if len(people) == 2:
                    self._resolve_shared(people)
                for p in people:
                    for typ, val in sorted(p.used):
                        truth_w.writerow((typ, val, p.entity))
                        self.counts["identifiers"] += 1
                in_batch += len(people)
                if in_batch >= _BATCH_PERSONS:
                    flush()
            flush()
        self.counts["customers"] = total

        with open(self.out_dir / "events.jsonl", "w", encoding="utf-8", newline="") as fh:
            event_spill.write_sorted(fh)
        with open(self.out_dir / "orders.csv", "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(ORDERS_HEADER) + "\n")
            order_spill.write_sorted(fh)

    @staticmethod
    def _resolve_shared(people: list[_Person]) -> None:
        a, b = people
        shared = a.browsers[0]
        key = ("anonymous_id", shared.anon)
        ta, tb = a.used.get(key), b.used.get(key)
        if ta is not None and tb is not None:
            if tb < ta:
                del a.used[key]
            else:
                del b.used[key]

    # ---- CRM --------------------------------------------------------------------------------------

    def display_email(self, email: str, p: float = 0.3) -> str:
        """The email the way a human / legacy system typed it (case and whitespace noise)."""
        rng = self.rng
        r = rng.random()
        if r >= p:
            return email
        local, domain = email.split("@", 1)
        r = rng.random()
        if r < 0.45:
            local = ".".join(part[:1].upper() + part[1:] for part in local.split("."))
            domain = domain[:1].upper() + domain[1:]
            out = f"{local}@{domain}"
        elif r < 0.7:
            out = email.upper()
        else:
            out = email
        r = rng.random()
        if r < 0.4:
            out = " " + out
        elif r < 0.7:
            out = out + " "
        return out

    def write_crm(self, p: _Person, w: Any, legacy_w: Any = None) -> None:
        if not p.in_crm:
            return
        rng = self.rng
        cid = self.new_customer_id()
        story2 = p.persona == "story2"
        if p.start_day == 0:
            created_ms = self.start_ms - rng.randrange(DAY_MS, 6 * 365 * DAY_MS)
        else:
            first = min(p.used.values(), default=None)
            created_ms = first if first is not None else self.start_ms + p.start_day * DAY_MS + 12 * 3600_000
            created_ms = created_ms - rng.randrange(1000, 600_000)
        email = "" if story2 or rng.random() < 0.12 else self.display_email(p.email)
        if story2 or rng.random() < 0.72:
            r = rng.random()
            phone = p.phone_national if story2 or r < 0.65 else p.phone_intl if r < 0.9 else p.phone_e164
        else:
            phone = ""
        birth = ""
        if rng.random() < 0.8:
            age_days = rng.randrange(18 * 365, 80 * 365)
            birth = self.day_str(self.end_ms // DAY_MS - age_days)
        first_name = p.first_name if rng.random() < 0.98 else ""
        address, postcode = self.legacy.home(p.country.faker)
        w.writerow(
            (cid, email, phone, first_name, p.last_name, p.card or "", p.country.code, p.store.city,
             p.country.locale, birth, self.fmt_ms(created_ms)[:19] + "Z", address, postcode)
        )  # fmt: skip
        self.counts["crm_rows"] += 1
        self._use(p, "customer_id", cid, created_ms)
        if email:
            self._use(p, "email", p.email, created_ms)
        if phone:
            self._use(p, "phone", p.phone_e164, created_ms)
        if p.card:
            self._use(p, "loyalty_card", p.card, created_ms)
        if legacy_w is not None:
            self.write_legacy(p, legacy_w, (address, postcode, p.store.city), birth, created_ms)

    def write_legacy(self, p: _Person, w: Any, home: tuple[str, str, str], birth: str, before_ms: int) -> None:
        """Maybe one more record of P in the old store registry (see accord.demo.legacy)."""
        c = p.country
        found = self.legacy.record(
            p,
            locale=c.faker,
            country=c.code,
            home=home,
            other_cities=sorted({s.city for s in self.stores_by_country[c.code]} - {home[2]}),
            birth=birth,
            before_ms=before_ms,
            fmt_ms=self.fmt_ms,
            new_phone=lambda rng: self.make_phone(c, rng),
            new_email=lambda rng: self.make_email(c, p.first_name, p.last_name + "old", rng),
        )
        if found is None:
            return
        row, ids, ms = found
        w.writerow(row)
        self.counts["legacy_rows"] += 1
        for typ, value in ids:
            self._use(p, typ, value, ms)

    @staticmethod
    def _use(p: _Person, typ: str, value: str, ms: int) -> None:
        key = (typ, value)
        prev = p.used.get(key)
        if prev is None or ms < prev:
            p.used[key] = ms

    # ---- simulation -------------------------------------------------------------------------------

    def simulate(self, p: _Person) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        sim = _PersonSim(self, p)
        sim.run()
        return sim.events, sim.orders


class _PersonSim:
    """Simulates one person's year across channels; collects serialized events and receipt lines."""

    def __init__(self, g: _Generator, p: _Person) -> None:
        self.g = g
        self.p = p
        self.rng = g.rng
        self.events: list[tuple[int, str]] = []
        self.orders: list[tuple[int, str]] = []
        c = p.country
        self.tz = p.store.timezone
        self.locale_tag = c.tag
        self.currency = c.currency
        self.cum_days = g.cum_days_spring if p.spring_buyer else g.cum_days
        # campaign holdouts (accord.demo.campaigns): while QUIET, messages are simulated (same random draws) but not
        # written -- a held-out customer's message, and what it would have caused
        self.quiet = False
        self.treated: list[tuple[str, str, int]] = []
        self.purchases: list[tuple[int, str | None]] = []

    def bought(self, ms: int, campaign: dict[str, str] | None, organic: str) -> None:
        """An online order (not while quiet): counts, attribution truth, the campaign that caused it."""
        g = self.g
        g.counts["online_orders"] += 1
        g.count_cause(campaign, organic)
        caused = campaign is not None and campaign.get("medium") in ("email", "sms", "push")
        self.purchases.append((ms, campaign["name"] if campaign is not None and caused else None))

    # ---- emission ---------------------------------------------------------------------------------

    def emit(self, ms: int, msg: dict[str, Any], ids: Iterable[tuple[str, str]]) -> bool:
        """Serialise one message (if inside the window) and record the identifiers it carries.

        ``msg["context"]`` is required and may be a dict or already-encoded JSON text (contexts are
        shared by many events of a session, so callers pre-encode them once).
        """
        g = self.g
        if not g.start_ms <= ms < g.end_ms:
            return False
        if self.quiet:
            g.uuid4()  # the draw a written message makes
            return True
        ts = g.fmt_ms(ms)
        ctx = msg.pop("context")
        body = _JSON.encode(msg)
        msg["context"] = ctx  # restore (callers may reuse the message; "context" stays the last key)
        ctx_s = ctx if isinstance(ctx, str) else _JSON.encode(ctx)
        self.events.append(
            (ms, f'{{"messageId":"{g.uuid4()}",{body[1:-1]},"context":{ctx_s},"timestamp":"{ts}","sentAt":"{ts}"}}\n')
        )
        g.counts["events"] += 1
        used = self.p.used
        for key in ids:
            prev = used.get(key)
            if prev is None or ms < prev:
                used[key] = ms
        return True

    # ---- plan -------------------------------------------------------------------------------------

    def _days(self, n: int, lo: int | None = None, hi: int | None = None) -> list[int]:
        p = self.p
        lo = p.start_day if lo is None else lo
        hi = p.end_day if hi is None else hi
        return [self.g.pick_day(self.cum_days, lo, hi) for _ in range(n)]

    def run(self) -> None:
        g, p, rng = self.g, self.p, self.rng
        rates = _RATES[p.persona]
        span = max(0, p.end_day - p.start_day) / 365.0
        act = p.activity
        tz = self.tz

        def n_of(key: str) -> int:
            return g.poisson(rates[key] * act * span)

        sessions: list[tuple[int, int, str, Any]] = []  # (ms, order, kind, payload)
        k = 0

        def add(ms: int, kind: str, payload: Any = None) -> None:
            nonlocal k
            k += 1
            sessions.append((ms, k, kind, payload))

        n_web, n_app, n_store = n_of("web"), n_of("app"), n_of("store")
        if p.persona == "household":
            n_web = max(n_web, 2)
        web_days = self._days(n_web)
        if p.persona == "household":
            # make sure the shared computer is used (and logged into) well inside the window
            web_days[0] = g.ri(1, max(2, self.g.days - 1))
        for i, d in enumerate(web_days):
            kind = "web_shared" if p.persona == "household" and i == 0 else "web"
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_WEB)), kind)

        store_days = self._days(n_store)
        first_receipt_ms: int | None = None
        if p.persona == "story2":
            first = g.ri(1, max(2, g.days // 2))
            store_days = [first, *[d for d in store_days if d > first]] if store_days else [first]
        receipts = [self.store_visit(d, force_card=(p.persona == "story2" and i == 0))
                    for i, d in enumerate(store_days)]  # fmt: skip
        receipts_ms = sorted(m for m in receipts if m is not None)
        if receipts_ms:
            first_receipt_ms = receipts_ms[0]

        app_days = self._days(n_app)
        if p.persona == "story2":
            lo = (first_receipt_ms // DAY_MS - g.start_epoch_day + 1) if first_receipt_ms else 1
            lo = min(max(lo, 1), max(1, g.days - 2))
            install = g.ri(lo, max(lo + 1, g.days - 1))
            app_days = [install, *[d for d in app_days if d > install]]
        for d in app_days:
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_APP)), "app")

        for d in self._days(n_of("call")):
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_CALL)), "call")
        for d in self._days(n_of("chat")):
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_CHAT)), "chat")
        ads = p.country.ads
        for d in self._days(n_of("adv")):
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_WEB)), "adview", rng.choice(ads))
        for d in self._days(n_of("adc")):
            add(g.local_to_ms(tz, d, g.pick_hour_s(_CUM_WEB)), "adclick", rng.choice(ads))

        # When was the online account created / the app first installed?
        online = sorted(ms for ms, _, kind, _ in sessions if kind in ("web", "web_shared", "app", "adclick"))
        if p.has_account:
            if p.acct_pre:
                p.account_ms = g.start_ms - 1
            elif online:
                p.account_ms = online[0]

        # Outbound marketing (needs an account; push needs an app install with a token)
        lo_ms = g.start_ms + p.start_day * DAY_MS
        hi_ms = g.start_ms + p.end_day * DAY_MS
        camps = g.campaigns[p.country.code]
        if p.account_ms is not None and p.user_id:
            if p.email_optin:
                for c in camps["email"]:
                    if max(lo_ms, p.account_ms) <= c.ms < hi_ms and rng.random() < 0.45:
                        self.email_campaign(c, add)
            if p.sms_optin:
                for c in camps["sms"]:
                    if max(lo_ms, p.account_ms) <= c.ms < hi_ms and rng.random() < 0.5:
                        self.sms_campaign(c, add)

        sessions.sort()
        self.first_app_session = True
        for ms, _, kind, payload in sessions:
            self.quiet = kind.endswith(":quiet")
            kind = kind.removesuffix(":quiet")
            if kind == "web":
                self.web_session(ms, payload)
            elif kind == "web_shared":
                self.web_session(ms, payload, shared=True)
            elif kind == "app":
                self.app_session(ms, payload)
            elif kind == "call":
                self.call(ms)
            elif kind == "chat":
                self.chat(ms)
            elif kind == "adview":
                self.ad_event(ms, "Ad Viewed", payload)
            elif kind == "adclick":
                camp = self.ad_event(ms, "Ad Clicked", payload)
                if camp is not None:
                    self.web_session(ms + g.ri(1500, 6000), camp)
        self.quiet = False

        # Push campaigns need the installs created during the session simulation.
        push_installs = [i for i in p.installs if i.token]
        if push_installs and p.user_id and p.account_ms is not None:
            for c in camps["push"]:
                if not max(lo_ms, p.account_ms) <= c.ms < hi_ms or rng.random() >= 0.35:
                    continue
                live = [i for i in push_installs if i.created_ms <= c.ms]
                if live:
                    self.push_campaign(c, live[-1])
        g.ledger.settle(self.treated, self.purchases)

    # ---- identities -------------------------------------------------------------------------------

    def new_browser(self, mobile: bool | None = None) -> _Browser:
        rng = self.rng
        if mobile is None:
            mobile = rng.random() < self.p.mobile_share
        return _Browser(self.g.uuid4(), rng.choice(_UA_MOBILE if mobile else _UA_DESKTOP))

    def browser(self, shared: bool = False) -> _Browser:
        """The browser (cookie jar) used for a web visit; creates/rotates browsers as people do."""
        p, rng = self.p, self.rng
        if p.persona == "household":
            # browsers[0] is the family computer; browsers[1] (if any) the person's own phone
            if shared:
                return p.browsers[0]
            if len(p.browsers) == 1 and rng.random() < 0.4:
                p.browsers.append(self.new_browser(mobile=True))
            return p.browsers[0] if len(p.browsers) == 1 or rng.random() < 0.6 else p.browsers[1]
        if not p.browsers:
            b = self.new_browser()
            b.logged_in = p.acct_pre and rng.random() < 0.6
            p.browsers.append(b)
            return b
        if len(p.browsers) == 1 and rng.random() < 0.3:
            p.browsers.append(self.new_browser(mobile=p.browsers[0].ua in _UA_DESKTOP))
        idx = 0 if rng.random() < 0.7 else len(p.browsers) - 1
        if rng.random() < 0.03:  # cookies cleared / new laptop
            p.browsers[idx] = self.new_browser(mobile=p.browsers[idx].ua in _UA_MOBILE)
        return p.browsers[idx]

    def web_ctx(self, b: _Browser, path: str, referrer: str, campaign: dict[str, str] | None,
                title: str | None) -> tuple[str, str]:  # fmt: skip
        """(encoded analytics.js context, page url)."""
        url = WEB_BASE + path
        if campaign is not None:
            url += f"?utm_source={campaign['source']}&utm_medium={campaign['medium']}&utm_campaign={campaign['name']}"
        page = {"path": path, "url": url, "referrer": referrer}
        if title is not None:
            page["title"] = title
        ctx = f'{{"library":{_LIB_WEB_JSON},"locale":"{self.locale_tag}","page":{_JSON.encode(page)}'
        ctx += f',"userAgent":{_JSON.encode(b.ua)}'
        if campaign is not None:
            ctx += f',"campaign":{_JSON.encode(campaign)}'
        return ctx + "}", url

    def signup_traits(self, include_email: bool = True) -> dict[str, Any]:
        p, rng = self.p, self.rng
        traits: dict[str, Any] = {}
        if include_email:
            traits["email"] = p.email if rng.random() < 0.85 else p.email.capitalize()
        traits["first_name"] = p.first_name
        traits["last_name"] = p.last_name
        return traits

    def id_pairs(self, uid: str | None, anon: str | None) -> list[tuple[str, str]]:
        out = []
        if uid:
            out.append(("user_id", uid))
        if anon:
            out.append(("anonymous_id", anon))
        return out

    # ---- web --------------------------------------------------------------------------------------

    def web_session(self, t: int, campaign: dict[str, str] | None, shared: bool = False) -> None:
        p, g, rng = self.p, self.g, self.rng
        b = self.browser(shared=shared)
        if b.shared:
            b.logged_in = False  # family members log out after themselves
        needs_signup = p.has_account and p.account_ms is not None and not p.acct_pre and t <= p.account_ms
        lang = p.country.locale
        state = {"uid": p.user_id if b.logged_in else None}
        referrer = ""
        if campaign is not None:
            referrer = _REFERRERS.get(campaign["source"], "")

        def page(name: str, path: str, title: str, camp: dict[str, str] | None = None) -> None:
            nonlocal referrer, t
            ctx, url = self.web_ctx(b, path, referrer, camp, title)
            msg: dict[str, Any] = {"type": "page", "name": name}
            if state["uid"]:
                msg["userId"] = state["uid"]
            msg["anonymousId"] = b.anon
            msg["properties"] = {"path": path, "url": url, "title": title, "referrer": referrer}
            msg["context"] = ctx
            self.emit_web(t, msg, state["uid"], b.anon)
            referrer = url
            t += g.ri(4000, 90_000)

        def track(event: str, props: dict[str, Any], path: str) -> None:
            nonlocal t
            ctx, _ = self.web_ctx(b, path, referrer, None, None)
            msg: dict[str, Any] = {"type": "track", "event": event}
            if state["uid"]:
                msg["userId"] = state["uid"]
            msg["anonymousId"] = b.anon
            msg["properties"] = props
            msg["context"] = ctx
            self.emit_web(t, msg, state["uid"], b.anon)
            t += g.ri(800, 20_000)

        def login(signup: bool) -> None:
            nonlocal t
            uid = p.user_id
            assert uid is not None
            if signup:
                traits = self.signup_traits()
                if rng.random() < 0.7:
                    traits["phone"] = p.phone_e164 if rng.random() < 0.6 else p.phone_national
                traits["locale"] = lang
                traits["country"] = p.country.code
                traits["created_at"] = g.fmt_ms(t)
            else:
                traits = {"email": p.email if rng.random() < 0.9 else p.email.capitalize()}
            ctx, _ = self.web_ctx(b, f"/{lang}/account", referrer, None, "Account")
            msg: dict[str, Any] = {"type": "identify", "userId": uid, "anonymousId": b.anon,
                                   "traits": traits, "context": ctx}  # fmt: skip
            ids = [("user_id", uid), ("anonymous_id", b.anon), ("email", p.email)]
            if "phone" in traits:
                ids.append(("phone", p.phone_e164))
            self.emit(t, msg, ids)
            t += g.ri(500, 3000)
            if signup and rng.random() < 0.15:
                alias = {"type": "alias", "userId": uid, "previousId": b.anon, "anonymousId": b.anon,
                         "context": ctx}  # fmt: skip
                self.emit(t, alias, [("user_id", uid), ("anonymous_id", b.anon)])
                t += g.ri(200, 2000)
            state["uid"] = uid
            if not b.shared:
                b.logged_in = True

        products = self.pick_products(t, 1 + min(6, int(rng.expovariate(0.9))))
        first = products[0]
        if campaign is not None or rng.random() < 0.5:
            page("Product", f"/{lang}/p/{first.sku.lower()}", first.name, campaign)
        else:
            page("Home", f"/{lang}/", "Accord Shop", campaign)
        wants_login = b.shared or (not state["uid"] and rng.random() < 0.35)
        if wants_login and p.has_account and not needs_signup:
            login(signup=False)
        if needs_signup:
            login(signup=True)
            p.acct_pre = True  # from now on the account exists
        for prod in products:
            path = f"/{lang}/p/{prod.sku.lower()}"
            if prod is not first:
                page("Product", path, prod.name)
            track("Product Viewed", self.product_props(prod), path)
        cart = [pr for pr in products if rng.random() < 0.28]
        if not cart:
            return
        cart_id = g.hex_id(16)
        for prod in cart:
            track("Product Added", {**self.product_props(prod, 1), "cart_id": cart_id},
                  f"/{lang}/p/{prod.sku.lower()}")  # fmt: skip
        page("Cart", f"/{lang}/cart", "Cart")
        lines = [(prod, 1 if rng.random() < 0.85 else 2) for prod in cart]
        track("Cart Viewed", {"cart_id": cart_id, "products": [self.product_props(pr, q) for pr, q in lines]},
              f"/{lang}/cart")  # fmt: skip
        if rng.random() < 0.5:
            return
        if p.has_account and not state["uid"] and rng.random() < 0.8:
            login(signup=False)
        order_id = f"ON-{g.hex_id(16)}"
        props = self.order_props(order_id, lines)
        page("Checkout", f"/{lang}/checkout", "Checkout")
        track("Checkout Started", dict(props), f"/{lang}/checkout")
        if rng.random() < 0.3:
            return
        at = t
        track("Order Completed", props, f"/{lang}/checkout/complete")
        if not self.quiet:
            self.bought(at, campaign, "web")

    def emit_web(self, t: int, msg: dict[str, Any], uid: str | None, anon: str) -> None:
        self.emit(t, msg, self.id_pairs(uid, anon))

    # ---- shared product helpers ---------------------------------------------------------------------

    def pick_products(self, ms: int, n: int) -> list[_Product]:
        g = self.g
        day = min(max((ms - g.start_ms) // DAY_MS, 0), g.days - 1)
        season = g.day_season[day]
        if self.p.spring_buyer and season == "spring":
            season = "spring+"
        cum = g.cum_products[season]
        out: list[_Product] = []
        for _ in range(n):
            prod = g.products[min(bisect.bisect_right(cum, self.rng.random() * cum[-1]), len(g.products) - 1)]
            if prod not in out:
                out.append(prod)
        return out

    def product_props(self, prod: _Product, quantity: int | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product_id": prod.sku,
            "sku": prod.sku,
            "name": prod.name,
            "category": prod.category,
            "price": _local_price(prod.price, self.currency),
            "currency": self.currency,
        }
        if quantity is not None:
            props["quantity"] = quantity
        return props

    def order_props(self, order_id: str, lines: list[tuple[_Product, int]]) -> dict[str, Any]:
        items = []
        total = 0.0
        for prod, q in lines:
            price = _local_price(prod.price, self.currency)
            total += price * q
            items.append({"product_id": prod.sku, "sku": prod.sku, "name": prod.name, "price": price,
                          "quantity": q, "category": prod.category})  # fmt: skip
        total = round(total, 2)
        return {"order_id": order_id, "total": total, "revenue": total, "currency": self.currency,
                "products": items}  # fmt: skip

    # ---- app --------------------------------------------------------------------------------------

    def app_session(self, t: int, campaign: dict[str, str] | None, inst: _Install | None = None) -> None:
        p, g, rng = self.p, self.g, self.rng
        new_install = False
        if inst is None and (not p.installs or rng.random() < 0.02):
            os_ = "ios" if rng.random() < (0.3 if p.country.code == "CN" else 0.5) else "android"
            token = g.hex_id(64) if rng.random() < (0.65 if os_ == "ios" else 0.8) else None
            pre = not p.installs and p.app_pre
            inst = _Install(g.uuid4(), g.uuid4(), os_, token, created_ms=g.start_ms - 1 if pre else t)
            inst.logged_in = pre and p.has_account
            new_install = not pre
            p.installs.append(inst)
        if inst is None:
            inst = p.installs[-1]
        ios = inst.os == "ios"
        device: dict[str, Any] = {"id": inst.device_id, "type": inst.os}
        if inst.token:
            device["token"] = inst.token
        base_ctx: dict[str, Any] = {
            "library": LIB_IOS if ios else LIB_ANDROID,
            "app": APP_IOS if ios else APP_ANDROID,
            "device": device,
            "os": OS_IOS if ios else OS_ANDROID,
            "locale": self.locale_tag,
            "timezone": self.tz,
        }
        dev_ids = [("device_id", inst.device_id)]
        if inst.token:
            dev_ids.append(("push_token", inst.token))

        plain_ctx = _JSON.encode(base_ctx)

        def ctx(with_campaign: bool = False) -> str:
            if with_campaign and campaign is not None:
                return _JSON.encode({**base_ctx, "campaign": campaign})
            return plain_ctx

        def uid() -> str | None:
            return p.user_id if inst.logged_in else None

        def send(msg: dict[str, Any], extra_ids: Iterable[tuple[str, str]] = ()) -> None:
            nonlocal t
            u = uid()
            out: dict[str, Any] = {"type": msg.pop("type")}
            for key in ("event", "name"):
                if key in msg:
                    out[key] = msg.pop(key)
            if u:
                out["userId"] = u
            out["anonymousId"] = inst.anon
            out.update(msg)
            self.emit(t, out, [*self.id_pairs(u, inst.anon), *dev_ids, *extra_ids])
            t += g.ri(2000, 45_000)

        if new_install:
            send({"type": "track", "event": "Application Installed",
                  "properties": {"version": APP_IOS["version"], "build": base_ctx["app"]["build"]},
                  "context": ctx()})  # fmt: skip
        send({"type": "track", "event": "Application Opened",
              "properties": {"from_background": False, "version": APP_IOS["version"]},
              "context": ctx(True)})  # fmt: skip
        send({"type": "screen", "name": "Home", "properties": {}, "context": ctx()})

        if p.has_account and not inst.logged_in and p.user_id:
            story2 = p.persona == "story2"
            signup = p.account_ms is not None and not p.acct_pre and t <= p.account_ms + 10 * 60_000
            if story2 or signup or rng.random() < 0.85:
                inst.logged_in = True
                if story2:
                    traits: dict[str, Any] = {
                        "phone": p.phone_national if rng.random() < 0.6 else p.phone_e164,
                        "first_name": p.first_name,
                        "country": p.country.code,
                        "locale": p.country.locale,
                    }
                    ids = [("phone", p.phone_e164)]
                elif signup:
                    traits = self.signup_traits()
                    if rng.random() < 0.6:
                        traits["phone"] = p.phone_e164 if rng.random() < 0.5 else p.phone_national
                    traits["locale"] = p.country.locale
                    traits["country"] = p.country.code
                    ids = [("email", p.email)]
                    if "phone" in traits:
                        ids.append(("phone", p.phone_e164))
                else:
                    traits = {"email": p.email}
                    ids = [("email", p.email)]
                send({"type": "identify", "traits": traits, "context": ctx()}, ids)
                p.acct_pre = True
        if (p.card and p.persona != "story2" and inst.logged_in and not p.ext_id_sent
                and self.first_app_session and rng.random() < 0.5):  # fmt: skip
            p.ext_id_sent = True
            c = dict(base_ctx)
            c["externalIds"] = [{"id": p.card, "type": "loyalty_card", "collection": "users", "encoding": "none"}]
            send({"type": "identify", "traits": {"loyalty_card_linked": True}, "context": c},
                 [("loyalty_card", p.card)])  # fmt: skip
        self.first_app_session = False

        products = self.pick_products(t, 1 + min(6, int(rng.expovariate(0.8))))
        for prod in products:
            send({"type": "screen", "name": "Product", "properties": {"sku": prod.sku, "name": prod.name},
                  "context": ctx()})  # fmt: skip
            send({"type": "track", "event": "Product Viewed", "properties": self.product_props(prod),
                  "context": ctx()})  # fmt: skip
        cart = [pr for pr in products if rng.random() < 0.3]
        if not cart:
            return
        for prod in cart:
            send({"type": "track", "event": "Product Added", "properties": self.product_props(prod, 1),
                  "context": ctx()})  # fmt: skip
        send({"type": "screen", "name": "Cart", "properties": {}, "context": ctx()})
        if rng.random() < 0.45 or not inst.logged_in:
            return
        lines = [(prod, 1 if rng.random() < 0.85 else 2) for prod in cart]
        props = self.order_props(f"ON-{g.hex_id(16)}", lines)
        send({"type": "track", "event": "Checkout Started", "properties": dict(props), "context": ctx()})
        if rng.random() < 0.25:
            return
        at = t
        send({"type": "track", "event": "Order Completed", "properties": props, "context": ctx()})
        if not self.quiet:
            self.bought(at, campaign, "app")

    # ---- outbound channels ------------------------------------------------------------------------

    def target(
        self, channel: str, c: _Campaign, add: Callable[[int, str, Any], None] | None
    ) -> tuple[bool, Callable[[int, str, Any], None]]:
        """Enter a campaign target in the ledger: (held out?, the ``add`` for the visits the message starts --
        quiet ones for a held-out target or an inert channel). A held-out message is not written (quiet)."""
        g = self.g
        uid = self.p.user_id
        assert uid is not None
        held = g.ledger.assign(channel, c.name, g.fmt_ms(c.ms), uid)
        self.quiet = held
        if not held:
            self.treated.append((channel, c.name, c.ms))
        inner = add

        def add_quiet(ms: int, kind: str, payload: Any) -> None:
            assert inner is not None
            inner(ms, f"{kind}:quiet" if held or channel in g.ledger.inert else kind, payload)

        return held, add_quiet

    def priced(self, props: dict[str, Any], channel: str, c: _Campaign) -> dict[str, Any]:
        """Delivery properties as messaging records them: the delivery id and what the message cost."""
        return {**props, "delivery_id": f"{c.name}:{self.p.user_id}", "cost_minor": MESSAGE_COST_MINOR[channel],
                "currency": COST_CURRENCY}  # fmt: skip

    def email_campaign(self, c: _Campaign, add: Callable[[int, str, Any], None]) -> None:
        p, g, rng = self.p, self.g, self.rng
        uid = p.user_id
        assert uid is not None
        base = _JSON.encode({"channel": "email", "library": LIB_SERVER, "traits": {"email": p.email}})
        props = {"campaign_name": c.name, "campaign_id": c.name}
        ids = [("user_id", uid), ("email", p.email)]
        t = c.ms + g.ri(0, 900_000)
        held, add = self.target("email", c, add)
        self.emit(t, {"type": "track", "event": "Email Delivered", "userId": uid,
                      "properties": self.priced(props, "email", c), "context": base}, ids)  # fmt: skip
        self.quiet = held or "email" in g.ledger.inert
        if rng.random() < 0.27:
            t += int(rng.expovariate(1 / 10_800_000)) + 30_000
            self.emit(t, {"type": "track", "event": "Email Opened", "userId": uid, "properties": props,
                          "context": base}, ids)  # fmt: skip
            if rng.random() < 0.3:
                t += g.ri(5000, 120_000)
                link = f"{WEB_BASE}/{p.country.locale}/?utm_source=newsletter&utm_medium=email&utm_campaign={c.name}"
                self.emit(t, {"type": "track", "event": "Email Link Clicked", "userId": uid,
                              "properties": {**props, "link_url": link}, "context": base}, ids)  # fmt: skip
                camp = {"source": "newsletter", "medium": "email", "name": c.name}
                kind = "app" if p.persona in ("app_heavy", "story2") else "web"
                add(t + g.ri(1000, 5000), kind, camp)
        self.quiet = False

    def sms_campaign(self, c: _Campaign, add: Callable[[int, str, Any], None]) -> None:
        p, g, rng = self.p, self.g, self.rng
        uid = p.user_id
        assert uid is not None
        base = _JSON.encode({"channel": "sms", "library": LIB_SERVER, "traits": {"phone": p.phone_e164}})
        props = {"campaign_name": c.name, "campaign_id": c.name}
        ids = [("user_id", uid), ("phone", p.phone_e164)]
        t = c.ms + g.ri(0, 300_000)
        held, add = self.target("sms", c, add)
        self.emit(t, {"type": "track", "event": "SMS Delivered", "userId": uid,
                      "properties": self.priced(props, "sms", c), "context": base}, ids)  # fmt: skip
        self.quiet = held or "sms" in g.ledger.inert
        if rng.random() < 0.09:
            t += g.ri(20_000, 3_600_000)
            self.emit(t, {"type": "track", "event": "SMS Link Clicked", "userId": uid, "properties": props,
                          "context": base}, ids)  # fmt: skip
            add(t + g.ri(1000, 5000), "web", {"source": "sms", "medium": "sms", "name": c.name})
        self.quiet = False

    def push_campaign(self, c: _Campaign, inst: _Install) -> None:
        p, g, rng = self.p, self.g, self.rng
        uid = p.user_id
        assert uid is not None and inst.token is not None
        device = {"id": inst.device_id, "type": inst.os, "token": inst.token}
        base = _JSON.encode({"channel": "push", "library": LIB_SERVER, "device": device})
        props = {"campaign_name": c.name, "campaign_id": c.name}
        ids = [("user_id", uid), ("device_id", inst.device_id), ("push_token", inst.token)]
        t = c.ms + g.ri(0, 120_000)
        held, _ = self.target("push", c, None)
        self.emit(t, {"type": "track", "event": "Push Notification Received", "userId": uid,
                      "properties": self.priced(props, "push", c), "context": base}, ids)  # fmt: skip
        self.quiet = held or "push" in g.ledger.inert
        if rng.random() < 0.08:
            t += g.ri(5000, 1_800_000)
            self.emit(t, {"type": "track", "event": "Push Notification Tapped", "userId": uid,
                          "properties": props, "context": base}, ids)  # fmt: skip
            camp = {"source": "push", "medium": "push", "name": c.name}
            self.app_session(t + g.ri(500, 3000), camp, inst)
        self.quiet = False

    def ad_event(self, t: int, event: str, ad: tuple[str, str]) -> dict[str, str] | None:
        p, g, rng = self.p, self.g, self.rng
        b = self.browser()
        source, medium = ad
        theme = rng.choice(_THEMES[date.fromordinal(_EPOCH_ORDINAL + t // DAY_MS).month])
        camp = {"source": source, "medium": medium, "name": f"{theme}-{p.country.code.lower()}"}
        props = {"ad_id": f"ad-{g.hex_id(8)}", "campaign_name": camp["name"], "network": source}
        ctx = {"channel": "ads", "library": LIB_WEB, "locale": self.locale_tag, "campaign": camp}
        ok = self.emit(t, {"type": "track", "event": event, "anonymousId": b.anon, "properties": props,
                           "context": ctx}, [("anonymous_id", b.anon)])  # fmt: skip
        if ok:
            g.ledger.ad(g.day_str(t // DAY_MS), f"{source}-{p.country.code.lower()}", event)
        return camp if ok else None

    def call(self, t: int) -> None:
        p, g, rng = self.p, self.g, self.rng
        anon = g.uuid4()
        uid = p.user_id if (p.user_id and p.account_ms is not None and t > p.account_ms
                            and rng.random() < 0.4) else None  # fmt: skip
        ctx = {"channel": "call_center", "library": LIB_SERVER, "traits": {"phone": p.phone_e164}}
        props: dict[str, Any] = {"direction": "inbound", "queue": f"customer-service-{p.country.locale}"}
        if rng.random() < 0.6:
            props["reason"] = rng.choice(_CALL_REASONS)
        ids = [*self.id_pairs(uid, anon), ("phone", p.phone_e164)]
        msg: dict[str, Any] = {"type": "track", "event": "Call Started"}
        if uid:
            msg["userId"] = uid
        msg |= {"anonymousId": anon, "properties": props, "context": ctx}
        self.emit(t, msg, ids)
        duration = g.ri(45, 1200)
        end = dict(msg)
        end["event"] = "Call Ended"
        end["properties"] = {**props, "duration_s": duration}
        self.emit(t + duration * 1000, end, ids)

    def chat(self, t: int) -> None:
        p, g, rng = self.p, self.g, self.rng
        anon = g.uuid4()
        provider = "whatsapp" if rng.random() < 0.65 else "messenger"
        ctx = {"channel": "messenger", "library": LIB_SERVER, "traits": {"phone": p.phone_e164}}
        ids = [("anonymous_id", anon), ("phone", p.phone_e164)]
        self.emit(t, {"type": "track", "event": "Conversation Started", "anonymousId": anon,
                      "properties": {"provider": provider}, "context": ctx}, ids)  # fmt: skip
        for _ in range(1 + int(rng.expovariate(0.7))):
            t += g.ri(5000, 240_000)
            self.emit(t, {"type": "track", "event": "Message Received", "anonymousId": anon,
                          "properties": {"provider": provider, "direction": "inbound"}, "context": ctx},
                      ids)  # fmt: skip

    # ---- stores -----------------------------------------------------------------------------------

    def store_visit(self, day: int, force_card: bool = False) -> int | None:
        """Write one POS receipt; returns its UTC ms or None when it falls outside the window."""
        p, g, rng = self.p, self.g, self.rng
        stores = g.stores_by_country[p.country.code]
        st = p.store if rng.random() < 0.8 else rng.choice(stores)
        epoch_day = g.start_epoch_day + day
        wd = (epoch_day + 3) % 7
        if st.open_s[wd] is None:  # closed (e.g. Sunday in Poland): go the day before
            epoch_day -= 1
            wd = (wd - 1) % 7
            if st.open_s[wd] is None:
                return None
        hours = st.open_s[wd]
        assert hours is not None
        open_s, close_s = hours
        sec = g.ri(open_s, close_s - 300)
        off = g.offset_s(st.timezone, epoch_day)
        ms = (epoch_day * 86400 + sec - off) * 1000
        if not g.start_ms <= ms < g.end_ms:
            return None
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        sign = "+" if off >= 0 else "-"
        oh, om = divmod(abs(off) // 60, 60)
        ordered_at = f"{g.day_str(epoch_day)}T{h:02d}:{m:02d}:{s:02d}{sign}{oh:02d}:{om:02d}"

        card = email = phone = ""
        r = rng.random()
        if p.card and (force_card or r < 0.62):
            card = p.card
            self.g._use(p, "loyalty_card", card, ms)
        elif (p.card and r < 0.77) or (not p.card and r < 0.22):
            email = p.email.upper() if rng.random() < 0.3 else p.email
            self.g._use(p, "email", p.email, ms)
        elif (p.card and r < 0.92) or (not p.card and r < 0.45):
            phone = p.phone_national if rng.random() < 0.7 else re.sub(r"\D", "", p.phone_national)
            self.g._use(p, "phone", p.phone_e164, ms)

        order_id = f"POS-{g.hex_id(16)}"
        n_lines = 1 + min(5, int(rng.expovariate(0.9)))
        products = self.pick_products(ms, n_lines)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cur = p.country.currency
        for prod in products:
            qty = 1 if rng.random() < 0.8 else (2 if rng.random() < 0.75 else 3)
            w.writerow((order_id, st.store_id, ordered_at, card, email, phone, prod.sku, qty,
                        f"{_local_price(prod.price, cur):.2f}", cur))  # fmt: skip
        for line in buf.getvalue().splitlines(keepends=True):
            self.orders.append((ms, line))
        g.counts["orders"] += 1
        g.counts["order_lines"] += len(products)
        self.purchases.append((ms, None))
        return ms
