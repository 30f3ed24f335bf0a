"""The client's errors: one class per kind of answer, each with the exit code `shears remote` uses,
the server's error `code` and HTTP `status`, and a `fix` (what to do about it) for the one-line message."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REQUEST = 1  # a usage error, or the server refused the request (4xx)
EXIT_JOB_FAILED = 2
EXIT_JOB_CANCELLED = 3
EXIT_TIMEOUT = 4
EXIT_BUDGET = 5
EXIT_UNREACHABLE = 6  # network errors or 5xx answers, still failing after the retries
EXIT_INTERRUPTED = 130


class ShearsError(Exception):
    """An error of the server, of the connection or of the job."""

    exit_code = EXIT_REQUEST
    fix = ""
    """What the caller can do about it, appended to the message as `-> fix`."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.status, self.retry_after = message, code, status, retry_after
        if fix is not None:
            self.fix = fix

    def one_line(self) -> str:
        """The message and its fix on one line, as `shears remote` prints it."""
        text = " ".join(self.message.split())
        return f"{text} -> {self.fix}" if self.fix else text


class Refused(ShearsError):
    """A 4xx: the server refused the request as it is."""


class InvalidRequest(Refused):
    """400/422: a bad spec, a file that is not a model, an unknown device..."""

    fix = "correct the request (the server's message says which field)"


class AuthenticationError(Refused):
    """401: the API key is missing, wrong, expired or revoked."""

    fix = "set SHEARS_API_KEY (or --api-key) to a live key; a server admin makes one with `shears keys create`"


class NotFound(Refused):
    """404: no such model, dataset or job for this key's tenant (or SHEARS_URL is not a Shears server)."""

    fix = "check the id (it belongs to the key's tenant) and that SHEARS_URL is the Shears server's address"


class Conflict(Refused):
    """409: not now (a job not finished yet, a model still used by a running job...)."""

    fix = "wait for the job to end, or cancel it first"


class PayloadTooLarge(Refused):
    """413: the file is over the server's upload limit."""

    fix = "send a smaller file, or a dataset with `shears remote datasets upload --resumable`"


class UnsupportedFormat(Refused):
    """415: the file is not a format the server takes."""

    fix = "send a .keras, .h5 or .tflite model, or an .npz/.zip/.tar/.csv dataset"


class ClientTooOld(Refused):
    """426: this client is older than the server supports."""

    fix = "upgrade the client: pip install --upgrade shears-client"


class QuotaExceeded(Refused):
    """429: over a quota (storage, queued or running jobs); `retry_after` says when to try again."""

    fix = "free space with `shears remote usage` and `shears remote models|datasets|jobs delete`, or retry later"


class ServerUnavailable(ShearsError):
    """The server could not be reached, or kept answering 5xx, after the retries."""

    exit_code = EXIT_UNREACHABLE
    fix = "check SHEARS_URL and that the server is up (GET /healthz), then run the command again"


class JobFailed(ShearsError):
    """The job ended `failed`; `code` and `message` are the job's error."""

    exit_code = EXIT_JOB_FAILED


class JobCancelled(ShearsError):
    """The job was cancelled."""

    exit_code = EXIT_JOB_CANCELLED


class WaitTimeout(ShearsError):
    """The wait passed its timeout before the job finished (the job keeps running)."""

    exit_code = EXIT_TIMEOUT


BY_STATUS: dict[int, type[ShearsError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedFormat,
    422: InvalidRequest,
    426: ClientTooOld,
    429: QuotaExceeded,
}
"""The class for a server's answer, by HTTP status (the server's error code is kept on the instance)."""

BY_CODE: dict[str, type[ShearsError]] = {
    "unauthorized": AuthenticationError,
    "not_found": NotFound,
    "payload_too_large": PayloadTooLarge,
    "unsupported_format": UnsupportedFormat,
    "quota_exceeded": QuotaExceeded,
    "client_too_old": ClientTooOld,
}
"""Codes whose class does not follow from the status alone (the server may send them with another)."""


def for_answer(status: int, code: str | None) -> type[ShearsError]:
    """The error class for an HTTP answer: by the server's code first, then by status."""
    if code in BY_CODE:
        return BY_CODE[code]
    if status in BY_STATUS:
        return BY_STATUS[status]
    return Refused if status < 500 else ServerUnavailable


# The names `shears remote` used before the client was its own distribution.
RemoteError = ShearsError
Unreachable = ServerUnavailable
TimedOut = WaitTimeout
