"""Errors with a code the caller can act on; a failed job carries the code and message."""


class PruningError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
