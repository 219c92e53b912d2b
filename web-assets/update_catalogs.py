"""Merge web-assets/messages.pot into every catalog of the web app (what `pybabel update --no-location` did before
Babel 2.18 dropped that option): translations kept, new texts added empty, entries sorted, no source locations."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "web-assets" / "messages.pot"
CATALOGS = ROOT / "src" / "accord" / "web" / "i18n"


def main() -> int:
    with TEMPLATE.open("rb") as handle:
        template = read_po(handle)
    for po in sorted(CATALOGS.glob("*/LC_MESSAGES/messages.po")):
        locale = po.parent.parent.name
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as handle:
            write_po(handle, catalog, no_location=True, sort_output=True, width=120)
        missing = [m.id for m in catalog if m.id and not m.string]
        print(f"{po.relative_to(ROOT)}: {len(catalog)} texts, {len(missing)} to translate")
        for text in missing:
            print(f"  {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
