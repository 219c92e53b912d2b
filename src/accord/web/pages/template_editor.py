"""The template editor: channel variants per locale in a form, a live sandboxed preview for a customer, save."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect

from accord.messaging.service import MessagingError
from accord.messaging.templates import CHANNEL_FIELDS
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.users.roles import Permission, allows
from accord.web.pages.customers import candidate_identifiers
from accord.web.render import gettext_for, render, session_of

EDITOR_LOCALES = ("en", "pl", "da", "ru", "zh")  # the workspace's languages, always offered
MAIN_CHANNELS = ("email", "sms", "push", "in_app")  # shown open; the other channels sit under "More channels"
LONG_FIELDS = frozenset({"html", "text", "body", "script", "payload"})
VARIANT_PREFIX = "v|"  # form fields of variants: v|LOCALE|CHANNEL|FIELD
MAX_FIELD = 100_000
_PROFILE_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass
class Draft:
    """What the editor's form holds: the template as save_template takes it, plus the preview choices."""

    spec: dict[str, Any]
    original: str  # the saved template's name when editing; "" when creating
    preview_customer: str
    preview_locale: str
    locales: list[str]  # locales the form shows (the five, the template's own, anything posted)


def channel_fields(channel: str) -> list[str]:
    """The fields of a channel variant in the order the editor shows them (required first)."""
    required, optional = CHANNEL_FIELDS[channel]
    return [*required, *optional]


def editor_channels() -> list[str]:
    """Every channel the messaging domain knows, the four main ones first."""
    return [*MAIN_CHANNELS, *(c for c in CHANNEL_FIELDS if c not in MAIN_CHANNELS)]


def draft_from_form(form: Any) -> Draft:
    """The template spec from the posted form: empty fields, channels and locales are left out."""
    variants: dict[str, dict[str, dict[str, str]]] = {}
    posted_locales: list[str] = []
    for key, value in form.multi_items():
        if not key.startswith(VARIANT_PREFIX) or not isinstance(value, str):
            continue
        parts = key[len(VARIANT_PREFIX) :].split("|")
        if len(parts) != 3:
            continue
        locale, channel, field = (p.strip() for p in parts)
        if locale and locale not in posted_locales:
            posted_locales.append(locale)
        if value.strip():
            variants.setdefault(locale, {}).setdefault(channel, {})[field] = value[:MAX_FIELD]
    tags = [t.strip() for t in str(form.get("tags", "")).split(",") if t.strip()]
    spec: dict[str, Any] = {
        "name": str(form.get("name", "")).strip(),
        "purpose": str(form.get("purpose", "promotions")),
        "tags": tags,
        "default_locale": str(form.get("default_locale", "en")).strip() or "en",
        "locales": variants,
    }
    skus, categories = _listed(form.get("promotes_skus")), _listed(form.get("promotes_categories"))
    if skus or categories:  # the items it promotes: who bought one within the window is not sent it
        within = str(form.get("promotes_within", "")).strip() or "90d"
        spec["promotes"] = {"skus": skus, "categories": categories, "within": within}
    return Draft(
        spec=spec,
        original=str(form.get("original", "")),
        preview_customer=str(form.get("preview_customer", "")).strip(),
        preview_locale=str(form.get("preview_locale", "")).strip(),
        locales=shown_locales(posted_locales),
    )


def _listed(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def shown_locales(extra: list[str]) -> list[str]:
    """The five workspace locales, then any other locale the template has (en-GB, pl_PL, ...)."""
    return [*EDITOR_LOCALES, *(loc for loc in extra if loc not in EDITOR_LOCALES)]


def find_customer(platform: Platform, text: str) -> str | None:
    """The profile id a preview customer box means: a profile id, TYPE:VALUE, an email, a card or a phone."""
    if not text:
        return None
    if _PROFILE_ID.match(text):
        return text
    for candidate in candidate_identifiers(text):
        try:
            pid = profiles.resolve(platform.state, platform.rules, candidate)
        except profiles.InvalidIdentifier:
            continue
        if pid:
            return pid
    return None


def try_preview(platform: Platform, draft: Draft) -> dict[str, Any]:
    """The draft validated and rendered by the messaging domain for the chosen customer (nothing saved)."""
    pid = find_customer(platform, draft.preview_customer)
    missing_customer = bool(draft.preview_customer) and pid is None
    spec = {**draft.spec, "name": draft.spec["name"] or "new-template"}  # unnamed yet: the name matters at save
    try:
        preview = platform.messaging.preview_spec(spec, profile_id=pid, locale=draft.preview_locale or None)
    except MessagingError as exc:
        if exc.code == "unknown_profile":
            preview = platform.messaging.preview_spec(spec, locale=draft.preview_locale or None)
            missing_customer = True
        else:
            return {"error": exc}
    return {"error": None, "missing_customer": missing_customer, **preview}


def saved_draft(platform: Platform, name: str) -> Draft:
    """A saved template as the editor shows it."""
    compiled = platform.messaging.template(name)
    spec = {
        "name": compiled.name,
        "purpose": compiled.purpose,
        "tags": list(compiled.tags),
        "default_locale": compiled.default_locale,
        "locales": compiled.variants,
    }
    if compiled.promotes is not None:
        spec["promotes"] = compiled.promotes.to_dict()
    return Draft(spec, compiled.name, "", "", shown_locales(list(compiled.variants)))


def new_draft() -> Draft:
    """A blank template in English with an email and an SMS to start from."""
    spec = {
        "name": "",
        "purpose": "promotions",
        "tags": [],
        "default_locale": "en",
        "locales": {
            "en": {
                "email": {
                    "subject": "Hello {{ first_name | default('there') }}",
                    "text": "Hi {{ first_name | default('there') }},\n\n",
                },
                "sms": {"text": "Hi {{ first_name | default('there') }}: "},
            }
        },
    }
    return Draft(spec, "", "", "", list(EDITOR_LOCALES))


def error_reason(error: MessagingError | None) -> str:
    """The error's message without the place and line it starts with (the page shows those apart)."""
    if error is None:
        return ""
    message = error.message
    if error.place and message.startswith(error.place):
        rest = message[len(error.place) :]
        if error.line is not None and rest.startswith(f", line {error.line}"):
            rest = rest[len(f", line {error.line}") :]
        if rest.startswith(": "):
            return rest[2:]
    return message


def error_place(error: MessagingError | None) -> str:
    """The form element id an error belongs to: a field (f-pl-email-html), a channel, a locale, or the name."""
    if error is None or not error.place:
        return ""
    return "f-" + error.place.replace("/", "-")


class TemplateEditorController(Controller):
    """/messages/templates/new, /messages/templates/{name}/edit, the live preview and save (marketers, admins)."""

    path = "/messages/templates"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/new")
    async def new_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        return self._editor(request, new_draft(), None)

    @get("/{name:str}/edit")
    async def edit_page(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[str]:
        platform: Platform = request.app.state.platform
        try:
            draft = await asyncio.to_thread(saved_draft, platform, name)
        except MessagingError as exc:
            raise NotFoundException(detail=exc.message) from exc
        return self._editor(request, draft, None)

    @post("/preview", opt={"write_permission": None}, status_code=200)
    async def preview(self, request: Request[Any, Any, Any]) -> Response[str]:
        """The live preview: validates and renders only, so every role that may open the editor may preview."""
        platform: Platform = request.app.state.platform
        draft = draft_from_form(await request.form())
        result = await asyncio.to_thread(try_preview, platform, draft)
        return render(
            request,
            "partials/template_preview.html",
            preview=result,
            error_place=error_place(result["error"]),
            error_reason=error_reason(result["error"]),
        )

    @post("/", status_code=303)
    async def save(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Save through the messaging domain's one write path (the one `accord template apply` and the API use)."""
        platform: Platform = request.app.state.platform
        draft = draft_from_form(await request.form())
        _ = gettext_for(request)

        def run() -> dict[str, Any]:
            name = draft.spec["name"]
            if name and name != draft.original:  # creating (or renaming): never overwrite another template
                try:
                    platform.messaging.template(name)
                except MessagingError:
                    pass
                else:
                    raise MessagingError(
                        _("A template named {name} already exists; open it to edit it.").format(name=name),
                        "template_exists",
                        409,
                        place="name",
                    )
            return platform.messaging.save_template(draft.spec)

        try:
            saved = await asyncio.to_thread(run)
        except MessagingError as exc:
            return self._editor(request, draft, exc, status=422)
        return Redirect(f"/messages/templates/{quote(saved['name'], safe='')}?saved=1", status_code=303)

    def _editor(
        self, request: Request[Any, Any, Any], draft: Draft, error: MessagingError | None, status: int = 200
    ) -> Response[str]:
        session = session_of(request)
        assert session is not None
        platform: Platform = request.app.state.platform
        return render(
            request,
            "template_editor.html",
            status_code=status,
            draft=draft,
            error=error,
            error_place=error_place(error),
            error_reason=error_reason(error),
            channels=editor_channels(),
            main_channels=MAIN_CHANNELS,
            channel_fields=channel_fields,
            long_fields=LONG_FIELDS,
            purposes=sorted(platform.messaging.consents.purposes),
            can_change=allows(session.user.role, Permission.change),
        )
