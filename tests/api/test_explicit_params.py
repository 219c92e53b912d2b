"""Handlers declare their parameters explicitly (FromPath, FromQuery, JSONBody): Litestar 3 drops the inferred style,
and Litestar 2.25 warns about it when the application is built. A new inferred parameter fails here."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.exceptions import LitestarDeprecationWarning
from litestar.testing import TestClient

from accord.api.app import create_app
from accord.config import load_settings

AUTH = {"Authorization": "Bearer secret-token"}


def test_the_app_builds_without_litestar_deprecations(tmp_path: Path) -> None:
    settings = load_settings({"ACCORD_HOME": str(tmp_path), "ACCORD_ADMIN_TOKEN": "secret-token"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", LitestarDeprecationWarning)
        create_app(settings)  # API and web routes: every handler's signature is parsed here


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {"ACCORD_HOME": str(tmp_path), "ACCORD_ADMIN_TOKEN": "secret-token", "ACCORD_RESOLVER": "inline"}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_explicit_parameters_keep_their_names_defaults_and_errors(client: TestClient) -> None:
    page = client.get("/api/v1/profiles/nobody/events", headers=AUTH)  # path parameter, query defaults
    assert page.status_code in (200, 404)
    bad = client.get("/api/v1/profiles/nobody/events", params={"limit": "many"}, headers=AUTH)
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "bad_request"
    assert '"key": "limit"' in error["message"] and '"source": "query"' in error["message"]
    doc = client.get("/api/v1/openapi.json").json()
    events = {p["name"]: p for p in doc["paths"]["/api/v1/profiles/{profile_id}/events"]["get"]["parameters"]}
    assert events["profile_id"]["in"] == "path" and events["profile_id"]["required"] is True
    assert events["limit"]["in"] == "query" and events["limit"]["required"] is False
    assert events["limit"]["schema"]["default"] == 50
