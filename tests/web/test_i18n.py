"""Every message of the web app has a Polish translation; languages come from the user or Accept-Language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

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
    polish = translations("pl")
    missing = sorted(i for i in ids if polish.gettext(i) == i and i not in {"push", "kiosk", "marketer"})
    assert missing == []


def test_language_choice() -> None:
    assert parse_accept_language("en;q=0.4, pl-PL, pl;q=0.9") == ["pl_PL", "pl", "en"]
    assert pick_locale(None, "pl-PL,pl;q=0.9") == "pl"
    assert pick_locale(None, "de-DE, fr;q=0.8") == "en"
    assert pick_locale("en", "pl") == "en"
    assert pick_locale(None, None) == "en"
