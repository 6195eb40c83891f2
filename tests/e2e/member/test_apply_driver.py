"""``ApplyDriver`` in-process over a real backend, store and applier: who is woken with what.

The RaftNode hands committed entries to the driver; each proposer must get its own result --
a response, or the error every member computed alike, in the API layer's classes -- while a
conf change's proposer is left to the RaftNode (it wakes it with the new ConfState).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvorum.api import errors as api_errors
from kvorum.apply import Applier, CompactRequest, encode_payload
from kvorum.backend import Backend
from kvorum.membership import AlarmStore, Member, MembershipStore
from kvorum.membership.types import ConfChangeContext, encode_conf_change_context
from kvorum.mvcc import FutureRevError, MvccStore, PutRequest, PutResponse
from kvorum.raft import ConfChange, ConfChangeType, Entry, EntryType
from kvorum.server import Wait, encode_envelope
from kvorum.server.envelope import encode_conf_change
from kvorum.server.member import ApplyDriver


def _normal(index: int, request_id: int, payload: bytes) -> Entry:
    return Entry(1, index, EntryType.NORMAL, encode_envelope(request_id, payload))


def _conf(index: int, request_id: int, cc: ConfChange) -> Entry:
    return Entry(1, index, EntryType.CONF_CHANGE, encode_conf_change(request_id, cc).encode())


def test_results_errors_and_conf_changes_reach_the_right_waiters(tmp_path: Path) -> None:
    async def main() -> None:
        backend = Backend(str(tmp_path / "db"))
        membership = MembershipStore(backend)
        membership.add(Member(0x1, "a", ("http://127.0.0.1:1",)))
        changes: list[int] = []
        wait = Wait()
        applier = Applier(backend, MvccStore(backend), membership, AlarmStore(backend))
        driver = ApplyDriver(applier, backend, wait, on_membership_change=lambda: changes.append(1))
        put, future_rev, dup_add, new_add = (wait.register(i) for i in (11, 12, 13, 14))
        existing = ConfChangeContext(Member(0x1, "", ("http://127.0.0.1:9",)))
        fresh = ConfChangeContext(Member(0x2, "", ("http://127.0.0.1:2",)))
        await driver.apply(
            [
                Entry(1, 1),  # a new leader's no-op
                _normal(2, 11, encode_payload(PutRequest(b"k", b"v"))),
                _normal(3, 12, encode_payload(CompactRequest(99))),
                _conf(4, 13, ConfChange(ConfChangeType.ADD_NODE, 0x1, _ctx(existing))),
                _conf(5, 14, ConfChange(ConfChangeType.ADD_NODE, 0x2, _ctx(fresh))),
            ],
            None,
        )
        result = put.result()
        assert isinstance(result, PutResponse) and result.revision == 2
        with pytest.raises(FutureRevError):
            future_rev.result()
        # The membership layer's error, handed over as the API layer's twin (etcd's text).
        with pytest.raises(api_errors.MemberExistError, match="member ID already exist"):
            dup_add.result()
        assert not new_add.done()  # the RaftNode wakes it once the core took the change
        assert [m.id for m in membership.members()] == [0x1, 0x2]
        assert changes == [1]  # the transport's peers follow, once per batch
        # Replayed entries (a restart) are skipped: nothing is applied or woken twice.
        again = wait.register(21)
        await driver.apply([_normal(2, 21, encode_payload(PutRequest(b"k", b"v")))], None)
        assert not again.done() and applier.applied_index == 5
        await driver.close()
        backend.close()

    asyncio.run(main())


def _ctx(ctx: ConfChangeContext) -> bytes:
    return encode_conf_change_context(ctx)
