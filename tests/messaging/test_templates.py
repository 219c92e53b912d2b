"""Templates: sandbox (no leaks), channel variants, SMS segments, locale fallback with Babel (story 11)."""

from __future__ import annotations

import pytest

from accord.messaging.templates import CompiledTemplate, TemplateProblem, context_for, resolve_locale, sms_segments

STORY_11 = {
    "pl": {
        "email": {
            "subject": "Wiosenna wyprzedaż, {{ first_name }}!",
            "text": "Cena: {{ price | money('PLN', locale) }}",
        },
        "sms": {"text": "Cześć {{ first_name }}, wyprzedaż do {{ until | date('long', locale) }}"},
    },
    "da": {"email": {"subject": "Forårsudsalg, {{ first_name }}!", "text": "Pris: {{ price | money('DKK', locale) }}"}},
    "ru": {
        "email": {
            "subject": "Весенняя распродажа, {{ first_name }}!",
            "text": "Цена: {{ price | money('RUB', locale) }}",
        }
    },
    "zh": {"email": {"subject": "春季促销，{{ first_name }}！", "text": "价格：{{ price | money('CNY', locale) }}"}},
    "en": {
        "email": {"subject": "Spring sale, {{ first_name }}!", "text": "Price: {{ price | money('EUR', locale) }}"},
        "sms": {"text": "Hi {{ first_name }}, sale until {{ until | date('long', locale) }}"},
        "push": {"title": "Spring sale", "body": "{{ first_name }}, it is on", "deep_link": "shop://sale"},
    },
}


def story_template() -> CompiledTemplate:
    return CompiledTemplate.build("spring", "promotions", ["spring"], "en", STORY_11)


@pytest.mark.parametrize(
    ("customer_locale", "used", "subject", "price"),
    [
        ("pl-PL", "pl", "Wiosenna wyprzedaż, Ola!", "Cena: 12,50 zł"),
        ("da_DK", "da", "Forårsudsalg, Ola!", "Pris: 12,50 kr."),
        ("ru", "ru", "Весенняя распродажа, Ola!", "Цена: 12,50 ₽"),
        ("zh-Hans-CN", "zh", "春季促销，Ola！", "价格：¥12.50"),
        ("en-GB", "en", "Spring sale, Ola!", "Price: €12.50"),
        ("de-DE", "en", "Spring sale, Ola!", "Price: €12.50"),  # no German version: the default
        (None, "en", "Spring sale, Ola!", "Price: €12.50"),
    ],
)
def test_story_11_each_customer_gets_their_own_language(
    customer_locale: str | None, used: str, subject: str, price: str
) -> None:
    out = story_template().render("email", customer_locale, context_for({"first_name": "Ola", "price": 1250}))
    assert out is not None
    locale, fields = out
    assert (locale, fields["subject"], fields["text"].replace("\xa0", " ")) == (used, subject, price)


def test_a_locale_without_the_channel_falls_back_to_the_default_and_dates_follow_babel() -> None:
    template = story_template()
    ctx = context_for({"first_name": "Ola", "until": "2026-05-03"})
    assert template.render("sms", "pl", ctx) == (
        "pl",
        {"text": "Cześć Ola, wyprzedaż do 3 maja 2026", "sms": sms_segments("Cześć Ola, wyprzedaż do 3 maja 2026")},
    )
    da = template.render("sms", "da", ctx)
    assert da is not None and da[0] == "en" and da[1]["text"] == "Hi Ola, sale until May 3, 2026"
    assert template.render("in_app", "en", ctx) is None
    assert resolve_locale("zh_Hant_TW", ["zh", "en"], "en") == "zh"


def test_sms_segments_under_gsm7_and_ucs2() -> None:
    assert sms_segments("a" * 160) == {"encoding": "GSM-7", "units": 160, "segments": 1}
    assert sms_segments("a" * 161)["segments"] == 2
    assert sms_segments("€" * 80) == {"encoding": "GSM-7", "units": 160, "segments": 1}  # extension: 2 units
    assert sms_segments("ą" * 70) == {"encoding": "UCS-2", "units": 70, "segments": 1}
    assert sms_segments("ą" * 71)["segments"] == 2
    assert sms_segments("春" * 135)["segments"] == 3
    assert sms_segments("😀" * 35)["units"] == 70  # surrogate pairs count twice


INJECTIONS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ config }}{{ request }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ first_name.format.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_injection_in_templates_leaks_nothing(payload: str) -> None:
    try:
        template = CompiledTemplate.build("x", "promotions", [], "en", {"en": {"sms": {"text": "Hi " + payload}}})
        out = template.render("sms", "en", context_for({"first_name": "Ola"}))
    except TemplateProblem:
        return  # refused: fine
    assert out is not None
    text = out[1]["text"]
    for leak in ("class", "subclasses", "module", "function", "environ", "uid=", "built-in", "<", "PATH"):
        assert leak not in text, text


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_injection_in_trait_values_is_just_text(payload: str) -> None:
    template = CompiledTemplate.build(
        "x",
        "promotions",
        [],
        "en",
        {
            "en": {
                "email": {
                    "subject": "Hi {{ first_name }}",
                    "html": "<p>{{ first_name }}</p>",
                    "text": "{{ profile.first_name }}",
                }
            }
        },
    )
    out = template.render("email", "en", context_for({"first_name": payload, "__class__": "x"}))
    assert out is not None
    fields = out[1]
    assert fields["subject"] == "Hi " + payload  # printed verbatim, never evaluated
    assert fields["text"] == payload
    assert (
        "<p>" + payload.replace("'", "&#39;").replace('"', "&#34;") + "</p>" == fields["html"] or "&" in fields["html"]
    )


def test_invalid_templates_are_refused_with_the_place_at_fault() -> None:
    with pytest.raises(TemplateProblem, match="en/sms/text"):
        CompiledTemplate.build("x", "promotions", [], "en", {"en": {"sms": {"text": "{{ unclosed"}}})
    with pytest.raises(TemplateProblem, match="missing title"):
        CompiledTemplate.build("x", "promotions", [], "en", {"en": {"push": {"body": "b"}}})
    with pytest.raises(TemplateProblem, match="default locale"):
        CompiledTemplate.build("x", "promotions", [], "en", {"pl": {"sms": {"text": "t"}}})
    with pytest.raises(TemplateProblem, match="unknown channel"):
        CompiledTemplate.build("x", "promotions", [], "en", {"en": {"fax": {"text": "t"}}})
