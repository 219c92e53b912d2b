"""The Litestar application: wiring, authentication, error shape, OpenAPI, lifespan."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from accord import __version__, heap
from accord.api.admin import AdminController
from accord.api.analytics import AnalyticsController
from accord.api.collect import collect_message, error_body
from accord.api.commerce import CommerceController, commerce_runtime
from accord.api.consent import ConsentController, ConsentPages
from accord.api.identity import IdentityController
from accord.api.journeys import JourneysController, TasksController
from accord.api.loyalty import LoyaltyController
from accord.api.messaging import CallCenterController, MessagingController, Sending, TrackingController
from accord.api.offers import OffersController
from accord.api.segments import SegmentController
from accord.collect.writer import JournalWriter
from accord.config import Settings
from accord.platform import Platform, open_platform
from accord.web.app import web_router


def admin_token(settings: Settings) -> str:
    """The admin bearer token: ACCORD_ADMIN_TOKEN, else one generated once and kept in ACCORD_HOME/admin_token."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.home / "admin_token"
    if path.exists():
        return path.read_text().strip()
    settings.home.mkdir(parents=True, exist_ok=True)
    token = "adm_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _require_admin(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if handler.opt.get("public") or handler.handler_name == "health":
        return
    expected: str = connection.app.state.admin_token
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise NotAuthorizedException(detail="a valid admin bearer token is required (Authorization: Bearer ...)")


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = (exc.extra or {}).get("code") if isinstance(exc.extra, dict) else None
    defaults = {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        422: "unprocessable",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }
    code = code or defaults.get(exc.status_code, "error")
    message = exc.detail
    extra = exc.extra
    if exc.status_code == 400 and extra and not (isinstance(extra, dict) and extra.get("code")):
        message = f"{exc.detail}: {json.dumps(extra, default=str)}"  # e.g. which query parameter was invalid
    return Response(error_body(code, str(message)), status_code=exc.status_code, media_type="application/json")


def _server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    request.logger.exception("unhandled error")
    return Response(
        error_body("internal_error", f"{type(exc).__name__}: the server failed to handle this request"),
        status_code=500,
        media_type="application/json",
    )


def create_app(settings: Settings, platform: Platform | None = None, *, settle_heap: bool = False) -> Litestar:
    """The ASGI app. Opens the stores (unless PLATFORM is given) and runs the writer and processor.
    SETTLE_HEAP (for a server process of its own): freeze the start-up heap once everything is open."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        plat = platform or open_platform(settings)
        writer = JournalWriter(plat.journal, on_commit=plat.processor.wake)
        await writer.start()
        if settings.processing:
            plat.processor.start(
                worker_process=settings.resolver == "process",
                state_url=settings.state_url,
                lock_share=settings.processing_share,
                settle_heap=settle_heap,
            )
            plat.journey_runner.start()
            plat.segments.start()  # time-driven re-evaluation of rolling windows
        app.state.platform = plat
        app.state.writer = writer
        app.state.admin_token = admin_token(settings)
        sending = (
            Sending(plat.messaging).start()
            if settings.processing and os.environ.get("ACCORD_SENDER") != "off"
            else None
        )
        try:
            async with commerce_runtime(app, plat):
                if settle_heap:
                    heap.settle()  # full collections must not stall requests (see accord/heap.py)
                yield
        finally:
            if sending is not None:
                sending.close()
            await writer.stop()
            plat.processor.stop()
            if platform is None:
                plat.close()

    return Litestar(
        route_handlers=[
            collect_message,
            AdminController,
            CommerceController,
            JourneysController,
            TasksController,
            OffersController,
            LoyaltyController,
            MessagingController,
            CallCenterController,
            TrackingController,
            ConsentController,
            ConsentPages,
            AnalyticsController,
            IdentityController,
            SegmentController,
            web_router(),
        ],
        lifespan=[lifespan],
        guards=[_guard],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        openapi_config=OpenAPIConfig(
            title="Accord API",
            version=__version__,
            path="/api/v1",
            render_plugins=[JsonRenderPlugin(path="/openapi.json")],
            description="Segment-compatible collection and the Accord admin API.",
        ),
        debug=False,
    )


def _guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    path = connection.url.path
    if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
        _require_admin(connection, handler)


def server_record(settings: Settings, host: str, port: int) -> Path:
    """Write ACCORD_HOME/server.json so CLI commands find the running server."""
    path = settings.server_file
    path.write_text(json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}))
    return path
