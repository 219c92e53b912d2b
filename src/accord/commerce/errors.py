"""Errors a caller of the commerce domain can cause, each with an HTTP status and a stable code."""

from __future__ import annotations


class CommerceError(Exception):
    """A user-caused commerce error (maps to a 4xx answer)."""

    status = 400
    code = "commerce_error"

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(CommerceError):
    """Malformed or out-of-range input."""

    status = 400
    code = "invalid_input"


class NotFound(CommerceError):
    """An unknown location, SKU, reservation, order or appointment."""

    status = 404
    code = "not_found"


class Conflict(CommerceError):
    """The request cannot be met in the current state (no stock, wrong status, slot full, key reused)."""

    status = 409
    code = "conflict"


class InsufficientStock(Conflict):
    """Not enough available-to-promise units."""

    code = "insufficient_stock"
