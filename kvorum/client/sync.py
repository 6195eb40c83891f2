"""``Client``: the synchronous face of ``AsyncClient``.

Design choice: one private asyncio event loop runs in a daemon thread per ``Client``, and each
method submits the matching ``AsyncClient`` coroutine to it and waits for the result. So the
sync and async clients share one implementation of failover, retries, watches and
keep-alives (which need a loop running in the background anyway: a lease stays alive while the
caller's thread is busy elsewhere). grpc's aio channels live on that loop only.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import IO, Any, TypeVar

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.client import txn as _txn
from kvorum.client.aio import AsyncClient
from kvorum.client.concurrency import Election, Lock
from kvorum.client.lease import KeepAlive
from kvorum.client.types import (
    Alarm,
    DeleteResult,
    Event,
    GetResult,
    HashKVResult,
    Header,
    KeyValue,
    LeaseGrant,
    LeaseTimeToLive,
    Member,
    PutResult,
    Status,
    TxnResult,
)
from kvorum.client.watch import RECONNECT_TIMEOUT_S, Watch

__all__ = ["Client", "SyncElection", "SyncKeepAlive", "SyncLock", "SyncWatch"]

T = TypeVar("T")
JOIN_TIMEOUT_S = 5.0


class _LoopThread:
    """An event loop running forever in a daemon thread, until ``stop()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="kvorum-client-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync Client cannot be used from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(JOIN_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


class SyncWatch:
    """``for event in c.watch(...)``; ``close()`` (or ``with``) ends the watch."""

    def __init__(self, runner: _LoopThread, watch: Watch) -> None:
        self._runner = runner
        self._watch = watch

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self._runner.run(self._watch.next())
        if event is None:
            raise StopIteration
        return event

    @property
    def next_revision(self) -> int:
        return self._watch.next_revision

    def close(self) -> None:
        self._runner.run(self._watch.aclose())

    def __enter__(self) -> SyncWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncKeepAlive:
    """``with c.keep_alive(lease_id) as ka:`` keeps the lease alive (on the loop thread)."""

    def __init__(self, runner: _LoopThread, keep_alive: KeepAlive) -> None:
        self._runner = runner
        self.inner = keep_alive

    def start(self) -> None:
        self._runner.run(self.inner.start())

    def stop(self) -> None:
        self._runner.run(self.inner.stop())

    def __enter__(self) -> SyncKeepAlive:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SyncLock:
    def __init__(self, runner: _LoopThread, lock: Lock) -> None:
        self._runner = runner
        self.inner = lock

    def acquire(self) -> bytes:
        return self._runner.run(self.inner.acquire())

    def release(self) -> None:
        self._runner.run(self.inner.release())

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SyncElection:
    def __init__(self, runner: _LoopThread, election: Election) -> None:
        self._runner = runner
        self.inner = election

    def campaign(self, value: str | bytes, *, ttl_s: int = 60, timeout_s: float = math.inf) -> None:
        self._runner.run(self.inner.campaign(value, ttl_s=ttl_s, timeout_s=timeout_s))

    def proclaim(self, value: str | bytes) -> None:
        self._runner.run(self.inner.proclaim(value))

    def leader(self) -> KeyValue:
        return self._runner.run(self.inner.leader())

    def resign(self) -> None:
        self._runner.run(self.inner.resign())

    def observe(self) -> Iterator[KeyValue]:
        agen = self.inner.observe()

        async def step() -> KeyValue:
            return await agen.__anext__()

        try:
            while True:
                try:
                    yield self._runner.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(agen.aclose())


class Client:
    """A synchronous etcd v3 client; same arguments and methods as ``AsyncClient``."""

    value = staticmethod(_txn.value)
    version = staticmethod(_txn.version)
    create_revision = staticmethod(_txn.create_revision)
    mod_revision = staticmethod(_txn.mod_revision)
    lease = staticmethod(_txn.lease)
    get_op = staticmethod(_txn.get_op)
    put_op = staticmethod(_txn.put_op)
    delete_op = staticmethod(_txn.delete_op)
    txn_op = staticmethod(_txn.txn_op)

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        keepalive_time_s: float = 30.0,
        keepalive_timeout_s: float = 10.0,
        ca_cert: bytes | None = None,
        cert: bytes | None = None,
        key: bytes | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.aio = AsyncClient(
            endpoints,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            keepalive_time_s=keepalive_time_s,
            keepalive_timeout_s=keepalive_timeout_s,
            ca_cert=ca_cert,
            cert=cert,
            key=key,
            user=user,
            password=password,
        )
        self._runner = _LoopThread()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._runner.loop.is_closed():
            self._runner.run(self.aio.close())
            self._runner.stop()

    @property
    def current_endpoint(self) -> str:
        return self.aio.current_endpoint

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    # KV
    def get(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
        sort_order: str = "none",
        sort_target: str = "key",
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout_s: float | None = None,
    ) -> GetResult:
        return self._run(
            self.aio.get(
                key,
                prefix=prefix,
                range_end=range_end,
                revision=revision,
                limit=limit,
                keys_only=keys_only,
                count_only=count_only,
                serializable=serializable,
                sort_order=sort_order,
                sort_target=sort_target,
                min_mod_revision=min_mod_revision,
                max_mod_revision=max_mod_revision,
                min_create_revision=min_create_revision,
                max_create_revision=max_create_revision,
                timeout_s=timeout_s,
            )
        )

    def put(
        self,
        key: str | bytes,
        value: str | bytes = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout_s: float | None = None,
    ) -> PutResult:
        return self._run(
            self.aio.put(
                key,
                value,
                lease=lease,
                prev_kv=prev_kv,
                ignore_value=ignore_value,
                ignore_lease=ignore_lease,
                timeout_s=timeout_s,
            )
        )

    def delete(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        prev_kv: bool = False,
        timeout_s: float | None = None,
    ) -> DeleteResult:
        return self._run(
            self.aio.delete(
                key, prefix=prefix, range_end=range_end, prev_kv=prev_kv, timeout_s=timeout_s
            )
        )

    def compact(self, revision: int, *, physical: bool = False) -> Header:
        """As ``AsyncClient.compact``; the other methods likewise mirror the async ones."""
        return self._run(self.aio.compact(revision, physical=physical))

    def txn(self, *, timeout_s: float | None = None) -> _txn.Txn[TxnResult]:
        def submit(request: rpc_pb2.TxnRequest) -> TxnResult:
            return self._run(self.aio.submit_txn(request, timeout_s=timeout_s))

        return _txn.Txn(submit)

    # Watch
    def watch(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
    ) -> SyncWatch:
        watch = self.aio.watch(
            key,
            prefix=prefix,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            reconnect_timeout_s=reconnect_timeout_s,
        )
        return SyncWatch(self._runner, watch)

    # Lease
    def grant(self, ttl_s: int, *, lease_id: int = 0) -> LeaseGrant:
        return self._run(self.aio.grant(ttl_s, lease_id=lease_id))

    def revoke(self, lease_id: int) -> Header:
        return self._run(self.aio.revoke(lease_id))

    def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseTimeToLive:
        return self._run(self.aio.time_to_live(lease_id, keys=keys))

    def leases(self) -> tuple[int, ...]:
        return self._run(self.aio.leases())

    def keep_alive(self, lease_id: int) -> SyncKeepAlive:
        return SyncKeepAlive(self._runner, self.aio.keep_alive(lease_id))

    # Cluster
    def member_list(self) -> tuple[Member, ...]:
        return self._run(self.aio.member_list())

    def member_add(self, peer_urls: Sequence[str], *, is_learner: bool = False) -> Member:
        return self._run(self.aio.member_add(peer_urls, is_learner=is_learner))

    def member_remove(self, member_id: int) -> tuple[Member, ...]:
        return self._run(self.aio.member_remove(member_id))

    def member_update(self, member_id: int, peer_urls: Sequence[str]) -> tuple[Member, ...]:
        return self._run(self.aio.member_update(member_id, peer_urls))

    def member_promote(self, member_id: int) -> tuple[Member, ...]:
        return self._run(self.aio.member_promote(member_id))

    # Maintenance
    def status(self, endpoint: str | None = None) -> Status:
        return self._run(self.aio.status(endpoint))

    def hash_kv(self, revision: int = 0, *, endpoint: str | None = None) -> HashKVResult:
        return self._run(self.aio.hash_kv(revision, endpoint=endpoint))

    def defragment(self, endpoint: str | None = None) -> Header:
        return self._run(self.aio.defragment(endpoint))

    def alarms(self) -> tuple[Alarm, ...]:
        return self._run(self.aio.alarms())

    def alarm_disarm(self, member_id: int = 0, alarm: str = "NOSPACE") -> tuple[Alarm, ...]:
        return self._run(self.aio.alarm_disarm(member_id, alarm))

    def snapshot(self, fileobj: IO[bytes]) -> int:
        return self._run(self.aio.snapshot(fileobj))

    def move_leader(self, target_id: int) -> Header:
        return self._run(self.aio.move_leader(target_id))

    # Lock and Election
    def lock(self, name: str | bytes, *, ttl_s: int = 60, timeout_s: float = math.inf) -> SyncLock:
        return SyncLock(self._runner, self.aio.lock(name, ttl_s=ttl_s, timeout_s=timeout_s))

    def election(self, name: str | bytes) -> SyncElection:
        return SyncElection(self._runner, self.aio.election(name))
