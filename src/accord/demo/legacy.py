"""Noisy legacy customer records: the same people again, typed by hand years ago, sharing no identifier.

The demo's ``legacy_customers.csv`` is an old store loyalty registry: for about a quarter of the CRM's people it
holds one more record under its own ``legacy_id`` (imported as identifier type ``customer_id``), with typos in
the names, an older (often different) address, missing fields, and sometimes an old phone or email that appears
nowhere else. Only probabilistic matching on name, address and date of birth can join it to the person; the
truth file says who it is. All randomness comes from a separate ``Random`` so that the rest of the demo stays
byte-identical to what it would be without this file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import date, timedelta
from random import Random
from typing import Any, Protocol

from faker import Faker

LEGACY_HEADER = (
    "legacy_id", "first_name", "last_name", "birth_date", "address", "postcode", "city", "country",
    "phone", "email", "created_at",
)  # fmt: skip
LEGACY_SHARE = 0.25  # of the CRM's people have a legacy record
_DAY_MS = 86_400_000
_NEIGHBOURS = "qwertyuiopasdfghjklzxcvbnm"


class _PersonLike(Protocol):
    first_name: str
    last_name: str
    entity: str


def _fold(text: str) -> str:
    """'Łukasz Żółć' -> 'Lukasz Zolc' (how old tills without diacritics stored names)."""
    text = text.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O").replace("æ", "ae")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or text


def typo(rng: Random, text: str) -> str:
    """One keyboard slip: a swapped, dropped, doubled or wrong letter (names of 3+ letters only)."""
    if len(text) < 3 or not text.isalpha() or not text.isascii():
        return text
    i = rng.randrange(1, len(text) - 1)
    r = rng.random()
    if r < 0.3:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if r < 0.55:
        return text[:i] + text[i + 1 :]
    if r < 0.75:
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice(_NEIGHBOURS) + text[i + 1 :]


class LegacyRegistry:
    """Addresses for the CRM and the legacy records, drawn from their own random streams."""

    def __init__(self, seed: int, locales: list[str]) -> None:
        self.rng = Random(seed * 7919 + 17)
        self.fakers: dict[str, Faker] = {}
        for i, loc in enumerate(sorted(locales)):
            fk = Faker(loc)
            fk.seed_instance(seed * 7919 + 100 + i)
            self.fakers[loc] = fk
        self.used_ids: set[str] = set()

    def home(self, locale: str) -> tuple[str, str]:
        """A street address and postcode in the person's country."""
        fk = self.fakers[locale]
        return fk.street_address().replace("\n", " "), fk.postcode()

    def _legacy_id(self) -> str:
        while True:
            lid = f"L{self.rng.randrange(10_000_000, 100_000_000)}"
            if lid not in self.used_ids:
                self.used_ids.add(lid)
                return lid

    def record(
        self,
        p: _PersonLike,
        *,
        locale: str,
        country: str,
        home: tuple[str, str, str],
        other_cities: list[str],
        birth: str,
        before_ms: int,
        fmt_ms: Callable[[int], str],
        new_phone: Callable[[Random], tuple[str, str, str]],
        new_email: Callable[[Random], str],
    ) -> tuple[tuple[Any, ...], list[tuple[str, str]], int] | None:
        """The legacy row of P (or None), the identifiers it carries as (type, normalised value), its time (ms).

        HOME is the CRM's (address, postcode, city); BIRTH the CRM's birth date ("" if unknown); the record was
        created some time before BEFORE_MS.
        """
        rng = self.rng
        if rng.random() >= LEGACY_SHARE:
            return None
        lid = self._legacy_id()
        ids = [("customer_id", lid)]
        first, last = p.first_name, p.last_name
        if rng.random() < 0.25:
            first, last = _fold(first), _fold(last)
        if rng.random() < 0.3:
            first = typo(rng, first)
        if rng.random() < 0.2:
            last = typo(rng, last)
        if rng.random() < 0.04:
            first = ""
        address, postcode, city = home
        r = rng.random()
        if r < 0.35:  # moved since: an older address, sometimes in another city
            address, postcode = self.home(locale)
            if other_cities and rng.random() < 0.2:
                city = rng.choice(other_cities)
        elif r < 0.5:
            address = typo(rng, address.split(" ")[0]) + address[len(address.split(" ")[0]) :]
        elif r < 0.6:
            address = postcode = ""
        if not birth:
            birth = (date(2008, 1, 1) - timedelta(days=rng.randrange(0, 62 * 365))).isoformat()
        r = rng.random()
        if r < 0.05:
            birth = ""
        elif r < 0.1:
            y, m, d = birth.split("-")
            birth = f"{y}-{d}-{m}" if int(d) <= 12 and d != m else f"{y}-{m}-{min(28, int(d) % 28 + 1):02d}"
        phone = email = ""
        if rng.random() < 0.3:
            e164, national, _intl = new_phone(rng)
            phone = national
            ids.append(("phone", e164))
        if rng.random() < 0.2:
            email = new_email(rng)
            ids.append(("email", email))
        created_ms = before_ms - rng.randrange(30 * _DAY_MS, 6 * 365 * _DAY_MS)
        created = fmt_ms(created_ms)[:19] + "Z"
        row = (lid, first, last, birth, address, postcode, city, country, phone, email, created)
        return row, ids, created_ms
