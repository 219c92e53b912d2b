"""Login sessions in secure cookies, the role guard of every page, and CSRF checks on every unsafe request."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect

from accord.users import service as users
from accord.users.roles import Permission, allows, may_open_store
from accord.web.render import gettext_for, render

SESSION_COOKIE = "accord_session"
LOGIN_CSRF_COOKIE = "accord_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(NotAuthorizedException):
    """No live session: the browser is sent to the login page."""


class Forbidden(PermissionDeniedException):
    """The user's role does not allow this page or action."""


class CsrfRejected(PermissionDeniedException):
    """An unsafe request without the session's CSRF token."""


def secure_request(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the browser reached us over HTTPS (directly or through a proxy uvicorn trusts)."""
    return connection.url.scheme == "https"


def session_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str, max_age: int | None) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_request(connection),
        max_age=max_age,
    )


def login_csrf_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> Cookie:
    """Double-submit token of the login form (there is no session yet to bind it to)."""
    return Cookie(
        key=LOGIN_CSRF_COOKIE,
        value=token,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=secure_request(connection),
        max_age=3600,
    )


def new_csrf_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(32)


def tokens_match(sent: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two tokens (both present)."""
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent).encode(), str(expected).encode())


async def sent_csrf_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token an unsafe request carries: the X-CSRF-Token header (htmx) or the csrf_token form field."""
    header = connection.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = connection.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        request: Request[Any, Any, Any] = Request(connection.scope, connection.receive)
        form = await request.form()  # parsed once; the handler reads the cached form
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def web_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every web route: a live session, the role's permission, the store bound to an associate, and CSRF."""
    connection.state.web_started = time.perf_counter()  # reported in the Server-Timing header of the page
    opt = handler.opt
    if opt.get("public"):
        return
    platform = connection.app.state.platform
    token = connection.cookies.get(SESSION_COOKIE, "")
    session = await asyncio.to_thread(users.session_for, platform.state, token) if token else None
    if session is None:
        raise LoginRequired(detail="log in first")
    connection.state.web_session = session
    role = session.user.role
    permission: Permission | None = opt.get("permission")
    if permission is not None and not allows(role, permission):
        raise Forbidden(detail=f"a {role.value} cannot open this page")
    if opt.get("store_screen"):
        store_id = str(connection.path_params.get("store_id", ""))
        if not may_open_store(role, session.user.store_id, store_id):
            raise Forbidden(detail=f"this account may open the screen of store {session.user.store_id} only")
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        write: Permission | None = opt.get("write_permission", Permission.change)
        if write is not None and not allows(role, write):
            raise Forbidden(detail=f"a {role.value} can read but not change anything")
        if not tokens_match(await sent_csrf_token(connection), session.csrf_token):
            raise CsrfRejected(detail="the form is missing its security token or it expired; reload the page")


def safe_next(target: str | None) -> str | None:
    """A local path to return to after login (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def on_login_required(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Send the browser to the login page (htmx requests get an HX-Redirect)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/login?next={quote(target, safe='')}"
    if _is_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": location})
    return Redirect(location, status_code=303)


def on_http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An error page in the user's language (403, 404, 400, ...)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    _ = gettext_for(request)
    titles = {
        403: _("Not allowed"),
        404: _("Not found"),
        400: _("Bad request"),
        405: _("Not allowed"),
    }
    detail = exc.detail if isinstance(exc, HTTPException) else ""
    if isinstance(exc, CsrfRejected):
        detail = _("The form is missing its security token or it expired. Reload the page and try again.")
    elif isinstance(exc, Forbidden):
        detail = _("Your role does not allow this page or action.") + f" ({exc.detail})"
    elif isinstance(exc, NotFoundException):
        detail = exc.detail
    template = "partials/error.html" if _is_htmx(request) else "error.html"
    return render(request, template, status_code=status, title=titles.get(status, _("Error")), detail=detail)
