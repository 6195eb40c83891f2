"""The one error the configuration raises, and the exit statuses etcd gives its kinds.

Every module of :mod:`kvorum.config` reports a refused input as :class:`ConfigError`; the
status tells the ``kvorum`` command how to exit, the same way etcd 3.4 exits for that input.
"""

from __future__ import annotations

from typing import Final

EXIT_USAGE: Final = 2  # Go's flag package: the command line itself is malformed
EXIT_INVALID: Final = 1  # etcd's "error verifying flags" and bootstrap failures


class ConfigError(Exception):
    """The configuration cannot be used; ``message`` is one line naming the flag or key."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
