"""Log in, log out, and the UI language setting."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect

from accord.platform import Platform
from accord.users import service as users
from accord.users.roles import Role
from accord.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    login_csrf_cookie,
    new_csrf_token,
    safe_next,
    session_cookie,
    tokens_match,
)
from accord.web.render import gettext_for, render, session_of


class LoginForm(msgspec.Struct):
    """The login form."""

    email: str = ""
    password: str = ""
    csrf_token: str = ""
    next: str = ""


class LanguageForm(msgspec.Struct):
    """The language switcher ('' follows the browser)."""

    locale: str = ""
    csrf_token: str = ""
    next: str = ""


def home_of(user: users.User) -> str:
    """Where a user lands after login."""
    if user.role is Role.associate:
        return f"/store/{user.store_id}"
    return "/"


def _login_page(request: Request[Any, Any, Any], token: str, status: int = 200, **context: Any) -> Response[str]:
    response = render(request, "login.html", status_code=status, csrf_token=token, **context)
    response.set_cookie(login_csrf_cookie(request, token))
    return response


class SessionController(Controller):
    """/login, /logout, /settings/language."""

    include_in_schema = False

    @get("/login", opt={"public": True})
    async def login_page(self, request: Request[Any, Any, Any], next: FromQuery[str] = "") -> Response[str]:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_csrf_token()
        return _login_page(request, token, next=safe_next(next) or "", email="", error=None)

    @post("/login", opt={"public": True}, status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        _ = gettext_for(request)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not tokens_match(data.csrf_token, expected):
            return _login_page(
                request,
                new_csrf_token(),
                status=403,
                next=safe_next(data.next) or "",
                email=data.email,
                error=_("The form expired. Please try again."),
            )
        platform: Platform = request.app.state.platform
        user = await asyncio.to_thread(users.authenticate, platform.state, data.email, data.password)
        if user is None:
            return _login_page(
                request,
                expected or new_csrf_token(),
                status=401,
                next=safe_next(data.next) or "",
                email=data.email,
                error=_("Wrong email or password."),
            )
        token, _session = await asyncio.to_thread(users.open_session, platform.state, user)
        target = safe_next(data.next) or home_of(user)
        response = Redirect(target, status_code=303)
        max_age = int(users.SESSION_TTL.total_seconds())
        response.set_cookie(session_cookie(request, token, max_age))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @post("/logout", opt={"write_permission": None}, status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        platform: Platform = request.app.state.platform
        await asyncio.to_thread(users.close_session, platform.state, request.cookies.get(SESSION_COOKIE, ""))
        response = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @post("/settings/language", opt={"write_permission": None}, status_code=303)
    async def language(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LanguageForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        session = session_of(request)
        assert session is not None  # the guard let us in
        platform: Platform = request.app.state.platform
        with contextlib.suppress(users.UserError):  # an unknown language leaves the setting unchanged
            await asyncio.to_thread(users.set_locale, platform.state, session.user.id, data.locale or None)
        return Redirect(safe_next(data.next) or home_of(session.user), status_code=303)
