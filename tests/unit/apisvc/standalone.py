"""FOR TESTS ONLY: a one-member `Member` over a real `MvccStore`, with no raft, and a server.

`StandaloneMember` answers every call of `kvorum.api.member.Member` from an `MvccStore` in a
data dir: raft term 1, itself the leader, every write "committed" at once (the LMDB batch is
committed after each write, so a snapshot or another thread sees it). It is driven from one
event loop thread only (the store and its batch transaction belong to one thread).

`StandaloneServer` runs the real gRPC servicers for such a member on 127.0.0.1 in a thread with
its own event loop. Run as a script, this module takes etcd's server flags (as
`kvorum.testing.Cluster` passes them) and serves until SIGTERM, so the differential suite can
point at it: ``KVORUM_DIFF_TARGET=".venv/bin/python tests/unit/apisvc/standalone.py"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from kvorum.api.errors import MemberNotFoundError, NoSpaceError, PeerUrlExistError
from kvorum.api.grpcserver import GrpcOptions, build_server
from kvorum.api.member import (
    AlarmAction,
    AlarmMember,
    AlarmType,
    HashKV,
    Header,
    MemberInfo,
    Status,
)
from kvorum.backend import Backend
from kvorum.config import load_config
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    MvccStore,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)
from kvorum.server.errors import BadLeaderTransfereeError
from kvorum.server.member import ETCD_VERSION, SnapshotReader

TERM = 1
START_TIMEOUT_S = 10.0
MEMBER_ID_MAX = 2**64 - 1


class StandaloneMember:
    """One member, no raft: each call runs against the store on the loop's thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        name: str = "default",
        member_id: int = 0x8E9E05C52164694D,
        cluster_id: int = 0xCDF818194E3A8C32,
        peer_urls: tuple[str, ...] = ("http://localhost:2380",),
        client_urls: tuple[str, ...] = (),
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.backend = Backend(str(data_dir / "db"))
        self.store = MvccStore(self.backend)
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.members: dict[int, MemberInfo] = {
            member_id: MemberInfo(member_id, name, peer_urls, client_urls)
        }
        self.alarms: dict[tuple[int, AlarmType], None] = {}
        self.raft_index = 1  # counts "proposals", as a raft log would

    def close(self) -> None:
        self.backend.close()

    def _committed(self) -> None:
        self.raft_index += 1
        self.backend.batch.commit()

    def _check_space(self) -> None:
        if any(alarm == AlarmType.NOSPACE for _, alarm in self.alarms):
            raise NoSpaceError

    def header(self) -> Header:
        return Header(self.cluster_id, self.member_id, self.store.current_revision, TERM)

    async def range(self, req: RangeRequest, serializable: bool) -> RangeResponse:
        return self.store.range(req)

    async def put(self, req: PutRequest) -> PutResponse:
        self._check_space()
        try:
            return self.store.put(req)
        finally:
            self._committed()

    async def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        self._check_space()
        try:
            return self.store.delete_range(req)
        finally:
            self._committed()

    async def txn(self, req: TxnRequest, serializable: bool) -> TxnResponse:
        try:
            return self.store.txn(req)
        finally:
            self._committed()

    async def compact(self, revision: int, physical: bool) -> int:
        try:
            self.store.compact(revision)
        finally:
            self._committed()
        self.store.compact_run()
        return self.store.current_revision

    async def member_list(self, linearizable: bool) -> tuple[MemberInfo, ...]:
        return tuple(self.members.values())

    async def member_add(
        self, peer_urls: tuple[str, ...], is_learner: bool
    ) -> tuple[MemberInfo, tuple[MemberInfo, ...]]:
        taken = {u for m in self.members.values() for u in m.peer_urls}
        if taken & set(peer_urls):
            raise PeerUrlExistError
        new_id = int.from_bytes(hashlib.sha256(",".join(peer_urls).encode()).digest()[:8])
        added = MemberInfo(new_id, "", tuple(peer_urls), (), is_learner)
        self.members[new_id] = added
        self._committed()
        return added, tuple(self.members.values())

    def _known(self, member_id: int) -> MemberInfo:
        found = self.members.get(member_id)
        if found is None:
            raise MemberNotFoundError(f"{member_id:x}")
        return found

    async def member_remove(self, member_id: int) -> tuple[MemberInfo, ...]:
        self._known(member_id)
        del self.members[member_id]
        self._committed()
        return tuple(self.members.values())

    async def member_update(
        self, member_id: int, peer_urls: tuple[str, ...]
    ) -> tuple[MemberInfo, ...]:
        old = self._known(member_id)
        self.members[member_id] = MemberInfo(
            old.id, old.name, tuple(peer_urls), old.client_urls, old.is_learner
        )
        self._committed()
        return tuple(self.members.values())

    async def member_promote(self, member_id: int) -> tuple[MemberInfo, ...]:
        old = self._known(member_id)
        self.members[member_id] = MemberInfo(old.id, old.name, old.peer_urls, old.client_urls)
        self._committed()
        return tuple(self.members.values())

    async def status(self) -> Status:
        return Status(
            version=ETCD_VERSION,
            db_size_bytes=self.backend.size_bytes(),
            db_size_in_use_bytes=self.backend.size_in_use_bytes(),
            leader=self.member_id,
            raft_index=self.raft_index,
            raft_term=TERM,
            raft_applied_index=self.raft_index,
            errors=tuple(f"memberID:{m} alarm:{a.name}" for m, a in self.alarms),
        )

    async def hash(self) -> int:
        return self.backend.hash()

    async def hash_kv(self, revision: int) -> HashKV:
        current = self.store.current_revision
        crc, compact = self.store.hash_kv(revision)
        return HashKV(crc, compact, revision or current, current)

    async def alarm(
        self, action: AlarmAction, member_id: int, alarm: AlarmType
    ) -> tuple[AlarmMember, ...]:
        if action == AlarmAction.GET:
            return tuple(AlarmMember(m, a) for m, a in self.alarms)
        key = (member_id, alarm)
        if action == AlarmAction.ACTIVATE:
            self.alarms[key] = None
        elif key in self.alarms:
            del self.alarms[key]
        else:
            return ()
        self._committed()
        return (AlarmMember(member_id, alarm),)

    async def defragment(self) -> None:
        self.backend.defragment()

    async def snapshot(self) -> SnapshotReader:
        self.backend.batch.commit()
        return SnapshotReader(self.backend.snapshot())

    async def move_leader(self, target_id: int) -> None:
        if target_id != self.member_id:
            raise BadLeaderTransfereeError(f"{target_id:x}")


class StandaloneServer:
    """The real servicers over a `StandaloneMember`, served from a thread on 127.0.0.1."""

    def __init__(
        self, data_dir: Path, options: GrpcOptions | None = None, *, port: int = 0
    ) -> None:
        self.data_dir = data_dir
        self.options = options or GrpcOptions()
        self.port = port
        self.member: StandaloneMember | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandaloneServer:
        self._thread = threading.Thread(target=self._run, name="standalone-grpc", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("standalone server did not start")
        if self._error is not None:
            raise RuntimeError("standalone server failed to start") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start() or ignored after stop()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        member = StandaloneMember(
            self.data_dir, client_urls=(f"http://127.0.0.1:{self.port}",) if self.port else ()
        )
        self.member = member
        server = build_server(member, self.options)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        if not member.members[member.member_id].client_urls:
            info = member.members[member.member_id]
            member.members[member.member_id] = MemberInfo(
                info.id, info.name, info.peer_urls, (self.endpoint,)
            )
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop(grace=None)
            member.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> StandaloneServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve_flags(argv: list[str]) -> None:
    """Serve as `etcd <flags>` would (the flags `kvorum.testing.Cluster` passes)."""
    config = load_config(argv, {})
    ids = config.initial_member_ids()
    member = StandaloneMember(
        Path(config.data_dir),
        name=config.name,
        member_id=ids[config.name],
        cluster_id=config.initial_cluster_id(),
        peer_urls=config.initial_advertise_peer_urls,
        client_urls=config.advertise_client_urls,
    )
    server = build_server(member, GrpcOptions.from_config(config))
    for url in config.listen_client_urls:
        parts = urlsplit(url)
        server.add_insecure_port(f"{parts.hostname}:{parts.port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"standalone member {config.name} serving {config.listen_client_urls}", flush=True)
    await stop.wait()
    await server.stop(grace=None)
    member.close()


if __name__ == "__main__":
    os.environ.pop("GRPC_TRACE", None)
    asyncio.run(_serve_flags(sys.argv[1:]))
