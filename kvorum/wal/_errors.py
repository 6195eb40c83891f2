"""Errors the WAL raises; every text names the file it is about, for an operator."""

from __future__ import annotations

from pathlib import Path


class WALError(Exception):
    """A WAL operation failed. The member must stop: the log's state is not what raft thinks."""


class WALCorruptError(WALError):
    """A record that cannot be a torn tail failed verification.

    Raised for a bad record anywhere but at the very end of the last segment: such a
    record was fsync'd once, so skipping it would silently lose acknowledged data.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"WAL corrupt: {path} at byte offset {offset}: {reason}")


class NotAKvorumWALError(WALError):
    """The segment does not start with kvorum's metadata record (e.g. an etcd WAL)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a kvorum WAL segment: {reason}")
