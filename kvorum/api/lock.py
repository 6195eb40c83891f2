"""v3lockpb.Lock over the member's KV, Lease and Watch, as etcd 3.4's v3lock server.

etcd 3.4 builds its Lock service out of an in-process clientv3 (`etcdserver/api/v3lock` with
`clientv3/concurrency.Mutex`): the lock `name` is a key prefix ``name/``, each contender owns
the key ``name/<lease id in hex>`` attached to its lease, and the contender whose key has the
smallest create revision holds the lock. `Lock` waits until every key created before its own is
gone (deleted by `Unlock`, or by its lease expiring); `Unlock` deletes the key.

`LocalClient` is kvorum's counterpart of that in-process client: the KV requests it makes go
through the same checks as the KV service's, and it waits for deletions on the member's own
watch hub. etcd's client carries the caller's token, so with auth enabled every read and
watch it makes needs the caller's read permission, and every write is proposed as the caller
(the auth interceptor sets `CALLER` for these services; reads are checked here, writes where
they are applied). Because etcd's handlers return the client's errors as they are, every error of
these two services reaches the wire with code UNKNOWN and etcd's text (``etcdserver:
requested lease not found``, ``election: not leader``, ...); `abort_unknown` does that.

Where kvorum departs from etcd 3.4, on purpose:

* A waiter whose key vanished while it waited (its lease expired or was revoked) is told
  ``mutex: session is expired`` (etcd 3.5's answer) instead of being granted a lock that no
  key backs any more -- etcd 3.4 returns success there, a known bug fixed in 3.5.
* A wait whose watch was cancelled by compaction starts over from a fresh read instead of
  failing the request with ``required revision has been compacted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, NoReturn

import grpc

from kvorum.api import convert, validate
from kvorum.api.errors import ApiError, status_of
from kvorum.api.member import AuthMember, LeaseMember, Member
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from kvorum.api.watch import WatchService
from kvorum.apply import payload
from kvorum.auth.context import CALLER
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    EventType,
    KeyValue,
    RangeResponse,
    TxnResponse,
)
from kvorum.watch import CreateRequest, WatchResponse

__all__ = [
    "SESSION_TTL_S",
    "LocalClient",
    "LockServicer",
    "SessionExpiredError",
    "abort_unknown",
    "compare_created_at",
    "contender_key",
    "first_created",
    "prefix_end",
    "txn_range_kvs",
]

log = logging.getLogger("kvorum.api.lock")

#: clientv3/concurrency's default session TTL: what a request with lease 0 is given.
SESSION_TTL_S = 60
#: Background cleanups (deleting the key of a cancelled waiter) kept alive at once; beyond it
#: a cleanup is skipped and the key is left to its lease, which bounds its life anyway.
CLEANUPS_MAX = 1024

_ASCEND = rpc_pb2.RangeRequest.ASCEND
_DESCEND = rpc_pb2.RangeRequest.DESCEND
_BY_CREATE = rpc_pb2.RangeRequest.CREATE


class SessionExpiredError(ApiError):
    """The waiter's own key is gone: its lease expired or was revoked while it waited."""

    grpc_code = "UNKNOWN"
    text = "mutex: session is expired"


async def abort_unknown(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """End the RPC as etcd's lock and election servers do: code UNKNOWN, etcd's text.

    Their handlers return the error of their in-process client, which carries the text of
    the server's error but no gRPC status, so gRPC sends it as UNKNOWN whatever it was.
    """
    spec = status_of(exc)
    if spec is None:
        log.error("unexpected error in %s: %r", method, exc, exc_info=exc)
        text = str(exc) or type(exc).__name__
    else:
        text = spec.text
    await context.abort(grpc.StatusCode.UNKNOWN, text)
    raise AssertionError("context.abort returned")  # it always raises


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix` (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"  # every byte is 0xff: all keys from prefix on


def contender_key(prefix: bytes, lease_id: int) -> bytes:
    """A contender's key: the prefix and the lease id in lowercase hex (Go's ``%x``)."""
    return prefix + format(lease_id, "x").encode()


def compare_created_at(key: bytes, revision: int) -> rpc_pb2.Compare:
    """The txn guard "`key` was created at `revision`" (0: `key` does not exist)."""
    return rpc_pb2.Compare(
        key=key,
        target=rpc_pb2.Compare.CREATE,
        result=rpc_pb2.Compare.EQUAL,
        create_revision=revision,
    )


def _op_put(key: bytes, value: bytes, lease_id: int) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease_id))


def _op_get(request: rpc_pb2.RangeRequest) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=request)


def _op_delete(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))


def first_created(prefix: bytes) -> rpc_pb2.RangeRequest:
    """clientv3's ``Get(prefix, WithFirstCreate()...)``: the oldest key under the prefix."""
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        limit=1,
        sort_order=_ASCEND,
        sort_target=_BY_CREATE,
    )


class LocalClient:
    """The member's KV, Lease and Watch as etcd's lock and election servers use them.

    KV requests are built as protobuf, checked by `kvorum.api.validate` as the KV service
    checks them (a lock name too large for a request fails as a Put would), and sent to the
    member; watches are watchers on the member's own hub. All of it on the event loop thread.
    """

    def __init__(
        self,
        member: Member,
        lease: LeaseMember,
        watch: WatchService,
        limits: validate.Limits,
        *,
        auth: AuthMember | None = None,
    ) -> None:
        self._member = member
        self._lease = lease
        self._watch = watch
        self._limits = limits
        self._auth = auth
        self._cleanups: set[asyncio.Task[Any]] = set()

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return convert.header(self._member.header(), revision)

    # --- KV and Lease ---------------------------------------------------------------------

    def _check_read(self, key: bytes, range_end: bytes) -> None:
        """The caller's read permission on [key, range_end), as etcd's Range and Watch
        check its in-process client's requests. No caller: auth was off when the call came."""
        store = self._auth.auth if self._auth is not None else None
        caller = CALLER.get()
        if store is not None and caller is not None and store.enabled:
            store.check_permitted(caller, key, range_end, write=False)

    async def range(self, request: rpc_pb2.RangeRequest) -> RangeResponse:
        validate.check_range(request)
        self._check_read(request.key, request.range_end)
        return await self._member.range(payload.range_from_pb(request), False)

    async def txn(self, request: rpc_pb2.TxnRequest) -> TxnResponse:
        validate.check_txn_fields(request, self._limits)
        converted = payload.txn_from_pb(request)
        validate.check_txn(request, converted, self._limits)
        return await self._member.txn(converted, False)

    async def delete(self, key: bytes) -> DeleteRangeResponse:
        validate.check_delete_range(rpc_pb2.DeleteRangeRequest(key=key), self._limits)
        return await self._member.delete_range(DeleteRangeRequest(key))

    async def session_lease(self, lease_id: int) -> int:
        """The lease a request stands on: its own, or for 0 a fresh one of `SESSION_TTL_S`.

        As etcd's servers open a clientv3 session per request: with no lease given, the
        session grants one, which nobody keeps alive -- what it holds ends after a minute.
        """
        if lease_id != 0:
            return lease_id
        _, granted, _ = await self._lease.lease_grant(0, SESSION_TTL_S)
        return granted

    # --- waiting --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(self, request: CreateRequest) -> AsyncIterator[AsyncIterator[WatchResponse]]:
        """One watcher on the member's hub; yields its event and cancel responses in order."""
        # etcd reads an empty watch key as "\0", the smallest key (as the Watch service).
        self._check_read(request.key or b"\0", request.range_end)
        service = self._watch
        stream_id = service.open_stream()
        responses = self._responses(stream_id)
        try:
            service.create(stream_id, request)
            yield responses
        finally:
            await responses.aclose()
            service.close_stream(stream_id)

    async def _responses(self, stream_id: int) -> AsyncGenerator[WatchResponse, None]:
        service = self._watch
        while True:
            for response in service.take(stream_id):
                if response.events or response.canceled:
                    yield response
            await service.wait(stream_id)

    async def wait_delete(self, key: bytes, revision: int) -> bool:
        """Until `key` is deleted at or after `revision`; False if history was compacted
        under the watcher first (the caller reads again)."""
        async with self.watch(CreateRequest(key=key, start_revision=revision)) as responses:
            async for response in responses:
                if response.canceled:
                    return False
                if any(e.type == EventType.DELETE for e in response.events):
                    return True
        raise AssertionError("a hub watcher's responses never end")

    async def wait_deletes(self, prefix: bytes, max_create_revision: int) -> RangeResponse:
        """Until no key under `prefix` was created at or before `max_create_revision`.

        clientv3's waitDeletes: wait for the youngest such key to go, then look again -- so
        each contender watches one key only (no herd when the holder lets go). Returns the
        last read, which found none.
        """
        request = rpc_pb2.RangeRequest(
            key=prefix,
            range_end=prefix_end(prefix),
            limit=1,
            sort_order=_DESCEND,
            sort_target=_BY_CREATE,
            max_create_revision=max_create_revision,
        )
        while True:
            found = await self.range(request)
            if not found.kvs:
                return found
            await self.wait_delete(found.kvs[0].key, found.revision)

    def spawn_cleanup(self, work: Coroutine[Any, Any, object], what: str) -> None:
        """Run `work` to its end even though the RPC that asked for it is gone."""
        if len(self._cleanups) >= CLEANUPS_MAX:
            work.close()
            log.warning("too many cleanups under way; %s is left to its lease", what)
            return
        task = asyncio.get_running_loop().create_task(self._cleanup(work, what))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    @staticmethod
    async def _cleanup(work: Coroutine[Any, Any, object], what: str) -> None:
        try:
            await work
        except Exception as exc:  # the lease still ends the claim; worth a line, no more
            log.warning("%s failed: %s", what, exc)


class LockServicer(v3lock_pb2_grpc.LockServicer):
    """Lock and Unlock, as etcd 3.4's v3lock server answers them."""

    def __init__(self, client: LocalClient) -> None:
        self._client = client

    async def Lock(
        self, request: v3lock_pb2.LockRequest, context: grpc.aio.ServicerContext
    ) -> v3lock_pb2.LockResponse:
        client = self._client
        try:
            lease_id = await client.session_lease(request.lease)
            prefix = request.name + b"/"
            key = contender_key(prefix, lease_id)
            owner = first_created(prefix)
            # Take a place in the queue, or find the one this lease already has (a second
            # Lock with the same lease re-enters); read the holder in the same revision.
            resp = await client.txn(
                rpc_pb2.TxnRequest(
                    compare=[compare_created_at(key, 0)],
                    success=[_op_put(key, b"", lease_id), _op_get(owner)],
                    failure=[_op_get(rpc_pb2.RangeRequest(key=key)), _op_get(owner)],
                )
            )
            my_revision = (
                resp.revision if resp.succeeded else txn_range_kvs(resp, 0)[0].create_revision
            )
            holder = txn_range_kvs(resp, 1)
            if not holder or holder[0].create_revision == my_revision:
                return v3lock_pb2.LockResponse(header=client.header(resp.revision), key=key)
        except Exception as exc:
            await abort_unknown(context, exc, "Lock")
        try:
            await client.wait_deletes(prefix, my_revision - 1)
            # Every older contender is gone; ours must still be there to hold the lock.
            mine = await client.range(rpc_pb2.RangeRequest(key=key))
            if not mine.kvs:
                raise SessionExpiredError(f"key {key!r} is gone")
        except asyncio.CancelledError:
            # The client gave up (or its deadline passed): leave the queue, as etcd does.
            client.spawn_cleanup(client.delete(key), f"leaving lock queue {key!r}")
            raise
        except Exception as exc:
            if not isinstance(exc, SessionExpiredError):
                client.spawn_cleanup(client.delete(key), f"leaving lock queue {key!r}")
            await abort_unknown(context, exc, "Lock")
        return v3lock_pb2.LockResponse(header=client.header(mine.revision), key=key)

    async def Unlock(
        self, request: v3lock_pb2.UnlockRequest, context: grpc.aio.ServicerContext
    ) -> v3lock_pb2.UnlockResponse:
        try:
            resp = await self._client.delete(request.key)
        except Exception as exc:
            await abort_unknown(context, exc, "Unlock")
        return v3lock_pb2.UnlockResponse(header=self._client.header(resp.revision))


def txn_range_kvs(resp: TxnResponse, index: int) -> tuple[KeyValue, ...]:
    """The key-values of the txn's `index`-th response, which is a range."""
    op = resp.responses[index]
    if not isinstance(op, RangeResponse):
        raise AssertionError(f"txn response {index} is {type(op).__name__}, not a range")
    return op.kvs
