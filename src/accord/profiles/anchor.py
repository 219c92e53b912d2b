"""Who an event a domain emits is about: the Segment identity fields that put it on a profile's timeline."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accord.identity import queries as identity

_PREFERENCE = ("user_id", "loyalty_card", "email", "phone", "device_id", "anonymous_id")
_cache: dict[tuple[int, str], dict[str, Any]] = {}


def identity_fields(state: sa.Engine, profile_id: str) -> dict[str, Any] | None:
    """`userId`/`anonymousId`/`context.externalIds` naming one of PROFILE_ID's identifiers (so the event resolves
    to that profile, and follows it through merges); None when the profile holds no identifier."""
    key = (id(state), profile_id)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    ids = identity.identifiers_of(state, profile_id)
    if not ids:
        return None
    ids.sort(key=lambda i: _PREFERENCE.index(i["type"]) if i["type"] in _PREFERENCE else len(_PREFERENCE))
    best = ids[0]
    fields: dict[str, Any]
    if best["type"] == "user_id":
        fields = {"userId": best["value"]}
    elif best["type"] == "anonymous_id":
        fields = {"anonymousId": best["value"]}
    else:  # a message needs a userId or anonymousId; the external id links it to the profile
        fields = {
            "anonymousId": f"profile:{profile_id}",
            "context": {"externalIds": [{"type": best["type"], "id": best["value"], "collection": "users"}]},
        }
    if len(_cache) > 100_000:
        _cache.clear()
    _cache[key] = fields
    return fields
