"""Rendering: the Jinja2 environment, per-request context (user, CSRF token, language, formats) and responses."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response
from markupsafe import Markup

from accord import __version__
from accord.users.service import Session
from accord.web import nav
from accord.web.i18n import LABELS, babel_locale, pick_locale, translations

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _tojson_script(value: Any) -> Markup:
    """JSON safe inside <script type="application/json">."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


_env.filters["script_json"] = _tojson_script


@dataclass(frozen=True)
class Formats:
    """Numbers, money and times in the page's language (times are shown in UTC, labelled)."""

    locale: str

    def number(self, value: int | float | None) -> str:
        return "" if value is None else format_decimal(value, locale=babel_locale(self.locale))

    def money(self, minor: int | None, currency: str | None) -> str:
        if minor is None or not currency:
            return ""
        digits = get_currency_precision(currency)
        return format_currency(Decimal(minor).scaleb(-digits), currency, locale=babel_locale(self.locale))

    def percent(self, value: float | None) -> str:
        return "–" if value is None else format_percent(value, "#,##0.0%", locale=babel_locale(self.locale))

    def points(self, value: float | None) -> str:
        """A difference of two rates in percentage points, signed."""
        return (
            "–" if value is None else format_decimal(value * 100, "+#,##0.0;-#,##0.0", locale=babel_locale(self.locale))
        )

    def datetime(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value, "medium", tzinfo=dt.UTC, locale=babel_locale(self.locale)) + " UTC"

    def date(self, value: dt.date | dt.datetime | None) -> str:
        return "" if value is None else format_date(value, "medium", locale=babel_locale(self.locale))


def session_of(request: Request[Any, Any, Any]) -> Session | None:
    """The login session the web guard found for this request (None on public pages)."""
    session: Session | None = request.state.get("web_session")
    return session


def locale_of(request: Request[Any, Any, Any]) -> str:
    """The language of this request's pages."""
    session = session_of(request)
    return pick_locale(session.user.locale if session else None, request.headers.get("accept-language"))


def gettext_for(request: Request[Any, Any, Any]) -> Any:
    """The gettext function of the request's language (for messages built in Python)."""
    return translations(locale_of(request)).gettext


def render_text(request: Request[Any, Any, Any], template: str, **context: Any) -> str:
    """Render TEMPLATE with the shared context."""
    session = session_of(request)
    locale = locale_of(request)
    trans = translations(locale)
    base = {
        "request": request,
        "user": session.user if session else None,
        "csrf_token": session.csrf_token if session else context.pop("csrf_token", ""),
        "locale": locale,
        "_": trans.gettext,
        "gettext": trans.gettext,
        "ngettext": trans.ngettext,
        "label": lambda key: trans.gettext(LABELS.get(str(key), str(key))),
        "fmt": Formats(locale),
        "nav": nav.visible(session.user.role) if session else [],
        "version": __version__,
        "is_htmx": request.headers.get("hx-request") == "true",
    }
    return _env.get_template(template).render(**base, **context)


def render(
    request: Request[Any, Any, Any],
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response[str]:
    """An HTML response of TEMPLATE (pages are per user: never cached); Server-Timing tells the server time."""
    body = render_text(request, template, **context)
    timing = {}
    if (started := request.state.get("web_started")) is not None:
        timing["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return Response(
        body,
        status_code=status_code,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", "Vary": "Cookie, Accept-Language", **timing, **(headers or {})},
    )
