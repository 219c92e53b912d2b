"""Normalisation of identifier values: emails trimmed and lower-cased, phones to E.164, types to snake_case."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from accord.identity.rules import IdentityRules

_TYPE_RE = re.compile(r"[^a-z0-9]+")
TYPE_ALIASES = {
    "userid": "user_id",
    "anonymousid": "anonymous_id",
    "deviceid": "device_id",
    "pushtoken": "push_token",
    "loyaltycard": "loyalty_card",
    "loyalty_card_number": "loyalty_card",
    "card": "loyalty_card",
    "mobile": "phone",
    "phone_number": "phone",
    "msisdn": "phone",
    "e_mail": "email",
    "email_address": "email",
    "customerid": "customer_id",
    "crm_id": "customer_id",
}


def normalise_type(raw: str) -> str:
    """'Loyalty Card' -> 'loyalty_card'; known aliases map to the core types."""
    key = _TYPE_RE.sub("_", raw.strip().lower()).strip("_")
    return TYPE_ALIASES.get(key, TYPE_ALIASES.get(key.replace("_", ""), key))


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, region: str) -> str | None:
    """E.164 form of a phone number, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_MEMO_SIZE = 200_000
_memo: dict[tuple[str, str, str | None, frozenset[str], str], str | None] = {}
_MISS = object()


def normalise_value(id_type: str, raw: object, rules: IdentityRules, region: str | None = None) -> str | None:
    """The normalised value of an identifier, or None if it is empty, invalid or blocked."""
    if type(raw) is str:  # the common case, remembered: the same customers' ids come again and again
        memo_key = (id_type, raw, region, rules.blocked, rules.default_region)
        found = _memo.get(memo_key, _MISS)
        if found is not _MISS:
            return found  # type: ignore[return-value]
        value = _normalise(id_type, raw, rules, region)
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[memo_key] = value
        return value
    return _normalise(id_type, raw, rules, region)


def _normalise(id_type: str, raw: object, rules: IdentityRules, region: str | None) -> str | None:
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        raw = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
    if not isinstance(raw, str):
        return None
    value = raw.strip()
    if not value or len(value) > 320 or rules.is_blocked(value):
        return None
    if id_type == "email":
        value = value.lower()
        if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
            return None
    elif id_type == "phone":
        phone = normalise_phone(value, (region or rules.default_region).upper())
        if phone is None or rules.is_blocked(phone.lstrip("+")):
            return None
        value = phone
    return value


def identifier_key(id_type: str, value: str) -> str:
    """The key under which the graph stores an identifier: 'type:value'."""
    return f"{id_type}:{value}"


def split_key(key: str) -> tuple[str, str]:
    """Inverse of identifier_key."""
    id_type, _, value = key.partition(":")
    return id_type, value
