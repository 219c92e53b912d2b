"""Errors a client can cause when sending data; mapped to 4xx responses and CLI messages by the faces."""

from __future__ import annotations


class CollectError(Exception):
    """A request-level rejection with a stable code, an HTTP status and a human message."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class InvalidWriteKey(CollectError):
    """No source has the write key given (or none was given)."""

    code = "invalid_write_key"
    status = 401


class PayloadTooLarge(CollectError):
    """The request body is over the 500 KB limit."""

    code = "payload_too_large"
    status = 413


class InvalidMessage(Exception):
    """One message broke the Segment spec; the batch keeps the others."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
