"""The web face as one Litestar router: pages, static files, the login guard and HTML error pages."""

from __future__ import annotations

from litestar import Router
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from accord.web.auth import LoginRequired, on_http_error, on_login_required, web_guard
from accord.web.pages import CONTROLLERS
from accord.web.render import STATIC


def web_router() -> Router:
    """Everything the browser sees: /, /login, /customers, /store/{id}, /static (mounted by accord.api.app)."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC],
        opt={"public": True},
        include_in_schema=False,
        cache_control=None,
    )
    return Router(
        path="/",
        route_handlers=[*CONTROLLERS, static],
        guards=[web_guard],
        exception_handlers={LoginRequired: on_login_required, HTTPException: on_http_error},
        include_in_schema=False,
    )
