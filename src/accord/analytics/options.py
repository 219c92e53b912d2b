"""Light shared options (no numeric imports): the default conversion event and lookback windows like '30d'."""

from __future__ import annotations

from datetime import timedelta

from accord.analytics.errors import InvalidInput

DEFAULT_CONVERSION = "Order Completed"


def parse_window(text: str) -> timedelta:
    """'30d', '12h', '2w' or a number of days."""
    text = text.strip().lower()
    units = {"d": 1.0, "h": 1 / 24, "w": 7.0}
    try:
        if text and text[-1] in units:
            return timedelta(days=float(text[:-1]) * units[text[-1]])
        return timedelta(days=float(text))
    except ValueError as exc:
        raise InvalidInput(f"cannot read the window {text!r}: use e.g. 30d, 12h or 2w") from exc
