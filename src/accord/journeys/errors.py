"""Errors a user can cause in the journeys domain, each with a code and an HTTP status."""


class JourneyError(Exception):
    """A journey request that cannot be done, explained."""

    def __init__(self, message: str, code: str = "journey_error", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
