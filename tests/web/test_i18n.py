"""Every message of the web app has a Polish translation; languages come from the user or Accept-Language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from accord.web.i18n import parse_accept_language, pick_locale, translations

WEB = Path(__file__).parents[2] / "src" / "accord" / "web"


def test_every_message_is_translated_to_polish() -> None:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    ids = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), method_map, keywords={"_": None, "N_": None, "gettext": None}
        )
    }
    assert len(ids) > 80
    with (WEB / "i18n" / "pl" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="pl")
    missing = sorted(i for i in ids if not (catalog.get(i) and catalog.get(i).string))
    assert missing == []
    assert translations("pl").gettext("Customers") == "Klienci"


def test_language_choice() -> None:
    assert parse_accept_language("en;q=0.4, pl-PL, pl;q=0.9") == ["pl_PL", "pl", "en"]
    assert pick_locale(None, "pl-PL,pl;q=0.9") == "pl"
    assert pick_locale(None, "de-DE, fr;q=0.8") == "en"
    assert pick_locale("en", "pl") == "en"
    assert pick_locale(None, None) == "en"
