"""UI languages: gettext catalogs (.po, compiled in memory at start) and the choice from the user or the browser."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale
from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = ("en", "pl")
DEFAULT_LOCALE = "en"
CATALOG_DIR = Path(__file__).parent / "i18n"


@cache
def translations(locale: str) -> NullTranslations:
    """The gettext translations of LOCALE (English is the source language)."""
    po = CATALOG_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT_LOCALE or not po.exists():
        return NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def parse_accept_language(header: str) -> list[str]:
    """'pl-PL,pl;q=0.9,en;q=0.5' -> ['pl_PL', 'pl', 'en'] by quality."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.replace("-", "_")))
    return [tag for _q, _i, tag in sorted(ranked) if _q < 0]


def pick_locale(user_locale: str | None, accept_language: str | None) -> str:
    """The user's setting, else the best of the browser's languages that the UI speaks, else English."""
    if user_locale in LOCALES:
        return user_locale
    preferred = parse_accept_language(accept_language or "")
    # match 'pl_PL' to 'pl' too
    candidates = [p for tag in preferred for p in (tag, tag.split("_")[0])]
    return negotiate_locale(candidates, list(LOCALES)) or DEFAULT_LOCALE


@cache
def babel_locale(locale: str) -> Locale:
    """Babel's Locale (number, date and currency formats)."""
    return Locale.parse(locale)


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


# Words that reach the templates as data (roles, channels, identifier types, merge kinds, nav and panel titles).
DATA_MESSAGES = (
    N_("admin"), N_("marketer"), N_("analyst"), N_("associate"),
    N_("web"), N_("app"), N_("email"), N_("sms"), N_("push"), N_("messenger"), N_("social"), N_("ads"), N_("store"),
    N_("call_center"), N_("direct_mail"), N_("kiosk"), N_("other"),
    N_("phone"), N_("loyalty_card"), N_("user_id"), N_("customer_id"), N_("anonymous_id"), N_("device_id"),
    N_("merge"), N_("regroup"), N_("unmerge"),
    N_("Overview"), N_("Customers"), N_("Points"), N_("Offers usable here"), N_("Pickup orders waiting"),
)  # fmt: skip
