"""etcdctl's exit codes and the one exception every command raises to end with one of them."""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_BAD_CONNECTION",
    "EXIT_BAD_FEATURE",
    "EXIT_ERROR",
    "EXIT_INVALID_INPUT",
    "EXIT_PANIC",
    "EXIT_SUCCESS",
    "CtlExit",
]

EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_BAD_ARGS = 128
# What a Go program exits with when it panics; etcdctl panics on a few inputs.
EXIT_PANIC = 2


class CtlExit(Exception):
    """End the run with ``code``; ``message`` (if any) is printed as ``Error: <message>``.

    ``prefix`` is written to stderr before that line, for the log lines etcdctl's client
    library emits on a failed call.
    """

    def __init__(self, code: int, message: str | None, prefix: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.prefix = prefix
