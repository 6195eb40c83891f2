"""Errors the apply layer itself answers with, etcd's texts and status, in one table."""

from __future__ import annotations

from typing import ClassVar

from kvorum.mvcc.errors import ErrorSpec

NO_SPACE = ErrorSpec(
    "etcdserver: mvcc: database space exceeded",
    "RESOURCE_EXHAUSTED",
    "etcdserver: mvcc: database space exceeded",
)
CORRUPT = ErrorSpec("etcdserver: corrupt cluster", "DATA_LOSS", "etcdserver: corrupt cluster")


class ApplyError(Exception):
    """Base of the apply layer's own errors; `spec` carries the texts and status."""

    spec: ClassVar[ErrorSpec]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.spec.text)
        self.detail = detail


class NoSpaceError(ApplyError):
    """The backend quota is exhausted (or the NOSPACE alarm is raised)."""

    spec = NO_SPACE


class CorruptError(ApplyError):
    """The CORRUPT alarm is raised: the store refuses reads and writes until it is cleared."""

    spec = CORRUPT


#: error class -> spec, the table the API layer maps through.
ERRORS: dict[type[ApplyError], ErrorSpec] = {NoSpaceError: NO_SPACE, CorruptError: CORRUPT}
