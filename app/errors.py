"""Errors the caller can fix: typed, with a code, turned into `{"error": {...}}` in one place."""

from contract.errors import PruningError


class ShearsError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Unauthorized(ShearsError):
    status_code = 401
    code = "unauthorized"


class NotFound(ShearsError):
    status_code = 404
    code = "not_found"


class InvalidInput(ShearsError):
    status_code = 422
    code = "invalid_input"


class Conflict(ShearsError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ShearsError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ShearsError):
    status_code = 415
    code = "unsupported_format"


class TooManyRequests(ShearsError):
    status_code = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class InsufficientStorage(ShearsError):
    """The server's disk (or quota) is full: its problem, not the caller's file."""

    status_code = 507
    code = "insufficient_storage"
    retry_after = 60


def rejected(exc: PruningError) -> InvalidInput:
    """An engine check that refused the caller's file, as a 422 with the engine's code."""
    return InvalidInput(exc.message, code=exc.code)
