"""The template and journey editors in a real browser (Debian's Chromium via Playwright) against `accord serve`.

A marketer writes a template with a Polish variant, sees it rendered for a demo customer, breaks a Jinja tag and
sees the error inline, saves; then edits a journey's YAML, sees the error of an invalid step, sees the diagram grow
with a valid edit, saves, and finds the new version on the journey page. Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.web.test_browser import PASSWORD, _accord, _chromium_or_skip, _login, _page, _pick_customers, _shot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    home: Path = tmp_path_factory.mktemp("editors") / "home"
    _accord(home, "demo", "--customers", "60", "--days", "30", "--no-serve")
    picked = _pick_customers(home)
    _accord(home, "users", "add", "marketer@example.com", "--role", "marketer", stdin=PASSWORD + "\n")
    server = LiveServer(home).start()
    try:
        with server.admin() as admin:
            profile = admin.get(f"/api/v1/profiles/{picked['profile']}").json()
        traits = profile.get("traits", {})
        first_name = traits.get("first_name")
        first_name = first_name.get("value") if isinstance(first_name, dict) else first_name
        assert first_name, profile
        yield {"url": server.url, "first_name": str(first_name), **picked}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(demo: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.web.test_browser import CHROMIUM

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def test_marketer_writes_a_polish_template_previews_it_for_a_customer_and_saves(
    browser: Any, demo: dict[str, Any]
) -> None:
    page = _page(browser)
    _login(page, demo["url"], "marketer@example.com")
    page.click("nav >> text=Messages")
    page.click("#new-template")
    page.wait_for_selector("#preview-for")  # the starter rendered as the editor opens
    page.fill("#f-name", "spring-pl")
    page.click("#f-pl > summary")
    page.fill("#f-pl-email-subject", "Wiosenna oferta dla {{ first_name }}")
    page.fill("#f-pl-email-html", "<h2>Wiosna!</h2>\n<p>Cześć {{ first_name }}, 15% taniej w każdym sklepie.</p>")
    page.fill("#f-pl-sms-text", "Wiosna: 15% taniej w każdym sklepie, {{ first_name }}")
    page.fill("#preview-customer", demo["email"])
    page.select_option("#preview-locale", "pl")
    page.wait_for_selector(f"#preview-for[data-profile='{demo['profile']}'][data-locale='pl']")
    email = page.locator(".preview-channel[data-channel='email'][data-locale='pl']")
    email.locator("dd[data-field='subject']").wait_for()
    subject = email.locator("dd[data-field='subject']").inner_text()
    assert subject == f"Wiosenna oferta dla {demo['first_name']}"  # personalised from the customer's traits
    frame = page.frame_locator(".preview-channel[data-channel='email'] iframe.html-preview")
    assert demo["first_name"] in frame.locator("p").inner_text()
    assert page.get_attribute("#sms-segments", "data-encoding") == "UCS-2"  # 'ż' is not in GSM-7
    page.evaluate("window.scrollTo(0, 0)")  # the preview panel is sticky: shoot it beside the top of the form
    _shot(page, "template-editor")

    page.fill("#f-pl-email-html", "<h2>Wiosna!</h2>\n<p>{% if first_name %}Cześć {{ first_name }}</p>")
    page.wait_for_selector("#template-error")
    error = page.inner_text("#template-error")
    assert "pl/email/html" in error and "Line 2" in error, error
    assert page.locator("#preview-for").count() == 0
    page.wait_for_selector("#f-pl-email-html[aria-invalid='true']")  # the field the error names is marked
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "template-editor-error")

    page.fill("#f-pl-email-html", "<h2>Wiosna!</h2>\n<p>{% if first_name %}Cześć {{ first_name }}{% endif %}</p>")
    page.wait_for_selector("#preview-for")
    page.click("#save-template")
    page.wait_for_selector("#template-saved")
    assert page.url.endswith("/messages/templates/spring-pl?saved=1")
    page.click("#locales >> text=pl")
    page.wait_for_selector(".preview-channel[data-channel='email'][data-locale='pl']")
    page.context.close()


def _definition(page: Any) -> str:
    return str(page.input_value("#definition"))


def test_marketer_edits_a_journey_sees_errors_and_the_diagram_and_saves_a_version(
    browser: Any, demo: dict[str, Any]
) -> None:
    page = _page(browser)
    _login(page, demo["url"], "marketer@example.com")
    page.click("nav >> text=Journeys")
    page.click("a[href='/journeys/abandoned-cart']")
    version = int(page.get_attribute("#journey-version", "data-version"))
    page.click("#edit-journey")
    page.wait_for_selector("#diagram-preview svg")
    assert "finish on the version they entered on" in page.inner_text("#version-rules")
    original = _definition(page)
    steps = int(page.get_attribute("#journey-ok", "data-steps"))
    assert "id: wait-1h" in original and "wait: 1h" in original

    page.fill("#definition", original.replace("wait: 1h", "wait: one hour"))
    page.wait_for_selector("#journey-error")
    error = page.inner_text("#journey-error")
    assert "steps[0].wait" in error and "not a duration" in error and "Line" in error, error
    line = int(page.get_attribute("#journey-error", "data-line"))
    assert page.locator("#diagram-preview").count() == 0
    assert original.splitlines()[line - 1].strip().startswith("wait:")  # the line the parser reported
    page.click("#journey-error button[data-goto-line]")  # selects that line in the editor
    selected = page.evaluate(
        "(() => { const t = document.activeElement; return t.value.substring(t.selectionStart, t.selectionEnd); })()"
    )
    assert selected.strip() == "wait: one hour", selected
    _shot(page, "journey-editor-error")

    longer = original.replace(
        "- id: reminder", "- id: second-wait\n  wait: 2h\n- id: reminder"
    )  # a valid edit: one more step, drawn at once
    assert longer != original
    page.fill("#definition", longer)
    page.wait_for_selector(f"#journey-ok[data-steps='{steps + 1}']")
    assert page.locator("#diagram-preview svg text", has_text="second-wait").count() >= 1
    assert page.get_attribute("#journey-ok", "data-next-version") == str(version + 1)
    _shot(page, "journey-editor")

    page.click("#step-form-panel > summary")  # the same edit through the step form: a send after second-wait
    page.select_option("#step-kind", "send")
    assert page.is_hidden("#step-duration") and page.is_visible("#step-template")
    page.fill("#step-id", "sms-nudge")
    page.fill("#step-after", "second-wait")
    page.fill("#step-template", "cart-coupon")
    page.fill("#step-channels", "sms")
    page.click("#add-step")
    page.wait_for_selector(f"#journey-ok[data-steps='{steps + 2}']")
    assert "- id: sms-nudge\n  send:\n    template: cart-coupon" in _definition(page)
    assert page.locator("#diagram-preview svg text", has_text="sms-nudge").count() >= 1
    page.click("#save-journey")
    page.wait_for_selector("#journey-saved")
    assert re.search(r"/journeys/abandoned-cart\?saved=1$", page.url), page.url
    assert page.get_attribute("#journey-version", "data-version") == str(version + 1)
    assert page.locator("#flow-diagram text", has_text="second-wait").count() >= 1
    assert page.locator("#flow-diagram text", has_text="sms-nudge").count() >= 1
    page.context.close()
