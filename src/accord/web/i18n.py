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


# Words that reach the templates as data (channels, identifier types, roles, merge kinds): key -> English msgid.
LABELS: dict[str, str] = {
    "web": N_("Web"), "app": N_("App"), "email": N_("Email"), "sms": N_("SMS"), "push": N_("Push"),
    "messenger": N_("Messenger"), "social": N_("Social"), "ads": N_("Ads"), "store": N_("Store"),
    "call_center": N_("Call centre"), "direct_mail": N_("Direct mail"), "kiosk": N_("Kiosk"), "other": N_("Other"),
    "phone": N_("Phone"), "loyalty_card": N_("Loyalty card"), "user_id": N_("User id"),
    "customer_id": N_("Customer number"), "anonymous_id": N_("Anonymous id"), "device_id": N_("Device"),
    "push_token": N_("Push token"),
    "admin": N_("admin"), "marketer": N_("marketer"), "analyst": N_("analyst"), "associate": N_("associate"),
    "merge": N_("merge"), "regroup": N_("regroup"), "unmerge": N_("unmerge"),
    "active": N_("active"), "paused": N_("paused"), "stopped": N_("stopped"), "draft": N_("draft"),
}  # fmt: skip

# Titles registered as data (navigation entries, associate screen panels).
DATA_MESSAGES = (
    N_("Overview"),
    N_("Customers"),
    N_("Points"),
    N_("Offers usable here"),
    N_("Pickup orders waiting"),
    N_("Journeys"),
    N_("Segments"),
    N_("Messages"),
    N_("Analytics"),
    N_("Commerce"),
)
