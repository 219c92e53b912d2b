"""Errors a user can cause when asking for an analysis (bad file, bad column, bad option)."""

from __future__ import annotations


class AnalyticsError(Exception):
    """A request that cannot be analysed as asked; CODE and MESSAGE go to the user (HTTP 400, CLI message)."""

    status_code = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(AnalyticsError):
    """The input data or an option is not usable (missing column, bad value, empty data)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_input", message)


class NotEnoughData(AnalyticsError):
    """The data is valid but too small for the model asked for."""

    def __init__(self, message: str) -> None:
        super().__init__("not_enough_data", message)
