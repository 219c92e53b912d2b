"""Templates: Jinja2 in a sandbox, channel variants, locale fallback, Babel formatting, SMS segment counting."""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, get_currency_precision
from jinja2 import TemplateError, TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

if TYPE_CHECKING:
    from accord.messaging.purchases import Promotion

CHANNEL_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # channel: (required fields, optional fields)
    "email": (("subject",), ("html", "text", "preheader")),
    "sms": (("text",), ()),
    "push": (("title", "body"), ("deep_link", "image_url")),
    "in_app": (("title", "body"), ("deep_link", "image_url", "cta")),
    "messenger": (("text",), ()),
    "webhook": ((), ("payload",)),
    "direct_mail": (("text",), ("subject",)),  # a letter: printed by a print house from a batch file
    "call": (("script",), ("subject",)),  # what the call-centre agent says
}

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


class TemplateProblem(ValueError):
    """A template that cannot be saved or rendered (syntax, missing variant, unsafe construct)."""

    def __init__(
        self, message: str, code: str = "invalid_template", place: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.place = place  # "locale", "locale/channel" or "locale/channel/field" at fault, when known
        self.line = line  # the 1-based line of a Jinja syntax error inside that field


def sms_segments(text: str) -> dict[str, Any]:
    """Encoding (GSM-7 or UCS-2), length in encoding units and the number of SMS segments billed for TEXT."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        segments = 1 if units <= 160 else math.ceil(units / 153)
        return {"encoding": "GSM-7", "units": units, "segments": segments}
    units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= 70 else math.ceil(units / 67)
    return {"encoding": "UCS-2", "units": units, "segments": segments}


@lru_cache(maxsize=1024)
def _babel_locale(tag: str | None) -> Locale:
    try:
        return Locale.parse((tag or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@lru_cache(maxsize=256)
def known_locale(tag: Any) -> bool:
    """Whether TAG is a language tag Babel knows (pl, pl-PL, pl_PL, zh-Hant): a template locale must be one."""
    if not isinstance(tag, str) or not tag.strip():
        return False
    try:
        Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def resolve_locale(wanted: str | None, available: list[str], default: str) -> str:
    """The template locale for a customer: exact (pl_PL), else its language (pl), else the template default."""
    if wanted:
        norm = {a.replace("-", "_").lower(): a for a in available}
        tag = wanted.replace("-", "_").lower()
        if tag in norm:
            return norm[tag]
        parts = tag.split("_")
        for cut in range(len(parts) - 1, 0, -1):  # zh_hant_tw -> zh_hant -> zh
            candidate = "_".join(parts[:cut])
            if candidate in norm:
                return norm[candidate]
    return default


def _make_env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=Undefined, keep_trailing_newline=False)
    env.globals.clear()  # no range/lipsum/cycler/joiner/namespace: less to abuse, and a cheaper render context
    env.filters["money"] = _money
    env.filters["date"] = _date
    env.filters["datetime"] = _datetime
    return env


def _money(ctx_value: Any, currency: str = "EUR", locale: str = "en") -> str:
    """{{ price_minor | money('PLN', locale) }}: integer minor units formatted for the locale."""
    if isinstance(ctx_value, (Undefined, bool)):
        return ""  # a missing trait prints nothing rather than failing the whole message
    try:
        minor = int(ctx_value)
    except (TypeError, ValueError):
        return ""
    return _format_money(minor, str(currency), str(locale))


@lru_cache(maxsize=65536)
def _format_money(minor: int, currency: str, locale: str) -> str:
    """Formatting is pure: a broadcast's prices repeat, so each (amount, currency, locale) is formatted once."""
    digits = get_currency_precision(currency)
    return str(format_currency(Decimal(minor).scaleb(-digits), currency, locale=_babel_locale(locale)))


def _date(value: Any, fmt: str = "medium", locale: str = "en") -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime | date):
        return str(format_date(value, format=fmt, locale=_babel_locale(locale)))
    return ""


def _datetime(value: Any, fmt: str = "medium", locale: str = "en", tz: str = "UTC") -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        return str(format_datetime(value, format=fmt, tzinfo=zone, locale=_babel_locale(locale)))
    return ""


def _plain(template: Any) -> Any:
    """The template with a plain empty globals dict instead of Jinja's ChainMap over the (emptied) environment
    globals: each render copies the globals' keys, and iterating a ChainMap costs more than the render itself."""
    template.globals = {}
    return template


_TEXT_ENV = _make_env(autoescape=False)
_SEPARATOR = "\x1e" + secrets.token_hex(12) + "\x1e"
_HTML_ENV = _make_env(autoescape=True)


@dataclass
class CompiledTemplate:
    """A saved template compiled once: locale -> channel -> field -> Jinja template."""

    name: str
    purpose: str
    tags: list[str]
    default_locale: str
    variants: dict[str, dict[str, dict[str, str]]]
    compiled: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    promotes: Promotion | None = None  # the items it promotes: people who bought one are not sent it
    # One template per (locale, channel) rendering every field at once, split by a per-process secret separator
    # (a trait value cannot forge it); HTML fields sit in an autoescape block. Per-field templates above stay
    # for error messages and as the fallback.
    combined: dict[tuple[str, str], tuple[Any, list[str]]] = field(default_factory=dict)
    # (customer locale, channel) -> (template locale, formatting locale): customers share few locales.
    _locales: dict[tuple[str | None, str], tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, name: str, purpose: str, tags: list[str], default_locale: str, variants: Mapping[str, Any]
    ) -> CompiledTemplate:
        """Validate and compile; TemplateProblem names the locale, channel and field at fault."""
        if not isinstance(variants, Mapping) or not variants:
            raise TemplateProblem("a template needs at least one locale with channel variants")
        if default_locale not in variants:
            raise TemplateProblem(f"default locale {default_locale!r} has no variants (locales: {sorted(variants)})")
        out = cls(name, purpose, list(tags), default_locale, {})
        for locale, channels in variants.items():
            if not known_locale(locale):
                raise TemplateProblem(
                    f"{locale}: unknown locale; use a language tag such as en, pl, da, ru, zh or pl-PL",
                    "unknown_locale",
                    place=str(locale),
                )
            if not isinstance(channels, Mapping) or not channels:
                raise TemplateProblem(
                    f"locale {locale!r} needs channel variants (email, sms, push, in_app, ...)", place=str(locale)
                )
            out.variants[locale] = {}
            out.compiled[locale] = {}
            for channel, fields in channels.items():
                place = f"{locale}/{channel}"
                if channel not in CHANNEL_FIELDS:
                    raise TemplateProblem(
                        f"{place}: unknown channel; known: {', '.join(CHANNEL_FIELDS)}", "unknown_channel", place
                    )
                if not isinstance(fields, Mapping):
                    raise TemplateProblem(f"{place}: fields must be an object", place=place)
                required, optional = CHANNEL_FIELDS[channel]
                missing = [f for f in required if not fields.get(f)]
                if missing:
                    raise TemplateProblem(f"{place}: missing {', '.join(missing)}", place=f"{place}/{missing[0]}")
                if channel == "email" and not (fields.get("html") or fields.get("text")):
                    raise TemplateProblem(f"{locale}/email: needs html or text", place=f"{place}/text")
                unknown = set(fields) - set(required) - set(optional)
                if unknown and channel != "webhook":
                    raise TemplateProblem(f"{place}: unknown fields {sorted(unknown)}", "unknown_field", place)
                out.variants[locale][channel] = {k: str(v) for k, v in fields.items()}
                compiled: dict[str, Any] = {}
                for key, source in out.variants[locale][channel].items():
                    env = _HTML_ENV if key == "html" else _TEXT_ENV
                    try:
                        compiled[key] = _plain(env.from_string(source))
                    except TemplateSyntaxError as exc:
                        raise TemplateProblem(
                            f"{place}/{key}, line {exc.lineno}: {exc.message}",
                            "template_syntax",
                            place=f"{place}/{key}",
                            line=exc.lineno,
                        ) from exc
                    except TemplateError as exc:
                        raise TemplateProblem(f"{place}/{key}: {exc}", "template_syntax", f"{place}/{key}") from exc
                out.compiled[locale][channel] = compiled
                keys = list(compiled)
                parts = [
                    "{% autoescape true %}" + src + "{% endautoescape %}" if key == "html" else src
                    for key, src in out.variants[locale][channel].items()
                ]
                with contextlib.suppress(TemplateError):  # fields that only parse apart render one by one
                    out.combined[(locale, channel)] = (_plain(_TEXT_ENV.from_string(_SEPARATOR.join(parts))), keys)
        return out

    def channels_for(self, locale: str) -> list[str]:
        """Channels with a variant in LOCALE."""
        return list(self.compiled.get(locale, {}))

    def render(
        self, channel: str, customer_locale: str | None, context: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """(locale used, rendered fields) for CHANNEL, or None when no locale in the fallback chain has it.

        Fallback: the customer's locale, its language, the default locale; a locale without this channel
        falls through to the default."""
        picked = self._locales.get((customer_locale, channel))
        if picked is None:
            chosen = resolve_locale(customer_locale, list(self.compiled), self.default_locale)
            if channel not in self.compiled[chosen]:
                chosen = self.default_locale
            fmt_locale = customer_locale if _same_language(customer_locale, chosen) else chosen
            picked = (chosen, (fmt_locale or chosen).replace("-", "_"))
            if len(self._locales) < 4096:
                self._locales[(customer_locale, channel)] = picked
        chosen = picked[0]
        if channel not in self.compiled[chosen]:
            return None
        ctx = dict(context)
        ctx["locale"] = picked[1]
        rendered: dict[str, Any] = {}
        combined = self.combined.get((chosen, channel))
        if combined is not None:
            template = combined[0]
            try:  # Template.render without merging the (empty) globals into a new dict: the context is ours already
                values = "".join(template.root_render_func(template.new_context(ctx, shared=True))).split(_SEPARATOR)
            except TemplateError:
                values = []  # render field by field below, for a precise error
            if len(values) == len(combined[1]):
                rendered = {key: value.strip() for key, value in zip(combined[1], values, strict=True)}
        for key, tmpl in self.compiled[chosen][channel].items() if not rendered else ():
            try:
                rendered[key] = tmpl.render(ctx).strip()
            except SecurityError as exc:
                raise TemplateProblem(
                    f"{chosen}/{channel}/{key}: unsafe template: {exc}", "unsafe_template", f"{chosen}/{channel}/{key}"
                ) from exc
            except TemplateError as exc:
                raise TemplateProblem(
                    f"{chosen}/{channel}/{key}: {exc}", "render_failed", f"{chosen}/{channel}/{key}"
                ) from exc
        if channel == "sms":
            rendered["sms"] = sms_segments(rendered["text"])
        return chosen, rendered


def _same_language(a: str | None, b: str) -> bool:
    return a is not None and a.replace("-", "_").split("_")[0].lower() == b.replace("-", "_").split("_")[0].lower()


def context_for(traits: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The render context of one recipient: traits at the top level and under `profile`, plus EXTRA (coupon,
    products, links). Values are plain data; the sandbox keeps templates away from Python internals."""
    ctx: dict[str, Any] = {k: v for k, v in traits.items() if isinstance(k, str) and k.isidentifier()}
    ctx["profile"] = dict(traits)
    ctx.setdefault("coupon", None)
    ctx.setdefault("products", [])
    if extra:
        ctx.update(extra)
    return ctx


def check_sample(template: CompiledTemplate) -> None:
    """Render every variant against an empty profile so that unsafe constructs fail at save time, not at send."""
    for locale, channels in template.compiled.items():
        for channel in channels:
            template.render(channel, locale, context_for({}))
