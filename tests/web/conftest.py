"""Web app fixtures: the real app in-process on real files, a demo-like customer across channels, users per role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from accord.api.app import create_app
from accord.api.fastpath import CollectFastPath
from accord.config import load_settings
from accord.users import service as users

PASSWORD = "correct horse battery"
STORE = "st-waw-01"
CARD = "2990000012345"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def customer_messages() -> list[dict[str, Any]]:
    """Ann across six channels: an anonymous web visit that becomes her, the app, email, SMS, a till receipt."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=7)

    def at(day: int, hour: int) -> str:
        return (start + timedelta(days=day, hours=hour)).isoformat().replace("+00:00", "Z")

    messages: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "anon-ann", "name": "Home", "timestamp": at(1, 0),
         "context": {"channel": "web"}},
        {"type": "identify", "anonymousId": "anon-ann", "userId": "u-ann",
         "traits": {"email": "ann@example.com", "first_name": "Ann", "last_name": "Nowak", "phone": "+48601234567"},
         "timestamp": at(1, 1), "context": {"channel": "web"}},
        {"type": "screen", "userId": "u-ann", "name": "Catalog", "timestamp": at(2, 0),
         "context": {"channel": "app"}},
        {"type": "track", "userId": "u-ann", "event": "Email Opened", "properties": {"subject": "Spring"},
         "timestamp": at(3, 0), "context": {"channel": "email"}},
        {"type": "track", "userId": "u-ann", "event": "SMS Clicked", "timestamp": at(4, 0),
         "context": {"channel": "sms"}},
        {"type": "identify", "userId": "u-ann", "traits": {"loyalty_card": CARD},
         "timestamp": at(5, 0), "context": {"channel": "store"}},
        {"type": "track", "userId": "u-ann", "event": "Order Completed",
         "properties": {"order_id": "r-1", "revenue": 120.5, "currency": "PLN", "store_id": STORE},
         "timestamp": at(5, 1), "context": {"channel": "store"}},
        {"type": "track", "userId": "u-bob", "event": "Order Completed",
         "properties": {"order_id": "r-2", "revenue": 10, "currency": "PLN"}, "timestamp": at(6, 0),
         "context": {"channel": "web"}},
    ]  # fmt: skip
    for i, message in enumerate(messages):
        message["messageId"] = f"m-{i}"
    return messages


class Web:
    """A test client on the whole app, with helpers to log in as a role."""

    def __init__(self, client: TestClient, platform: Any) -> None:
        self.client = client
        self.platform = platform

    def add_user(self, email: str, role: str, store: str | None = None) -> users.User:
        return users.add_user(self.platform.state, email, PASSWORD, role, store)

    def csrf(self, html: str) -> str:
        match = _CSRF.search(html)
        assert match, "no csrf_token in the page"
        return match.group(1)

    def login(self, email: str, password: str = PASSWORD, follow: bool = True) -> Any:
        page = self.client.get("/login")
        return self.client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": self.csrf(page.text)},
            follow_redirects=follow,
        )

    def logout(self) -> None:
        page = self.client.get("/customers")
        self.client.post("/logout", data={"csrf_token": self.csrf(page.text)})
        self.client.cookies.clear()

    def profile_id(self, identifier: str) -> str:
        from accord.profiles import service as profiles

        pid = profiles.resolve(self.platform.state, self.platform.rules, identifier)
        assert pid is not None
        return pid


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    settings = load_settings(
        {"ACCORD_HOME": str(tmp_path), "ACCORD_ADMIN_TOKEN": "secret-token", "ACCORD_RESOLVER": "inline"}
    )
    app = create_app(settings)
    with TestClient(CollectFastPath(app), base_url="http://testserver.local") as client:  # type: ignore[arg-type]
        platform = app.state.platform
        auth = {"Authorization": "Bearer secret-token"}
        key = client.post("/api/v1/sources", json={"name": "all", "channel": "auto"}, headers=auth).json()
        response = client.post("/v1/batch", json={"batch": customer_messages()}, auth=(key["write_key"], ""))
        assert response.status_code == 200 and not response.json()["rejected"], response.text
        assert platform.processor.drain()
        yield Web(client, platform)
