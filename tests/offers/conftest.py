"""Fixtures for the offers tests: profiles created through the real collection pipeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accord.collect.emit import emit
from accord.platform import Platform
from accord.profiles import service as profiles


@pytest.fixture
def make_profile(platform: Platform) -> Callable[[str], str]:
    """Create a customer known by user id USER (identify through the journal and processor); returns its id."""

    def make(user: str) -> str:
        with platform.state.begin() as conn:
            emit(conn, platform.journal, "test-crm", "crm", [{"type": "identify", "userId": user, "traits": {}}])
        assert platform.processor.drain()
        pid = profiles.resolve(platform.state, platform.rules, f"user_id:{user}")
        assert pid
        return pid

    return make
