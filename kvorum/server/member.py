"""The member as the gRPC servicers see it: ``kvorum.api.member.Member`` over raft and the store.

Paths (DESIGN.md §2):

- **writes** are encoded once (``kvorum.apply.payload``), proposed through ``RaftNode.propose``
  and answered with what the applier produced for that request id -- a response, or the error
  every member raised alike;
- **linearizable reads** wait for one ReadIndex round (shared by every read waiting then) and
  then read the local store; **serializable reads** read the local store at once, so they work
  in a minority partition too;
- **membership** changes are checked here first (etcd's ``mayAddMember`` & co), then proposed
  as raft conf changes carrying the member record; the transport learns the new peer set when
  the change is applied.

Threads: everything runs on the event loop thread, which is also the apply thread that owns
the backend's open batch -- so reads here see every applied write, committed to LMDB or not
(etcd's read buffer), and no lock is needed.

``ApplyDriver`` is the ``RaftNode``'s ``Applier``: it feeds committed entries to the apply
layer, wakes the proposers, keeps the transport's peers in step with the member list, runs
compaction in the background and commits the backend's batch on its interval.

Raft snapshots carry the whole backend (kvorum's choice at its current scale; etcd streams the
db file beside a small snapshot message instead). ``snapshot_data`` returns a header (format
tag, consistent index and term) followed by a consistent LMDB copy taken at exactly the applied
index; the copy runs in a thread, and the Ready loop awaits it without applying meanwhile, so
no apply slips into it. The raft snapshot file (``member/snap/*.snap``) therefore holds the
database too, which is what makes installing one crash-safe: a follower persists the received
snapshot (file and WAL marker) before it answers the leader, then ``_restore`` writes the db to
``member/snap/<index>.snap.db`` (fsync), swaps it in by rename and reloads the applier, whose
consistent index is then the snapshot's index. A crash before the rename leaves the old db and
a durable snapshot ahead of it, which the restart restores again; after it, the new db. (The db
may be past the snapshot's index when the leader snapshotted mid-replay; see ``_restore``.)
Cost: each snapshot holds a full copy of the db in memory and on disk, so large databases want
etcd's separate db stream instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import grpc

from kvorum import ids
from kvorum.api import errors as api_errors
from kvorum.api.member import (
    AlarmAction,
    AlarmMember,
    AlarmType,
    HashKV,
    Header,
    MemberInfo,
    Status,
)
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.apply import AlarmRequest as ApplyAlarmRequest
from kvorum.apply import AlarmResponse as ApplyAlarmResponse
from kvorum.apply import (
    Applier,
    CompactResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    MemberAttrSetRequest,
    MembersResponse,
    Request,
    encode_payload,
)
from kvorum.apply import CompactRequest as ApplyCompactRequest
from kvorum.apply import errors as apply_errors
from kvorum.auth import (
    AuthFailedError,
    AuthInfo,
    AuthOldRevisionError,
    AuthStore,
    InvalidAuthTokenError,
    Permission,
    new_token_prefix,
    passwords,
)
from kvorum.auth.context import CALLER
from kvorum.auth.requests import (
    AsUser,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthRequest,
    AuthResponse,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserGrantRoleRequest,
    UserRevokeRoleRequest,
)
from kvorum.backend import Backend, write_file_durably
from kvorum.backend import Snapshot as BackendSnapshot
from kvorum.lease import (
    EXPIRY_CHECK_INTERVAL_S,
    LeaseNotFoundError,
    Lessor,
    NotPrimaryError,
    TimeToLive,
    choose_lease_id,
)
from kvorum.membership import AlarmAction as StoreAlarmAction
from kvorum.membership import AlarmStore, MembershipStore
from kvorum.membership import AlarmType as StoreAlarmType
from kvorum.membership import Member as StoreMember
from kvorum.membership import errors as membership_errors
from kvorum.membership.types import ConfChangeContext, encode_conf_change_context
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    MvccStore,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)
from kvorum.raft import ConfChange, ConfChangeType, Entry, EntryType, Snapshot
from kvorum.server import failpoints
from kvorum.server.envelope import decode_conf_change
from kvorum.server.errors import (
    NoLeaderError,
    NotLeaderError,
    RequestTimeoutError,
    ServerError,
    StoppedError,
)
from kvorum.server.raftnode import RaftNode
from kvorum.server.wait import Wait
from kvorum.transport import PeerStats

__all__ = [
    "ETCD_VERSION",
    "ApplyDriver",
    "KvorumMember",
    "MemberSettings",
    "Peers",
    "SnapshotReader",
    "request_timeout_s",
    "translate_error",
]

logger = logging.getLogger("kvorum.server.member")

ETCD_VERSION = "3.4.23"
"""The server version Status reports: the etcd release whose API kvorum speaks (and the one the
differential tests compare against), so etcdctl prints and decides as it would for etcd."""

PUBLISH_RETRY_S = 0.5
PUBLISH_ATTEMPT_S = 2.0
#: How often a follower retries forwarding a lease call while there is no leader to take it.
LEASE_FORWARD_RETRY_S = 0.05
COMPACTION_STEPS_PER_TURN = 1
#: Authenticate's password checks when the auth state keeps moving under them (etcd: no bound).
AUTHENTICATE_ATTEMPTS = 3
#: raft snapshot data: format tag, consistent index, consistent term; then the db file.
_SNAPSHOT_HEADER = struct.Struct(">8sQQ")
_SNAPSHOT_FORMAT = b"kvdb0001"
#: a database received with a snapshot, next to the backend until it is swapped in (etcd's).
_RECEIVED_SUFFIX = ".snap.db"

T = TypeVar("T")


def request_timeout_s(election_timeout_s: float) -> float:
    """etcd's request timeout: 5 s plus two election timeouts (etcd's ``ReqTimeout``)."""
    return 5.0 + 2 * election_timeout_s


class Peers(Protocol):
    """The part of ``PeerTransport`` that follows the member list."""

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None: ...

    def remove_peer(self, peer_id: int) -> None: ...

    def peer_ids(self) -> tuple[int, ...]: ...

    def peer_stats(self, peer_id: int) -> PeerStats | None: ...


@dataclass(frozen=True, slots=True)
class MemberSettings:
    """The member's identity and the knobs of its request paths."""

    name: str
    member_id: int
    cluster_id: int
    client_urls: tuple[str, ...]
    cluster_token: str
    request_timeout_s: float = 7.0
    strict_reconfig_check: bool = True
    batch_interval_s: float = 0.1


# --- errors --------------------------------------------------------------------------------

# The apply and membership layers carry etcd's texts in their own classes; the API layer's table
# knows the API's classes, so each is handed over as its API twin (same wire code and text).
_TRANSLATIONS: dict[type[Exception], type[api_errors.ApiError]] = {
    membership_errors.MemberNotFoundError: api_errors.MemberNotFoundError,
    membership_errors.IDRemovedError: api_errors.MemberNotFoundError,
    membership_errors.MemberExistsError: api_errors.MemberExistError,
    membership_errors.PeerURLExistsError: api_errors.PeerUrlExistError,
    membership_errors.MemberNotLearnerError: api_errors.MemberNotLearnerError,
    membership_errors.TooManyLearnersError: api_errors.TooManyLearnersError,
    membership_errors.LearnerNotReadyError: api_errors.LearnerNotReadyError,
    membership_errors.NotEnoughStartedMembersError: api_errors.NotEnoughStartedMembersError,
    membership_errors.UnhealthyClusterError: api_errors.UnhealthyClusterError,
    apply_errors.NoSpaceError: api_errors.NoSpaceError,
    apply_errors.CorruptError: api_errors.CorruptError,
}


def translate_error(exc: Exception) -> Exception:
    """``exc`` as the API layer's table knows it (unchanged if it knows it already)."""
    target = _TRANSLATIONS.get(type(exc))
    if target is None:
        return exc
    return target(str(getattr(exc, "detail", "")))


# --- the applier the RaftNode drives --------------------------------------------------------


class ApplyDriver:
    """``RaftNode``'s ``Applier``: committed entries -> apply layer -> woken proposers.

    Invariant: it never awaits the RaftNode (the Ready loop awaits ``apply``); anything that
    must go through raft because of an apply (the NOSPACE alarm) is started as a task.
    """

    def __init__(
        self,
        applier: Applier,
        backend: Backend,
        wait: Wait,
        *,
        on_membership_change: Callable[[], None] | None = None,
        on_nospace: Callable[[], None] | None = None,
        on_events: Callable[[Sequence[Event]], None] | None = None,
        on_restore: Callable[[], None] | None = None,
    ) -> None:
        self.applier = applier
        self._on_events = on_events
        self._on_restore = on_restore
        self._backend = backend
        self._wait = wait
        self._on_membership_change = on_membership_change
        self._on_nospace = on_nospace
        self._background: asyncio.Task[None] | None = None
        self._closed = False

    async def apply(self, entries: Sequence[Entry], snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            await self._restore(snapshot)
            return
        batch = self.applier.apply(entries)
        if batch.events and self._on_events is not None:
            # The batch is visible to readers now (this thread owns the backend's open
            # batch), so a watcher told of these revisions can also read them from history.
            self._on_events(batch.events)
        conf_change_ids = set()
        membership_changed = False
        for entry in entries:
            if entry.type == EntryType.CONF_CHANGE:
                membership_changed = True
                with contextlib.suppress(ValueError):
                    conf_change_ids.add(decode_conf_change(entry)[0])
        for request_id, result in batch.results.items():
            if isinstance(result, MembersResponse):
                membership_changed = True
            if isinstance(result, Exception):
                self._wait.fail(request_id, translate_error(result))
            elif request_id not in conf_change_ids:
                # A conf change's proposer is woken by the RaftNode with the new ConfState,
                # once the core has taken the change too.
                self._wait.trigger(request_id, result)
        if membership_changed and self._on_membership_change is not None:
            self._on_membership_change()
        if batch.nospace_alarm_wanted and self._on_nospace is not None:
            self._on_nospace()
        if self.applier.has_background_work():
            self._start_background()

    async def _restore(self, snapshot: Snapshot) -> None:
        meta = snapshot.metadata
        applied = self.applier.applied_index
        if meta.index <= applied:
            # Our own snapshot at start: the backend already holds everything up to it.
            return
        data = snapshot.data
        header = decode_snapshot_header(data)
        if header is None:
            raise RuntimeError(
                f"the raft snapshot at index {meta.index} (ahead of the backend, applied "
                f"{applied}) carries no database (an older kvorum made it); remove this member "
                "and add it again to resynchronise it"
            )
        # The db is at the snapshot's index, or past it when the leader made the snapshot
        # while replaying its WAL after a restart (its backend already held more). Past is
        # sound: the entries in between are committed, the db holds their effects, and the
        # applier skips them by its consistent index. Behind would lose entries.
        if header[0] < meta.index:
            raise RuntimeError(
                f"the raft snapshot at index {meta.index} (term {meta.term}) carries a database "
                f"at index {header[0]} only; refusing to install it"
            )
        started = time.monotonic()
        directory = os.path.dirname(os.path.abspath(self._backend.path))
        received = os.path.join(directory, f"{meta.index:016x}{_RECEIVED_SUFFIX}")
        body = memoryview(data)[_SNAPSHOT_HEADER.size :]
        size_bytes = await asyncio.to_thread(_write_received, received, body)
        failpoints.hit("during-snapshot-apply")
        # From here to the reload nothing awaits: no request sees a half-swapped state.
        self._backend.restore_from_file(received)
        restored = self.applier.restore()
        if restored != header[0]:
            raise RuntimeError(
                f"the database installed from the snapshot at index {meta.index} says it "
                f"holds index {restored}, its header {header[0]}"
            )
        logger.info(
            "installed the leader's snapshot: backend replaced by the database at index %d "
            "(term %d, %d bytes) in %.3f s; applied index %d -> %d",
            meta.index,
            meta.term,
            size_bytes,
            time.monotonic() - started,
            applied,
            restored,
        )
        if self._on_restore is not None:
            # Watchers were told of revisions up to the old store's; the rest they now read
            # from the installed database.
            self._on_restore()
        if self._on_membership_change is not None:
            self._on_membership_change()
        if self.applier.has_background_work():
            self._start_background()

    def conf_change_rejected(self, index: int) -> bool:
        return self.applier.conf_change_rejected(index)

    async def snapshot_data(self) -> bytes:
        """The state as of the applied index, for a raft snapshot: header + the whole db.

        Called when the raft log is compacted behind a snapshot at the applied index, with
        no apply running until it returns. The backend is made durable first: from now on
        the WAL no longer replays the entries below the snapshot, so the backend must hold
        their effects on disk. The copy runs in a thread, off the event loop.
        """
        self._backend.sync()
        index, term = self._backend.consistent_index()
        started = time.monotonic()
        data = await asyncio.to_thread(_backend_image, self._backend, index, term)
        logger.info(
            "backend copied for the raft snapshot at index %d: %d bytes in %.3f s",
            index,
            len(data) - _SNAPSHOT_HEADER.size,
            time.monotonic() - started,
        )
        return data

    # --- background work: compaction and batch commits ---------------------------------

    def _start_background(self) -> None:
        if self._closed or (self._background is not None and not self._background.done()):
            return
        self._background = asyncio.get_running_loop().create_task(
            self._run_background(), name="apply-background"
        )

    async def _run_background(self) -> None:
        while self.applier.has_background_work() and not self._closed:
            done = self.applier.do_background_work(COMPACTION_STEPS_PER_TURN)
            for request_id, result in done.items():
                if isinstance(result, Exception):
                    self._wait.fail(request_id, translate_error(result))
                else:
                    self._wait.trigger(request_id, result)
            await asyncio.sleep(0)  # let requests and the Ready loop run between steps

    async def commit_loop(self, interval_s: float) -> None:
        """Commit the backend's batch on its interval even when no entries come."""
        while not self._closed:
            await asyncio.sleep(interval_s)
            self._backend.batch.maybe_commit()

    async def close(self) -> None:
        self._closed = True
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background


def _backend_image(backend: Backend, index: int, term: int) -> bytes:
    """Header plus a consistent copy of the committed db (blocking: run it in a thread)."""
    with backend.snapshot() as snap:
        return b"".join((_SNAPSHOT_HEADER.pack(_SNAPSHOT_FORMAT, index, term), *snap))


def _write_received(path: str, body: memoryview) -> int:
    """Write a received db next to the backend (blocking), dropping any earlier attempt's
    leftovers: a crash before the swap leaves one, and the next install supersedes it."""
    directory = os.path.dirname(path)
    for name in os.listdir(directory):
        if name.endswith(_RECEIVED_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
    return write_file_durably(path, (body,))


def decode_snapshot_header(data: bytes) -> tuple[int, int] | None:
    """(index, term) of the database a raft snapshot's data carries; None if it has none."""
    if len(data) < _SNAPSHOT_HEADER.size:
        return None
    tag, index, term = _SNAPSHOT_HEADER.unpack_from(data)
    if tag != _SNAPSHOT_FORMAT:
        return None
    return (index, term)


# --- snapshots for the Maintenance service -----------------------------------------------------


class SnapshotReader:
    """A backend copy read as chunks; the file goes away on ``aclose``."""

    def __init__(self, snap: BackendSnapshot) -> None:
        self._snap = snap

    @property
    def size_bytes(self) -> int:
        return self._snap.size_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._snap:
            yield chunk
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        self._snap.close()


# --- the member -----------------------------------------------------------------------------


class _LeaderLeases:
    """A gRPC client of the leader's Lease service, for the leader-only calls (renew,
    time-to-live) a follower receives: only the leader's lessor knows expiries (etcd's
    followers forward these to the leader over HTTP; kvorum uses the leader's client URL).

    Holds at most one channel, to the current leader; a new leader's URL replaces it.
    """

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._target = ""
        self._channel: grpc.aio.Channel | None = None

    async def _stub(self, client_url: str) -> rpc_pb2_grpc.LeaseStub:
        target = urlsplit(client_url).netloc
        if self._channel is None or target != self._target:
            await self.close()
            self._channel = grpc.aio.insecure_channel(target)
            self._target = target
        return rpc_pb2_grpc.LeaseStub(self._channel)  # type: ignore[no-untyped-call]

    async def renew(self, client_url: str, lease_id: int) -> int:
        call = (await self._stub(client_url)).LeaseKeepAlive(timeout=self._timeout_s)
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            resp = await call.read()
            await call.done_writing()
        except grpc.aio.AioRpcError as exc:
            raise NotLeaderError(f"forwarding keep-alive to {client_url}: {exc}") from None
        finally:
            call.cancel()
        if not isinstance(resp, rpc_pb2.LeaseKeepAliveResponse):
            raise NotLeaderError(f"the leader at {client_url} closed the keep-alive stream")
        if resp.TTL <= 0:  # etcd's answer for an unknown lease
            raise LeaseNotFoundError
        return int(resp.TTL)

    async def time_to_live(self, client_url: str, lease_id: int, keys: bool) -> TimeToLive:
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        try:
            stub = await self._stub(client_url)
            resp = await stub.LeaseTimeToLive(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise NotLeaderError(f"forwarding time-to-live to {client_url}: {exc}") from None
        if resp.TTL == -1:  # etcd's answer for an unknown lease
            raise LeaseNotFoundError
        return TimeToLive(resp.ID, resp.TTL, resp.grantedTTL, tuple(resp.keys))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def _info(m: StoreMember) -> MemberInfo:
    return MemberInfo(m.id, m.name, m.peer_urls, m.client_urls, m.is_learner)


class KvorumMember:
    """``kvorum.api.member.Member`` for one running member."""

    def __init__(
        self,
        settings: MemberSettings,
        raft: RaftNode,
        backend: Backend,
        store: MvccStore,
        membership: MembershipStore,
        alarms: AlarmStore,
        peers: Peers | None = None,
        *,
        on_removed: Callable[[], None] | None = None,
        lessor: Lessor | None = None,
        auth: AuthStore | None = None,
    ) -> None:
        """`lessor` is the one the applier applies grants and revokes to (none: every lease
        request is refused with etcd's "lease not found"); `auth` likewise the applier's auth
        store (none: Auth calls are refused as "not capable")."""
        self.settings = settings
        self.lessor = lessor
        self.auth = auth
        self._leader_leases = _LeaderLeases(settings.request_timeout_s)
        self.raft = raft
        self.backend = backend
        self.store = store
        self.membership = membership
        self.alarms = alarms
        self.peers = peers
        self._on_removed = on_removed
        self._timeout_s = settings.request_timeout_s
        self._publish_attempt_s = min(settings.request_timeout_s, PUBLISH_ATTEMPT_S)
        self._publish_task: asyncio.Task[None] | None = None
        self._nospace_task: asyncio.Task[None] | None = None
        self.published = asyncio.Event()
        # Cached from the member list (checked on every request); refreshed by sync_peers.
        self._is_learner = False

    @property
    def id(self) -> int:
        return self.settings.member_id

    # --- lifecycle hooks ------------------------------------------------------------------

    def start_publishing(self) -> asyncio.Task[None]:
        """Publish name and client URLs through raft, retrying until it is applied (etcd).

        ``published`` is set once the member list shows them (at once on a restart that
        publishes nothing new); etcd serves clients only from then on, and so does ``run``.
        The returned task ends once published, or without it when raft stopped first.
        """
        self._publish_task = asyncio.get_running_loop().create_task(
            self._publish(), name="member-publish"
        )
        return self._publish_task

    async def _publish(self) -> None:
        s = self.settings
        request = MemberAttrSetRequest(s.member_id, s.name, s.client_urls)
        while True:
            current = self.membership.member(s.member_id)
            if current is not None and (current.name, current.client_urls) == (
                s.name,
                s.client_urls,
            ):
                break  # already published with these attributes (a restart)
            try:
                # A short attempt: a proposal forwarded to a leader that just died is lost,
                # and waiting out the full request timeout would delay the publish.
                await self.raft.propose(encode_payload(request), self._publish_attempt_s)
                break
            except StoppedError:
                return
            except ServerError as exc:
                logger.info("publish of member %x not done yet (%s); retrying", s.member_id, exc)
                await asyncio.sleep(PUBLISH_RETRY_S)
            except Exception as exc:
                # Refused when applied (e.g. the member was removed meanwhile): no retry
                # helps; serve anyway, the refusal is in the log.
                logger.warning("publish of member %x refused: %s", s.member_id, exc)
                self.published.set()
                return
        self.published.set()
        logger.info(
            "published member %x: name=%s client-urls=%s to cluster %x",
            s.member_id,
            s.name,
            ",".join(s.client_urls),
            s.cluster_id,
        )

    def sync_peers(self) -> None:
        """Follow the member list (at start, after each change): the transport's peers,
        whether this member is a learner, whether it was removed."""
        members = self.membership.members()
        self._is_learner = any(m.id == self.id and m.is_learner for m in members)
        if self.id in self.membership.removed_ids():
            logger.warning(
                "member %x has been permanently removed from the cluster %x; stopping",
                self.id,
                self.settings.cluster_id,
            )
            if self._on_removed is not None:
                self._on_removed()
        if self.peers is None:
            return
        wanted = {m.id: m.peer_urls for m in members if m.id != self.id}
        for peer_id in self.peers.peer_ids():
            if peer_id not in wanted:
                self.peers.remove_peer(peer_id)
                logger.info("removed peer %x from the transport", peer_id)
        for peer_id, urls in wanted.items():
            self.peers.add_peer(peer_id, urls)

    def raise_nospace_alarm(self) -> None:
        """The applier found the backend over its quota: raise NOSPACE through raft (etcd)."""
        if self._nospace_task is not None and not self._nospace_task.done():
            return
        self._nospace_task = asyncio.get_running_loop().create_task(
            self._raise_nospace(), name="nospace-alarm"
        )

    async def _raise_nospace(self) -> None:
        logger.warning(
            "backend of member %x is over its quota (%d bytes); raising the NOSPACE alarm",
            self.id,
            self.backend.size_bytes(),
        )
        with contextlib.suppress(Exception):
            await self.alarm(AlarmAction.ACTIVATE, self.id, AlarmType.NOSPACE)

    async def hand_over_leadership(self, timeout_s: float) -> None:
        """Before stopping, a leader hands leadership to its most caught-up voter (etcd does
        this too): the others then need no election timeout to go on. Best effort."""
        if not self.raft.is_leader:
            return
        status = self.raft.raft_status()
        # Only connected followers: one that is stopping too cannot take over.
        connected = self._active_ids()
        candidates = [
            (progress.match, peer_id)
            for peer_id, progress in status.progress.items()
            if peer_id in connected and peer_id in status.conf_state.voters
        ]
        if not candidates:
            logger.warning("stopping as leader with no connected voter to hand leadership to")
            return
        _match, target = max(candidates)
        try:
            await self.raft.transfer_leadership(target, timeout_s)
        except Exception as exc:
            logger.warning("could not hand leadership to %x before stopping: %s", target, exc)
            return
        logger.info("handed leadership to %x before stopping", target)

    def on_leader_change(self, leader_id: int, term: int) -> None:
        """Raft's leader listener: the lessor is the primary exactly while this is leader.

        On promotion every lease gets its full TTL plus an election timeout from now (etcd
        does the same), so holders that could not renew during the election keep them.
        """
        del term
        lessor = self.lessor
        if lessor is None:
            return
        if leader_id == self.id and not lessor.is_primary:
            lessor.promote(time.monotonic(), self.raft.config.election_timeout_s)
            logger.info("lessor promoted: %d lease(s) now expire here", len(lessor))
        elif leader_id != self.id and lessor.is_primary:
            lessor.demote()

    async def run_lease_expiry(self) -> None:
        """On the leader, every `EXPIRY_CHECK_INTERVAL_S`: propose revoking the due leases.

        Expiry is never applied locally: the revocations go through raft so every member
        deletes the same keys at the same revision. A lost proposal is retried because the
        lessor hands a still-present lease out again after its retry interval.
        """
        while True:
            await asyncio.sleep(EXPIRY_CHECK_INTERVAL_S)
            lessor = self.lessor
            if lessor is None or not lessor.is_primary or not self.raft.is_leader:
                continue
            due = lessor.expired(time.monotonic())
            if not due:
                continue
            # The batch is bounded by `expired`'s limit (etcd's revoke rate per check).
            results = await asyncio.gather(
                *(self._propose(LeaseRevokeRequest(lease_id)) for lease_id in due),
                return_exceptions=True,
            )
            for lease_id, result in zip(due, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, LeaseNotFoundError):
                    logger.warning("revoking expired lease %x failed: %s", lease_id, result)

    async def close(self) -> None:
        for task in (self._publish_task, self._nospace_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._leader_leases.close()

    # --- plumbing -------------------------------------------------------------------------

    async def _propose(self, request: Request) -> object:
        caller = CALLER.get()
        if caller is not None and not isinstance(request, AsUser):
            request = AsUser(caller, request)  # auth is on: the applier checks this user
        result = await self.raft.propose(encode_payload(request), self._timeout_s)
        if isinstance(result, Exception):  # a waiter is normally failed, not triggered
            raise translate_error(result)
        return result

    async def _propose_as(self, request: Request, kind: type[T]) -> T:
        result = await self._propose(request)
        if not isinstance(result, kind):
            raise TypeError(f"expected {kind.__name__}, the applier gave {result!r}")
        return result

    def _refuse_if_learner(self) -> None:
        """etcd 3.4 serves a learner only Status and serializable Range requests."""
        if self._is_learner:
            raise api_errors.NotSupportedForLearnerError(f"member {self.id:x} is a learner")

    async def _linearize(self) -> None:
        await self.raft.read_index(self._timeout_s)

    def header(self) -> Header:
        s = self.settings
        return Header(s.cluster_id, s.member_id, self.store.current_revision, self.raft.term)

    # --- KV -------------------------------------------------------------------------------

    async def range(self, req: RangeRequest, serializable: bool) -> RangeResponse:
        if not serializable:
            self._refuse_if_learner()
            await self._linearize()
        return self.store.range(req)

    async def put(self, req: PutRequest) -> PutResponse:
        self._refuse_if_learner()
        return await self._propose_as(req, PutResponse)

    async def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        self._refuse_if_learner()
        return await self._propose_as(req, DeleteRangeResponse)

    async def txn(self, req: TxnRequest, serializable: bool) -> TxnResponse:
        self._refuse_if_learner()
        if _txn_has_writes(req):
            return await self._propose_as(req, TxnResponse)
        # A read-only txn is a read: served locally after a ReadIndex round (as etcd does).
        if not serializable:
            await self._linearize()
        return self.store.txn(req)

    async def compact(self, revision: int, physical: bool) -> int:
        self._refuse_if_learner()
        resp = await self._propose_as(ApplyCompactRequest(revision, physical), CompactResponse)
        return resp.revision

    # --- Lease ----------------------------------------------------------------------------

    def _require_lessor(self) -> Lessor:
        if self.lessor is None:
            raise LeaseNotFoundError
        return self.lessor

    async def lease_grant(self, lease_id: int, ttl_s: int) -> tuple[int, int, int]:
        self._refuse_if_learner()
        # The id is chosen here, before proposing, so every member grants the same one. As
        # etcd's, it comes from this member's request-id generator: ids from one member grow,
        # and ids from two members differ in their prefix (the member id's low 16 bits).
        chosen = choose_lease_id(lease_id, self.raft.next_request_id)
        resp = await self._propose_as(LeaseGrantRequest(chosen, ttl_s), LeaseGrantResponse)
        return resp.revision, resp.lease_id, resp.ttl_s

    async def lease_revoke(self, lease_id: int) -> int:
        self._refuse_if_learner()
        resp = await self._propose_as(LeaseRevokeRequest(lease_id), LeaseRevokeResponse)
        return resp.revision

    def _leader_client_url(self) -> str:
        """The leader's advertised client URL, for forwarding leader-only lease calls."""
        leader = self.raft.leader_id
        if leader == 0:
            raise NoLeaderError
        if leader == self.id:
            # Elected but the lessor not yet promoted (the listener runs between Readys).
            raise NotPrimaryError
        for m in self.membership.members():
            if m.id == leader and m.client_urls:
                return m.client_urls[0]
        raise NotLeaderError(f"leader {leader:x} has published no client URL")

    async def _at_primary_lessor(
        self,
        local: Callable[[Lessor], T],
        forward: Callable[[str], Awaitable[T]],
    ) -> T:
        """Run a leader-only lease call: on the primary lessor here, else forwarded to the
        leader. Expiry is leader-local state (not replicated), so only the leader can answer.

        As etcd's LeaseRenew and LeaseTimeToLive do, a call that finds no leader, or a leader
        that cannot answer yet (dead, or elected but its lessor not yet promoted), is retried
        every LEASE_FORWARD_RETRY_S until the request timeout: a keep-alive stream on a
        follower rides through an election instead of failing and letting the lease lapse.
        """
        lessor = self._require_lessor()
        deadline = time.monotonic() + self._timeout_s
        while True:
            if lessor.is_primary:
                return local(lessor)
            try:
                return await forward(self._leader_client_url())
            except (NoLeaderError, NotLeaderError, NotPrimaryError) as exc:
                if time.monotonic() + LEASE_FORWARD_RETRY_S >= deadline:
                    logger.warning("lease call found no leader to answer it: %s", exc)
                    raise RequestTimeoutError from None
            await asyncio.sleep(LEASE_FORWARD_RETRY_S)

    async def lease_renew(self, lease_id: int) -> int:
        self._refuse_if_learner()
        return await self._at_primary_lessor(
            lambda lessor: lessor.renew(lease_id, time.monotonic()),
            lambda url: self._leader_leases.renew(url, lease_id),
        )

    async def lease_time_to_live(self, lease_id: int, keys: bool) -> TimeToLive:
        self._refuse_if_learner()
        return await self._at_primary_lessor(
            lambda lessor: lessor.time_to_live(lease_id, time.monotonic(), keys=keys),
            lambda url: self._leader_leases.time_to_live(url, lease_id, keys),
        )

    async def lease_leases(self) -> tuple[int, ...]:
        self._refuse_if_learner()
        return self._require_lessor().leases()

    # --- Auth -----------------------------------------------------------------------------
    # Writes are proposed as the asking user (`AsUser`); the applier checks the root role
    # against the state the entry sees. Reads are local after a ReadIndex round and checked
    # here. bcrypt runs in a thread: it takes tens of milliseconds at the default cost.

    def _require_auth(self) -> AuthStore:
        if self.auth is None:
            raise api_errors.NotCapableError("this member serves no auth store")
        return self.auth

    async def auth_info(self, token: str | None) -> AuthInfo | None:
        if token is None or self.auth is None:
            return None
        # A simple token is known here once its Authenticate entry is applied here (as etcd's
        # isValidSimpleToken, wait for that index; a token that never comes is invalid). A
        # JWT needs no wait (index 0): it carries its user and revision, signed.
        index = self.auth.tokens.index_to_await(token)
        if index is None:
            raise InvalidAuthTokenError("malformed token")
        if self.raft.applied_index < index:
            try:
                await self.raft.wait_applied(index, self._timeout_s)
            except TimeoutError:
                raise InvalidAuthTokenError(f"index {index} not applied in time") from None
        return self.auth.auth_info_from_token(token)

    async def _propose_auth(self, who: AuthInfo | None, request: AuthRequest) -> AuthResponse:
        self._refuse_if_learner()
        self._require_auth()
        wrapped: Request = AsUser(who, request) if who is not None else request
        return await self._propose_as(wrapped, AuthResponse)

    async def _auth_read(self, who: AuthInfo | None) -> AuthStore:
        self._refuse_if_learner()
        store = self._require_auth()
        await self._linearize()
        store.check_admin(who)  # etcd 3.4: every auth read needs the root role too
        return store

    async def auth_enable(self, who: AuthInfo | None) -> None:
        await self._propose_auth(who, AuthEnableRequest())

    async def auth_disable(self, who: AuthInfo | None) -> None:
        await self._propose_auth(who, AuthDisableRequest())

    async def authenticate(self, name: str, password: str) -> str:
        self._refuse_if_learner()
        store = self._require_auth()
        await self._linearize()
        for _ in range(AUTHENTICATE_ATTEMPTS):
            password_hash, checked_revision = store.password_hash_for(name)
            if not await asyncio.to_thread(passwords.matches, password, password_hash):
                raise AuthFailedError(f"wrong password for {name!r}")
            request = AuthenticateRequest(name, new_token_prefix())
            resp = await self._propose_as(request, AuthResponse)
            # As etcd: a password checked against auth state that changed before the token
            # was issued (say, the password itself) is checked again.
            if checked_revision == store.revision:
                return resp.token
            logger.info("auth revision moved while authenticating %r; retrying", name)
        raise AuthOldRevisionError(f"auth state kept changing while authenticating {name!r}")

    async def user_add(
        self, who: AuthInfo | None, name: str, password: str, no_password: bool
    ) -> None:
        password_hash = b""
        if not no_password:
            cost = self._require_auth().bcrypt_cost
            password_hash = await asyncio.to_thread(passwords.hash_password, password, cost)
        await self._propose_auth(who, UserAddRequest(name, password_hash, no_password))

    async def user_get(self, who: AuthInfo | None, name: str) -> tuple[str, ...]:
        return (await self._auth_read(who)).user(name).roles

    async def user_list(self, who: AuthInfo | None) -> tuple[str, ...]:
        return tuple((await self._auth_read(who)).user_names())

    async def user_delete(self, who: AuthInfo | None, name: str) -> None:
        await self._propose_auth(who, UserDeleteRequest(name))

    async def user_change_password(self, who: AuthInfo | None, name: str, password: str) -> None:
        cost = self._require_auth().bcrypt_cost
        password_hash = await asyncio.to_thread(passwords.hash_password, password, cost)
        await self._propose_auth(who, UserChangePasswordRequest(name, password_hash))

    async def user_grant_role(self, who: AuthInfo | None, user: str, role: str) -> None:
        await self._propose_auth(who, UserGrantRoleRequest(user, role))

    async def user_revoke_role(self, who: AuthInfo | None, name: str, role: str) -> None:
        await self._propose_auth(who, UserRevokeRoleRequest(name, role))

    async def role_add(self, who: AuthInfo | None, name: str) -> None:
        await self._propose_auth(who, RoleAddRequest(name))

    async def role_get(self, who: AuthInfo | None, role: str) -> tuple[Permission, ...]:
        return (await self._auth_read(who)).role(role).permissions

    async def role_list(self, who: AuthInfo | None) -> tuple[str, ...]:
        return tuple((await self._auth_read(who)).role_names())

    async def role_delete(self, who: AuthInfo | None, role: str) -> None:
        await self._propose_auth(who, RoleDeleteRequest(role))

    async def role_grant_permission(
        self, who: AuthInfo | None, name: str, permission: Permission
    ) -> None:
        await self._propose_auth(who, RoleGrantPermissionRequest(name, permission))

    async def role_revoke_permission(
        self, who: AuthInfo | None, role: str, key: bytes, range_end: bytes
    ) -> None:
        await self._propose_auth(who, RoleRevokePermissionRequest(role, key, range_end))

    # --- Cluster --------------------------------------------------------------------------

    async def member_list(self, linearizable: bool) -> tuple[MemberInfo, ...]:
        self._refuse_if_learner()
        if linearizable:
            await self._linearize()
        return tuple(_info(m) for m in self.membership.members())

    def _active_ids(self) -> frozenset[int]:
        if self.peers is None:
            return frozenset()
        active = set()
        for peer_id in self.peers.peer_ids():
            stats = self.peers.peer_stats(peer_id)
            if stats is not None and stats.active:
                active.add(peer_id)
        return frozenset(active)

    async def _conf_change(self, cc: ConfChange) -> tuple[MemberInfo, ...]:
        await self.raft.propose_conf_change(cc, self._timeout_s)
        return tuple(_info(m) for m in self.membership.members())

    async def member_add(
        self, peer_urls: tuple[str, ...], is_learner: bool
    ) -> tuple[MemberInfo, tuple[MemberInfo, ...]]:
        self._refuse_if_learner()
        if not peer_urls:
            raise api_errors.MemberBadUrlsError("no peer URLs given")
        new_id = ids.member_id(peer_urls, self.settings.cluster_token, int(time.time()))
        new = StoreMember(new_id, "", tuple(peer_urls), (), is_learner)
        try:
            self.membership.check_may_add(
                new,
                self_id=self.id,
                active_ids=self._active_ids(),
                strict=self.settings.strict_reconfig_check,
            )
        except membership_errors.MembershipError as exc:
            raise translate_error(exc) from None
        kind = ConfChangeType.ADD_LEARNER_NODE if is_learner else ConfChangeType.ADD_NODE
        context = encode_conf_change_context(ConfChangeContext(new))
        members = await self._conf_change(ConfChange(kind, new_id, context))
        logger.info(
            "added member %x (%s) with peer URLs %s",
            new_id,
            "learner" if is_learner else "voter",
            ",".join(peer_urls),
        )
        return _info(new), members

    async def member_remove(self, member_id: int) -> tuple[MemberInfo, ...]:
        self._refuse_if_learner()
        try:
            self.membership.check_may_remove(
                member_id,
                self_id=self.id,
                active_ids=self._active_ids(),
                strict=self.settings.strict_reconfig_check,
            )
        except membership_errors.MembershipError as exc:
            raise translate_error(exc) from None
        members = await self._conf_change(ConfChange(ConfChangeType.REMOVE_NODE, member_id))
        logger.info("removed member %x from the cluster", member_id)
        return members

    async def member_update(
        self, member_id: int, peer_urls: tuple[str, ...]
    ) -> tuple[MemberInfo, ...]:
        self._refuse_if_learner()
        current = self.membership.member(member_id)
        if current is None or self.membership.is_removed(member_id):
            raise api_errors.MemberNotFoundError(f"{member_id:x}")
        updated = StoreMember(
            member_id, current.name, tuple(peer_urls), current.client_urls, current.is_learner
        )
        context = encode_conf_change_context(ConfChangeContext(updated))
        members = await self._conf_change(
            ConfChange(ConfChangeType.UPDATE_NODE, member_id, context)
        )
        logger.info("updated member %x peer URLs to %s", member_id, ",".join(peer_urls))
        return members

    async def member_promote(self, member_id: int) -> tuple[MemberInfo, ...]:
        self._refuse_if_learner()
        status = self.raft.raft_status()
        progress = status.progress.get(member_id) if status.progress else None
        own = status.progress.get(self.id) if status.progress else None
        try:
            self.membership.check_may_promote(
                member_id,
                learner_match_index=progress.match if progress is not None else None,
                leader_match_index=own.match if own is not None else status.commit,
                strict=self.settings.strict_reconfig_check,
            )
        except membership_errors.MembershipError as exc:
            raise translate_error(exc) from None
        current = self.membership.member(member_id)
        context = encode_conf_change_context(ConfChangeContext(current, is_promote=True))
        members = await self._conf_change(ConfChange(ConfChangeType.ADD_NODE, member_id, context))
        logger.info("promoted learner %x to voter", member_id)
        return members

    # --- Maintenance ----------------------------------------------------------------------

    async def status(self) -> Status:
        me = self.membership.member(self.id)
        return Status(
            version=ETCD_VERSION,
            db_size_bytes=self.backend.size_bytes(),
            db_size_in_use_bytes=self.backend.size_in_use_bytes(),
            leader=self.raft.leader_id,
            raft_index=self.raft.commit_index,
            raft_term=self.raft.term,
            raft_applied_index=self.raft.applied_index,
            errors=tuple(
                f"memberID:{a.member_id} alarm:{a.alarm.name} " for a in self.alarms.get()
            ),
            is_learner=me.is_learner if me is not None else False,
        )

    async def hash(self) -> int:
        self._refuse_if_learner()
        return self.backend.hash()

    async def hash_kv(self, revision: int) -> HashKV:
        self._refuse_if_learner()
        current = self.store.current_revision
        crc, compact = self.store.hash_kv(revision)
        return HashKV(crc, compact, revision or current, current)

    async def alarm(
        self, action: AlarmAction, member_id: int, alarm: AlarmType
    ) -> tuple[AlarmMember, ...]:
        self._refuse_if_learner()
        request = ApplyAlarmRequest(
            StoreAlarmAction(int(action)), member_id, StoreAlarmType(int(alarm))
        )
        resp = await self._propose_as(request, ApplyAlarmResponse)
        return tuple(AlarmMember(a.member_id, AlarmType(int(a.alarm))) for a in resp.alarms)

    async def defragment(self) -> None:
        self._refuse_if_learner()
        # On the loop thread, between applies: no transaction or cursor is open across it.
        started = time.monotonic()
        before = self.backend.size_bytes()
        self.backend.defragment()
        logger.info(
            "defragmented the backend: %d -> %d bytes in %.3f s",
            before,
            self.backend.size_bytes(),
            time.monotonic() - started,
        )

    async def snapshot(self) -> SnapshotReader:
        self._refuse_if_learner()
        self.backend.batch.commit()  # the copy is of committed state: include every apply
        snap = await asyncio.to_thread(self.backend.snapshot)
        return SnapshotReader(snap)

    async def move_leader(self, target_id: int) -> None:
        self._refuse_if_learner()
        if not self.raft.is_leader:
            raise NotLeaderError(f"member {self.id:x} is not the leader")
        await self.raft.transfer_leadership(target_id, self._timeout_s)
        logger.info("moved leadership from %x to %x", self.id, target_id)


def _txn_has_writes(req: TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return True
        if isinstance(op, TxnRequest) and _txn_has_writes(op):
            return True
    return False
