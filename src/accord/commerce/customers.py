"""Which identifier keys belong to one customer, through the identity graph's public reads."""

from __future__ import annotations

import sqlalchemy as sa

from accord.identity import queries


def keys_of_profile(state: sa.Engine, profile_id: str) -> list[str]:
    """Every identifier key ('type:value') of the live profile PROFILE_ID is (or was merged into)."""
    current = queries.current_profile(state, profile_id)
    if current is None:
        return []
    return [f"{i['type']}:{i['value']}" for i in queries.identifiers_of(state, current)]


def keys_of_customer(state: sa.Engine, key: str) -> list[str]:
    """KEY plus every other identifier of the profile holding it (just KEY when nobody holds it yet)."""
    profile_id = queries.profile_for_identifier(state, key)
    keys = keys_of_profile(state, profile_id) if profile_id else []
    return keys if key in keys else [key, *keys]
