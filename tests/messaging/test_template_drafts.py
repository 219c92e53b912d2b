"""Unsaved templates: validated and previewed by the same code as a save, with the field and line at fault."""

from __future__ import annotations

import pytest

from accord.messaging.service import MessagingError
from accord.platform import Platform
from tests.messaging.helpers import person

DRAFT = {
    "name": "draft",
    "default_locale": "en",
    "locales": {
        "en": {"sms": {"text": "Hi {{ first_name }}"}},
        "pl": {"email": {"subject": "Cześć {{ first_name }}", "html": "<p>\n{{ first_name }}\n</p>"}},
    },
}


def test_an_unsaved_template_previews_for_a_profile_and_nothing_is_stored(platform: Platform) -> None:
    pid = person(platform, "u-ola", first_name="Ola", locale="pl-PL")
    preview = platform.messaging.preview_spec(DRAFT, profile_id=pid)
    assert preview["locale"] == "pl" and preview["channel_locales"] == {"email": "pl", "sms": "en"}
    assert preview["channels"]["email"]["subject"] == "Cześć Ola"
    assert preview["channels"]["sms"]["sms"] == {"encoding": "GSM-7", "units": 6, "segments": 1}
    assert platform.messaging.list_templates() == []
    with pytest.raises(MessagingError) as unknown:
        platform.messaging.preview_spec(DRAFT, profile_id="01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert unknown.value.code == "unknown_profile"


@pytest.mark.parametrize(
    ("locales", "code", "place", "line"),
    [
        ({"en": {"email": {"subject": "s", "html": "<p>\nHi\n{{ x }</p>"}}}, "template_syntax", "en/email/html", 3),
        ({"en": {"sms": {"text": "{{ unclosed"}}}, "template_syntax", "en/sms/text", 1),
        ({"en": {"sms": {"text": "t"}}, "klingon-xx": {"sms": {"text": "t"}}}, "unknown_locale", "klingon-xx", None),
        ({"en": {"fax": {"text": "t"}}}, "unknown_channel", "en/fax", None),
        ({"en": {"push": {"body": "b"}}}, "invalid_template", "en/push/title", None),
        ({"en": {"sms": {"text": "t", "colour": "red"}}}, "unknown_field", "en/sms", None),
    ],
)
def test_errors_name_the_locale_channel_field_and_line(
    platform: Platform, locales: dict[str, object], code: str, place: str, line: int | None
) -> None:
    spec = {"name": "broken", "default_locale": "en", "locales": locales}
    for attempt in (platform.messaging.compile_template, platform.messaging.save_template):
        with pytest.raises(MessagingError) as error:
            attempt(spec)
        assert (error.value.code, error.value.place, error.value.line) == (code, place, line)
        assert error.value.message.startswith(place.split("/")[0])
        if line is not None:
            assert f"line {line}" in error.value.message
    assert platform.messaging.list_templates() == []  # nothing saved


def test_language_tags_babel_knows_are_accepted(platform: Platform) -> None:
    spec = {"name": "tags", "default_locale": "en", "locales": {}}
    spec["locales"] = {
        tag: {"sms": {"text": "t"}} for tag in ("en", "pl", "pl-PL", "da", "ru", "zh", "zh_Hant", "en-GB")
    }
    assert sorted(platform.messaging.save_template(spec)["locales"]) == sorted(spec["locales"])
