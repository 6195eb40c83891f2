"""Raised alarms, kept in the backend's `alarm` bucket (etcd's AlarmStore).

An alarm is raised and cleared only by applying a committed AlarmRequest, so every member holds
the same set. Key: member id (8 bytes big-endian) + alarm type (1 byte); value: b"". Writes go
through the apply's open batch, like every other applied change.
"""

from __future__ import annotations

import struct

from kvorum.backend import Backend, schema
from kvorum.membership.types import AlarmMember, AlarmType

_KEY = struct.Struct(">QB")


class AlarmStore:
    """The set of (member, alarm type) pairs currently raised."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def get(self, alarm: AlarmType = AlarmType.NONE) -> tuple[AlarmMember, ...]:
        """The raised alarms of type `alarm`, or all of them for NONE; in key order."""
        with self._backend.view() as txn:
            keys = list(txn.cursor(db=self._backend.db(schema.ALARM)).iternext(values=False))
        found = []
        for key in keys:
            member_id, kind = _KEY.unpack(bytes(key))
            if alarm == AlarmType.NONE or kind == alarm:
                found.append(AlarmMember(member_id, AlarmType(kind)))
        return tuple(found)

    def activate(self, member_id: int, alarm: AlarmType) -> AlarmMember:
        """Raise the alarm (a no-op if it is raised already); returns it."""
        self._backend.batch.write().put(
            _KEY.pack(member_id, alarm), b"", db=self._backend.db(schema.ALARM)
        )
        return AlarmMember(member_id, alarm)

    def deactivate(self, member_id: int, alarm: AlarmType) -> AlarmMember | None:
        """Clear the alarm; returns it, or None if it was not raised."""
        deleted = self._backend.batch.write().delete(
            _KEY.pack(member_id, alarm), db=self._backend.db(schema.ALARM)
        )
        return AlarmMember(member_id, alarm) if deleted else None
