"""The template and journey editors in-process: live previews, precise errors, saves through the domains, roles."""

from __future__ import annotations

import re
from typing import Any

from accord.journeys import service as journeys
from tests.web.conftest import Web

JOURNEY = """\
name: cart-nudge
description: remind after a cart is left
trigger:
  event: Cart Abandoned
steps:
  - id: wait-1h
    wait: 1h
  - id: reminder
    send: {template: spring-offer, channels: [email]}
  - id: done
    exit: true
"""
TEMPLATE_FIELDS = {
    "name": "spring-offer",
    "purpose": "promotions",
    "default_locale": "en",
    "tags": "spring, vip",
    "v|en|email|subject": "Spring offer for {{ first_name | default('you') }}",
    "v|en|email|text": "Hi {{ first_name }}",
    "v|en|sms|text": "Spring: 15% off, {{ first_name }}",
    "v|pl|email|subject": "Wiosenna oferta dla {{ first_name }}",
    "v|pl|email|html": "<p>Cześć {{ first_name }}!</p>",
    "v|pl|sms|text": "Wiosna: 15% taniej w każdym sklepie, {{ first_name }}",
    "v|da|email|subject": "",  # an empty field leaves the locale out
}


def _hx(web: Web, path: str, data: dict[str, Any], token: str) -> str:
    answer = web.client.post(path, data=data, headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert answer.status_code == 200 and "<html" not in answer.text, answer.text[:500]
    return answer.text


def _marketer(web: Web) -> str:
    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    return web.csrf(web.client.get("/messages/templates/new").text)


def test_template_editor_previews_for_a_customer_counts_sms_segments_and_saves(web: Web) -> None:
    token = _marketer(web)
    editor = web.client.get("/messages/templates/new")
    assert editor.status_code == 200 and 'hx-post="/messages/templates/preview"' in editor.text
    for locale in ("en", "pl", "da", "ru", "zh"):
        assert f'id="f-{locale}-email-subject"' in editor.text and f'id="f-{locale}-push-deep_link"' in editor.text
    preview = _hx(
        web,
        "/messages/templates/preview",
        {**TEMPLATE_FIELDS, "preview_customer": "ann@example.com", "preview_locale": "pl"},
        token,
    )
    pid = web.profile_id("email:ann@example.com")
    assert f'data-profile="{pid}"' in preview and 'data-locale="pl"' in preview
    assert "Wiosenna oferta dla Ann" in preview  # Ann's trait, through the messaging sandbox
    assert "Cześć Ann!" in preview  # the HTML variant in its sandboxed frame
    # "ż" is not in GSM-7: UCS-2, 40 UTF-16 units, one segment
    assert 'id="sms-segments" data-segments="1" data-encoding="UCS-2"' in preview
    english = _hx(web, "/messages/templates/preview", {**TEMPLATE_FIELDS, "preview_customer": pid}, token)
    assert "Spring offer for Ann" in english and 'data-encoding="GSM-7"' in english
    long_sms = {**TEMPLATE_FIELDS, "v|en|sms|text": "x" * 161}
    assert 'data-segments="2" data-encoding="GSM-7"' in _hx(web, "/messages/templates/preview", long_sms, token)
    nobody = _hx(web, "/messages/templates/preview", {**TEMPLATE_FIELDS, "preview_customer": "no@one.example"}, token)
    assert 'id="preview-no-customer"' in nobody and "Spring offer for you" in nobody

    saved = web.client.post("/messages/templates/", data={**TEMPLATE_FIELDS, "csrf_token": token})
    assert saved.status_code == 200 and saved.url.path == "/messages/templates/spring-offer"
    assert 'id="template-saved"' in saved.text
    stored = web.platform.messaging.template("spring-offer")  # saved by the domain's one write path
    assert sorted(stored.variants) == ["en", "pl"] and stored.tags == ["spring", "vip"]
    assert stored.variants["pl"]["email"]["html"] == "<p>Cześć {{ first_name }}!</p>"
    reopened = web.client.get("/messages/templates/spring-offer/edit")
    assert reopened.status_code == 200 and "Wiosenna oferta dla {{ first_name }}" in reopened.text
    assert 'name="name" value="spring-offer" maxlength="200" readonly' in reopened.text
    # creating another template under the same name is refused, and the first is untouched
    again = web.client.post(
        "/messages/templates/", data={**TEMPLATE_FIELDS, "v|en|sms|text": "other", "csrf_token": token}
    )
    assert again.status_code == 422 and "already exists" in again.text
    assert web.platform.messaging.template("spring-offer").variants["en"]["sms"]["text"].startswith("Spring")
    edited = web.client.post(
        "/messages/templates/",
        data={**TEMPLATE_FIELDS, "original": "spring-offer", "v|en|sms|text": "New text", "csrf_token": token},
    )
    assert edited.status_code == 200 and web.platform.messaging.template("spring-offer").variants["en"]["sms"] == {
        "text": "New text"
    }
    assert web.client.get("/messages/templates/nope/edit").status_code == 404


def test_template_editor_errors_are_precise_and_nothing_is_saved(web: Web) -> None:
    token = _marketer(web)
    broken = {**TEMPLATE_FIELDS, "v|pl|email|html": "<p>Cześć</p>\n<p>{% if first_name %}Hi</p>"}
    preview = _hx(web, "/messages/templates/preview", broken, token)
    assert 'id="template-error"' in preview and 'data-place="pl/email/html"' in preview
    assert 'data-line="2"' in preview and "Line 2" in preview and "endif" in preview
    assert 'data-field="f-pl-email-html"' in preview
    refused = web.client.post("/messages/templates/", data={**broken, "csrf_token": token})
    assert refused.status_code == 422 and 'id="field-error"' in refused.text
    assert (
        'id="f-pl-email-html" name="v|pl|email|html" rows="5" class="code" spellcheck="false" aria-invalid="true"'
        in (refused.text)
    )
    assert "{% if first_name %}Hi" in refused.text  # the text is kept for the fix
    assert web.platform.messaging.list_templates() == []
    locale = _hx(web, "/messages/templates/preview", {**TEMPLATE_FIELDS, "v|xx-nope|sms|text": "hi"}, token)
    assert 'data-place="xx-nope"' in locale and "unknown locale" in locale
    channel = _hx(web, "/messages/templates/preview", {**TEMPLATE_FIELDS, "v|pl|fax|text": "hi"}, token)
    assert 'data-place="pl/fax"' in channel and "unknown channel" in channel
    missing = _hx(web, "/messages/templates/preview", {**TEMPLATE_FIELDS, "v|pl|push|body": "only a body"}, token)
    assert 'data-place="pl/push/title"' in missing and "missing title" in missing
    unsafe = {**TEMPLATE_FIELDS, "v|en|sms|text": "a{{ ''.__class__ }}b"}
    sandboxed = _hx(web, "/messages/templates/preview", unsafe, token)  # the sandbox renders it as nothing
    assert '<dd class="wrap" data-field="text">ab</dd>' in sandboxed and "class &#39;str&#39;" not in sandboxed
    assert web.platform.messaging.list_templates() == []


def test_journey_editor_checks_live_draws_the_flow_and_saves_a_version(web: Web) -> None:
    token = _marketer(web)
    new = web.client.get("/journeys/new")
    assert new.status_code == 200 and 'hx-post="/journeys/preview"' in new.text and 'id="diagram-preview"' in new.text
    ok = _hx(web, "/journeys/preview", {"definition": JOURNEY}, token)
    assert 'id="journey-ok" data-steps="3" data-next-version="1"' in ok and "<svg" in ok and "wait-1h" in ok
    wrong = _hx(web, "/journeys/preview", {"definition": JOURNEY.replace("wait: 1h", "wait: one hour")}, token)
    assert 'id="journey-error"' in wrong and 'data-line="7"' in wrong and 'data-field="steps[0].wait"' in wrong
    assert "not a duration" in wrong and "<svg" not in wrong
    kind = _hx(web, "/journeys/preview", {"definition": JOURNEY.replace("exit: true", "teleport: true")}, token)
    assert 'data-field="steps[2]"' in kind and "step kind" in kind
    syntax = _hx(web, "/journeys/preview", {"definition": JOURNEY + "  - id: [oops\n"}, token)
    assert 'data-field="(yaml)"' in syntax and 'data-line="' in syntax

    first = web.client.post("/journeys/", data={"definition": JOURNEY, "csrf_token": token})
    assert first.status_code == 200 and first.url.path == "/journeys/cart-nudge" and 'id="journey-saved"' in first.text
    assert journeys.get(web.platform.state, "cart-nudge")["version"] == 1
    editor = web.client.get("/journeys/cart-nudge/edit")
    assert editor.status_code == 200 and 'id="version-rules"' in editor.text
    assert "finish on the version they entered on" in editor.text and "name: cart-nudge" in editor.text
    text = re.search(r'<textarea id="definition"[^>]*>(.*?)</textarea>', editor.text, re.S)
    assert text is not None
    same = _hx(web, "/journeys/preview", {"definition": _unescape(text.group(1))}, token)
    assert 'data-next-version="1"' in same and "no change" in same  # the YAML shown is the saved definition
    longer = JOURNEY.replace("  - id: done\n", "  - id: second\n    wait: 2d\n  - id: done\n")
    check = _hx(web, "/journeys/preview", {"definition": longer}, token)
    assert 'data-steps="4" data-next-version="2"' in check and "second" in check
    refused = web.client.post(
        "/journeys/",
        data={"definition": longer.replace("2d", "2 days"), "original": "cart-nudge", "csrf_token": token},
    )
    assert refused.status_code == 422 and 'id="journey-error"' in refused.text and "2 days" in refused.text
    assert journeys.get(web.platform.state, "cart-nudge")["version"] == 1
    saved = web.client.post("/journeys/", data={"definition": longer, "original": "cart-nudge", "csrf_token": token})
    assert saved.status_code == 200 and 'data-version="2"' in saved.text and 'id="journey-saved"' in saved.text
    assert [s["id"] for s in journeys.get(web.platform.state, "cart-nudge")["definition"]["steps"]] == [
        "wait-1h",
        "reminder",
        "second",
        "done",
    ]
    clash = web.client.post("/journeys/", data={"definition": JOURNEY, "csrf_token": token})  # "new" with a used name
    assert clash.status_code == 422 and "already exists" in clash.text
    assert journeys.get(web.platform.state, "cart-nudge")["version"] == 2
    assert web.client.get("/journeys/nope/edit").status_code == 404


def test_journey_editor_pause_resume_and_stop(web: Web) -> None:
    token = _marketer(web)
    journeys.apply(web.platform.state, JOURNEY, activate=True)
    editor = web.client.get("/journeys/cart-nudge/edit")
    assert 'id="journey-controls"' in editor.text and 'value="paused"' in editor.text
    web.client.post("/journeys/cart-nudge/status", data={"status": "paused", "csrf_token": token})
    assert journeys.get(web.platform.state, "cart-nudge")["status"] == "paused"
    paused = web.client.get("/journeys/cart-nudge/edit")
    assert "Resume" in paused.text and "keeps its status" in paused.text
    web.client.post("/journeys/", data={"definition": JOURNEY.replace("1h", "2h"), "csrf_token": token,
                                        "original": "cart-nudge"})  # fmt: skip
    after = journeys.get(web.platform.state, "cart-nudge")
    assert after["version"] == 2 and after["status"] == "paused"  # a new version keeps the status


def test_editors_roles_analyst_reads_and_checks_but_cannot_save_associate_refused(web: Web) -> None:
    journeys.apply(web.platform.state, JOURNEY, activate=True)
    web.platform.messaging.save_template(
        {"name": "t", "default_locale": "en", "locales": {"en": {"sms": {"text": "hello"}}}}
    )
    web.add_user("a@example.com", "analyst")
    web.login("a@example.com")
    pages = ("/messages/templates/new", "/messages/templates/t/edit", "/journeys/new", "/journeys/cart-nudge/edit")
    for path in pages:
        page = web.client.get(path)
        assert page.status_code == 200, path
        assert 'id="save-template"' not in page.text and 'id="save-journey"' not in page.text
    token = web.csrf(web.client.get("/journeys/cart-nudge/edit").text)
    assert 'id="journey-ok"' in _hx(web, "/journeys/preview", {"definition": JOURNEY}, token)  # checking is reading
    assert "Spring" in _hx(web, "/messages/templates/preview", TEMPLATE_FIELDS, token)
    changes = {
        "/messages/templates/": {**TEMPLATE_FIELDS, "csrf_token": token},
        "/journeys/": {"definition": JOURNEY.replace("1h", "3h"), "original": "cart-nudge", "csrf_token": token},
        "/journeys/cart-nudge/status": {"status": "paused", "csrf_token": token},
    }
    for path, data in changes.items():
        assert web.client.post(path, data=data).status_code == 403, path
    assert [t["name"] for t in web.platform.messaging.list_templates()] == ["t"]
    assert journeys.get(web.platform.state, "cart-nudge")["version"] == 1
    assert journeys.get(web.platform.state, "cart-nudge")["status"] == "active"
    web.logout()

    web.add_user("clerk@example.com", "associate", "st-waw-01")
    web.login("clerk@example.com")
    token = web.csrf(web.client.get("/store/st-waw-01").text)
    for path in pages:
        assert web.client.get(path).status_code == 403, path
    for path in ("/messages/templates/preview", "/journeys/preview", *changes):
        answer = web.client.post(path, data={**TEMPLATE_FIELDS, "definition": JOURNEY, "csrf_token": token})
        assert answer.status_code == 403, path
    web.logout()

    web.add_user("m@example.com", "marketer")
    web.login("m@example.com")
    no_token = web.client.post("/journeys/", data={"definition": JOURNEY.replace("1h", "3h")})
    assert no_token.status_code == 403  # CSRF like every other form
    assert journeys.get(web.platform.state, "cart-nudge")["version"] == 1


def test_the_editor_shows_every_ready_made_journey_as_yaml_that_parses_to_the_same_definition() -> None:
    import json

    from accord.web.pages.journey_editor import definition_yaml

    for name, text in journeys.library().items():
        source = journeys.definition_of(text).source
        stored = json.loads(json.dumps(source, sort_keys=True))  # as the state store keeps it
        shown = definition_yaml(stored)
        assert shown.startswith(f"name: {source['name']}\n"), name
        assert journeys.definition_of(shown).source == source, name


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_the_step_form_writes_a_checked_step_into_the_text(web: Web) -> None:
    token = _marketer(web)
    form = {"definition": JOURNEY, "csrf_token": token}
    page = web.client.get("/journeys/new")
    assert 'id="step-form"' in page.text and 'hx-post="/journeys/steps"' in page.text
    added = _hx(web, "/journeys/steps", {**form, "step_kind": "wait", "step_duration": "2d"}, token)
    assert 'id="definition"' in added and 'hx-swap-oob="true"' in added  # the editor's text is replaced
    assert 'data-steps="4"' in added and "id: wait-1\n  wait: 2d\n- id: done" in _unescape(added)
    after = _hx(
        web,
        "/journeys/steps",
        {**form, "step_kind": "send", "step_id": "nudge", "step_after": "wait-1h", "step_template": "t",
         "step_channels": "sms, email"},
        token,
    )  # fmt: skip
    text = _unescape(after)
    assert (
        "- id: wait-1h\n  wait: 1h\n- id: nudge\n  send:\n    template: t\n    channels:\n    - sms\n    - email"
        in text
    )
    refused = _hx(web, "/journeys/steps", {**form, "step_kind": "wait", "step_duration": "soon"}, token)
    assert 'id="step-refused"' in refused and "not a duration" in refused and 'id="definition"' not in refused
    assert 'data-line=""' in refused  # a line of a text the editor does not show would mislead
    twice = _hx(web, "/journeys/steps", {**form, "step_kind": "exit", "step_id": "done"}, token)
    assert "used twice" in twice and 'id="definition"' not in twice
    nowhere = _hx(web, "/journeys/steps", {**form, "step_kind": "exit", "step_after": "nope"}, token)
    assert "no step &#39;nope&#39;" in nowhere
    broken = _hx(web, "/journeys/steps", {**form, "definition": "name: [", "step_kind": "exit"}, token)
    assert 'id="step-refused"' in broken and 'data-field="(yaml)"' in broken
    assert journeys.list_journeys(web.platform.state) == []  # the form never saves


def test_template_editor_declares_promoted_items_and_keeps_them_through_an_edit(web: Web) -> None:
    token = _marketer(web)
    promoted = {**TEMPLATE_FIELDS, "promotes_skus": "SKU-RUN-42, SKU-RUN-43", "promotes_within": "30d"}
    bad = _hx(web, "/messages/templates/preview", {**promoted, "promotes_within": "a month"}, token)
    assert 'data-place="promotes"' in bad and "promotes.within" in bad
    refused = web.client.post("/messages/templates/", data={**promoted, "promotes_within": "soon", "csrf_token": token})
    assert refused.status_code == 422 and web.platform.messaging.list_templates() == []
    saved = web.client.post("/messages/templates/", data={**promoted, "csrf_token": token})
    assert saved.status_code == 200
    stored = web.platform.messaging.template("spring-offer").promotes
    assert stored is not None and stored.to_dict() == {"skus": ["SKU-RUN-42", "SKU-RUN-43"], "within": "30d"}
    reopened = web.client.get("/messages/templates/spring-offer/edit").text
    assert 'name="promotes_skus" value="SKU-RUN-42, SKU-RUN-43"' in reopened
    assert 'name="promotes_within" value="30d"' in reopened
    # saving the edited text again keeps the declaration (the form carries it)
    fields = {**TEMPLATE_FIELDS, "original": "spring-offer", "v|en|sms|text": "New", "csrf_token": token}
    web.client.post("/messages/templates/", data={**fields, "promotes_skus": "SKU-RUN-42", "promotes_within": "30d"})
    again = web.platform.messaging.template("spring-offer").promotes
    assert again is not None and again.skus == ("SKU-RUN-42",)
    web.client.post("/messages/templates/", data=fields)  # cleared in the form: the template promotes nothing
    assert web.platform.messaging.template("spring-offer").promotes is None
