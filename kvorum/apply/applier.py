"""Committed raft entries -> mvcc, lessor, auth, membership and alarms, in log order, once.

Invariants:

* Exactly once. The backend stores the index of the last applied entry (`consistent_index`) in
  the same LMDB batch as that entry's effects. An entry at or below it is skipped: after a
  restart the WAL replays entries the backend already holds. The index is written for every
  entry applied, no-ops and failures included.
* Same everywhere. Every member feeds the same entries in the same order into the same state,
  so every member computes the same result. Errors are results too (a txn on a compacted
  revision fails the same way everywhere) and never stop the apply. The only local input is
  the backend's file size for the space quota, and it only changes the *answer* the proposer
  gets, never the state (etcd's rule: the write is applied, the answer is "database space
  exceeded", and the NOSPACE alarm is raised by a separate raft proposal that the server
  makes when `ApplyBatch.nospace_alarm_wanted` says so). Once the alarm is applied, every
  member refuses puts, txns with puts and lease grants alike.
* One batch. All writes of an `apply` call go into the backend's open batch transaction;
  `BatchTx`'s policy commits it (count or interval), checked once per call.

Auth: a client's request arrives wrapped in `AsUser` while auth is enabled; writes (put,
delete, txn, lease revoke) are checked against the auth state the entry sees and auth
management needs the root role (`_check_permissions`, `_admin`), so every member refuses the
same entries with the same error.

Compaction is scheduled by its entry (reads below it fail at once) and carried out in bounded
steps by `do_background_work`, which the server interleaves with applying; a `physical`
compaction is answered once it is done.

Conf changes are validated against the membership store (etcd's texts); an accepted change is
written there and handed to the raft core through the `apply_conf_change` callback, a rejected
one is recorded so a replay after restart rebuilds the raft configuration from exactly the
accepted ones.

A leader's snapshot replaces the backend file wholesale (`Backend.restore_from_file`); `restore`
then reloads what is cached above it (mvcc revisions, alarms, leases) and takes the applied
index from the new file, so exactly-once holds across the swap.

Threads: everything here runs on the apply thread, which owns the backend's batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kvorum.apply.errors import ApplyError, CorruptError, NoSpaceError
from kvorum.apply.payload import PayloadError, decode_payload
from kvorum.apply.requests import (
    AlarmRequest,
    AlarmResponse,
    ClusterVersionSetRequest,
    ClusterVersionSetResponse,
    CompactRequest,
    CompactResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    MemberAttrSetRequest,
    MembersResponse,
    Request,
    Response,
)
from kvorum.auth import AuthError, AuthInfo, AuthStore
from kvorum.auth.check import check_needs, needs_of, revoke_needs
from kvorum.auth.requests import (
    AsUser,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
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
from kvorum.backend import Backend
from kvorum.lease import LeaseError, LeaseStore, Lessor
from kvorum.membership import (
    AlarmAction,
    AlarmStore,
    AlarmType,
    MembershipError,
    MembershipStore,
)
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    LeaseNotFoundError,
    MvccError,
    MvccStore,
    PutRequest,
    PutResponse,
    TxnRequest,
    TxnResponse,
)
from kvorum.mvcc.store import DEFAULT_COMPACT_BATCH
from kvorum.raft.types import ConfChange, ConfState, Entry, EntryType
from kvorum.server.envelope import decode_conf_change, decode_envelope

__all__ = [
    "DEFAULT_QUOTA_BYTES",
    "KV_OVERHEAD_BYTES",
    "LEASE_OVERHEAD_BYTES",
    "MAX_PHYSICAL_COMPACT_WAITERS",
    "Applier",
    "ApplyBatch",
    "ApplyResult",
    "ConfChangeApplier",
    "txn_cost_bytes",
]

logger = logging.getLogger("kvorum.apply")

#: etcd's default backend quota (--quota-backend-bytes 0 means this; negative disables it).
DEFAULT_QUOTA_BYTES: Final = 2 << 30
#: etcd's estimates of what storing a key's metadata and a lease cost, on top of their bytes.
KV_OVERHEAD_BYTES: Final = 256
LEASE_OVERHEAD_BYTES: Final = 64
#: physical compaction requests waiting at once; past it, they are answered unphysically.
MAX_PHYSICAL_COMPACT_WAITERS: Final = 10_000

#: what a request id is answered with: a response, or the error every member raised alike.
ApplyResult = Response | Exception
#: the raft core's conf change hook (`RawNode.apply_conf_change`).
ConfChangeApplier = Callable[[ConfChange], ConfState]

#: the errors that are answers, not failures: identical on every member for the same entry.
_ANSWER_ERRORS: Final = (
    MvccError,
    LeaseError,
    MembershipError,
    ApplyError,
    PayloadError,
    AuthError,
)


@dataclass(slots=True)
class ApplyBatch:
    """What one `apply` call did.

    `results` maps the request id of each applied entry that carried one to its result; the
    server wakes that request's waiter with it (ids nobody here waits for are ignored there).
    `events` are the mvcc events of the batch in revision order, for the watch hub.
    """

    applied_index: int
    applied: int = 0
    skipped: int = 0
    results: dict[int, ApplyResult] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    #: a write found the backend over its quota while no NOSPACE alarm is raised: the server
    #: should propose AlarmRequest(ACTIVATE, its own id, NOSPACE), as etcd does.
    nospace_alarm_wanted: bool = False


class _Deferred:
    """Marker: the result comes later (a physical compaction still running)."""


_DEFERRED: Final = _Deferred()


class Applier:
    """Applies committed entries to the member's state; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        kv: MvccStore,
        membership: MembershipStore,
        alarms: AlarmStore,
        *,
        lessor: Lessor | None = None,
        auth: AuthStore | None = None,
        apply_conf_change: ConfChangeApplier | None = None,
        quota_bytes: int = 0,
        compact_step_revisions: int = DEFAULT_COMPACT_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`kv` must have been built with `lease_exists=lessor.exists` when a lessor is given
        (mvcc refuses puts naming unknown leases through that hook). Without a lessor, lease
        requests and puts naming a lease are refused with etcd's "lease not found".
        `clock` feeds lease expiry on the primary only; it never reaches the stored state.
        `auth` is the auth store auth requests apply to (default: one over `backend`)."""
        if compact_step_revisions < 1:
            raise ValueError("compact_step_revisions must be >= 1")
        self._backend = backend
        self._kv = kv
        self._membership = membership
        self._alarms = alarms
        self._lessor = lessor
        self.auth = auth if auth is not None else AuthStore(backend)
        #: who sent the request being applied (an `AsUser` entry), and that entry's index.
        self._auth_info: AuthInfo | None = None
        self._entry_index = 0
        self._apply_conf_change_cb = apply_conf_change
        self.quota_bytes = DEFAULT_QUOTA_BYTES if quota_bytes == 0 else quota_bytes
        self._compact_step_revisions = compact_step_revisions
        self._clock = clock
        self._applied_index, _term = backend.consistent_index()
        self._physical_waiters: list[tuple[int, CompactResponse]] = []
        #: the backend file's size, read once per `apply` call (it grows only on commits).
        self._size_bytes: int | None = None
        self._nospace = False
        self._corrupt = False
        self._reload_alarms()
        self._handlers: dict[type, Callable[[Any], Response]] = {
            PutRequest: self._put,
            DeleteRangeRequest: self._delete_range,
            TxnRequest: self._txn,
            LeaseGrantRequest: self._lease_grant,
            LeaseRevokeRequest: self._lease_revoke,
            AlarmRequest: self._alarm,
            MemberAttrSetRequest: self._member_attr_set,
            ClusterVersionSetRequest: self._cluster_version_set,
            AuthEnableRequest: self._auth_enable,
            AuthDisableRequest: self._auth_disable,
            AuthenticateRequest: self._authenticate,
            UserAddRequest: self._user_add,
            UserDeleteRequest: self._user_delete,
            UserChangePasswordRequest: self._user_change_password,
            UserGrantRoleRequest: self._user_grant_role,
            UserRevokeRoleRequest: self._user_revoke_role,
            RoleAddRequest: self._role_add,
            RoleDeleteRequest: self._role_delete,
            RoleGrantPermissionRequest: self._role_grant_permission,
            RoleRevokePermissionRequest: self._role_revoke_permission,
        }
        self._batch: ApplyBatch = ApplyBatch(self._applied_index)

    # --- state ----------------------------------------------------------------------------

    @property
    def applied_index(self) -> int:
        """Index of the last entry whose effects are in the backend (committed or not)."""
        return self._applied_index

    @property
    def nospace(self) -> bool:
        """A NOSPACE alarm is raised: puts, txns with puts and lease grants are refused."""
        return self._nospace

    @property
    def corrupt(self) -> bool:
        """A CORRUPT alarm is raised: every kv and lease request is refused."""
        return self._corrupt

    def reload(self) -> None:
        """Re-read the applied index, the alarms and the auth store from the backend (after a
        batch abort; reload the mvcc store too)."""
        self._applied_index, _term = self._backend.consistent_index()
        self._reload_alarms()
        self.auth.reload()

    def restore(self) -> int:
        """Reload everything cached above the backend after its file was replaced wholesale
        (`Backend.restore_from_file`, a leader's snapshot); returns the new applied index.

        The new file carries its own consistent index, so the entries the WAL replays
        afterwards are skipped or applied exactly as on the member that produced it.
        Physical compactions waiting here stay queued: they are answered by
        `do_background_work` once the new file's own compaction (if any) has finished, and
        that file holds their compaction's effect or a later one.
        """
        self._kv.reload()
        self.reload()
        if self._lessor is not None:
            orphans = self._lessor.restore(
                LeaseStore(self._backend).load(), self._kv.iter_live(), self._clock()
            )
            if orphans:
                logger.warning("restore: %d key(s) name a lease that is not stored", orphans)
        return self._applied_index

    def _reload_alarms(self) -> None:
        self._nospace = bool(self._alarms.get(AlarmType.NOSPACE))
        self._corrupt = bool(self._alarms.get(AlarmType.CORRUPT))

    # --- entries --------------------------------------------------------------------------

    def apply(self, entries: Sequence[Entry]) -> ApplyBatch:
        """Apply the committed `entries` (in log order) that the backend does not hold yet."""
        batch = self._batch = ApplyBatch(self._applied_index)
        self._size_bytes = None
        for entry in entries:
            if entry.index <= self._applied_index:
                batch.skipped += 1
                if entry.type == EntryType.CONF_CHANGE:
                    self._replay_conf_change(entry)
                continue
            result: ApplyResult | _Deferred
            if entry.type == EntryType.CONF_CHANGE:
                request_id, result = self._apply_conf_change_entry(entry)
            else:
                request_id, result = self._apply_normal(entry)
            self._backend.set_consistent_index(entry.index, entry.term)
            self._applied_index = entry.index
            batch.applied += 1
            if request_id and not isinstance(result, _Deferred):
                batch.results[request_id] = result
        batch.applied_index = self._applied_index
        self._backend.batch.maybe_commit()
        return batch

    def _apply_normal(self, entry: Entry) -> tuple[int, ApplyResult | _Deferred]:
        try:
            envelope = decode_envelope(entry)
        except ValueError as exc:
            # Nobody can be woken without an id; the entry only advances the index.
            logger.error("apply: entry %d has no valid envelope (%s); skipped", entry.index, exc)
            return 0, PayloadError(str(exc))
        if envelope is None:
            return 0, _DEFERRED  # a new leader's no-op: it only advances the index
        try:
            request = decode_payload(envelope.payload)
        except PayloadError as exc:
            logger.error("apply: entry %d: %s; answered with the error", entry.index, exc)
            return envelope.request_id, exc
        self._entry_index = entry.index
        self._auth_info = None
        if isinstance(request, AsUser):
            self._auth_info = request.auth_info
            request = request.request
        try:
            if self._auth_info is not None:
                self._check_permissions(request)
            if isinstance(request, CompactRequest):
                return envelope.request_id, self._compact(envelope.request_id, request)
            return envelope.request_id, self._handlers[type(request)](request)
        except _ANSWER_ERRORS as exc:
            return envelope.request_id, exc
        finally:
            self._auth_info = None

    # --- kv -------------------------------------------------------------------------------

    def _put(self, req: PutRequest) -> PutResponse:
        self._refuse_if_corrupt()
        if self._nospace:
            raise NoSpaceError
        if req.lease and self._lessor is None:
            raise LeaseNotFoundError
        fits = self._quota_fits(KV_OVERHEAD_BYTES + len(req.key) + len(req.value))
        resp = self._kv.put(req)
        self._after_write(resp.events)
        if not fits:
            self._quota_exceeded()
        return resp

    def _delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        # Deletes stay allowed under NOSPACE: they are how an operator makes room.
        self._refuse_if_corrupt()
        resp = self._kv.delete_range(req)
        self._after_write(resp.events)
        return resp

    def _txn(self, req: TxnRequest) -> TxnResponse:
        self._refuse_if_corrupt()
        cost = txn_cost_bytes(req)
        if self._nospace and cost > 0:
            raise NoSpaceError
        if self._lessor is None and _txn_names_lease(req):
            raise LeaseNotFoundError
        # etcd checks every txn against the quota, even one without puts (cost 0).
        fits = self._quota_fits(cost)
        resp = self._kv.txn(req)
        self._after_write(resp.events)
        if not fits:
            self._quota_exceeded()
        return resp

    def _compact(self, request_id: int, req: CompactRequest) -> CompactResponse | _Deferred:
        self._refuse_if_corrupt()
        resp = CompactResponse(self._kv.compact(req.revision))
        if not req.physical or not self._kv.compaction_pending:
            return resp
        if len(self._physical_waiters) >= MAX_PHYSICAL_COMPACT_WAITERS:
            logger.warning("apply: too many physical compactions waiting; answering at once")
            return resp
        self._physical_waiters.append((request_id, resp))
        return _DEFERRED

    def _after_write(self, events: tuple[Event, ...]) -> None:
        if not events:
            return
        self._batch.events.extend(events)
        if self._lessor is not None:
            self._lessor.apply_events(events)

    def _refuse_if_corrupt(self) -> None:
        if self._corrupt:
            raise CorruptError

    def _quota_fits(self, cost_bytes: int) -> bool:
        if self.quota_bytes < 0:
            return True
        if self._size_bytes is None:
            self._size_bytes = self._backend.size_bytes()
        return self._size_bytes + cost_bytes < self.quota_bytes

    def _quota_exceeded(self) -> None:
        """The write is applied (on every member), but its proposer is told there is no space."""
        if not self._nospace:
            self._batch.nospace_alarm_wanted = True
        raise NoSpaceError(f"backend over its quota of {self.quota_bytes} bytes")

    # --- leases ---------------------------------------------------------------------------

    def _lease_grant(self, req: LeaseGrantRequest) -> LeaseGrantResponse:
        self._refuse_if_corrupt()
        if self._nospace:
            raise NoSpaceError
        lessor = self._require_lessor()
        fits = self._quota_fits(LEASE_OVERHEAD_BYTES)
        ttl_s = lessor.grant(req.lease_id, req.ttl_s, self._clock())
        if not fits:
            self._quota_exceeded()
        return LeaseGrantResponse(self._kv.current_revision, req.lease_id, ttl_s)

    def _lease_revoke(self, req: LeaseRevokeRequest) -> LeaseRevokeResponse:
        self._refuse_if_corrupt()
        lessor = self._require_lessor()
        keys = lessor.revoke(req.lease_id)
        events: tuple[Event, ...] = ()
        if keys:
            # All the lease's keys go in one txn: one revision, as in etcd.
            resp = self._kv.txn(TxnRequest(success=tuple(DeleteRangeRequest(k) for k in keys)))
            events = resp.events
            self._after_write(events)
        return LeaseRevokeResponse(self._kv.current_revision, events)

    def _require_lessor(self) -> Lessor:
        if self._lessor is None:
            # TODO(lease): only until the server always builds a lessor; refused as etcd
            # refuses an unknown lease.
            raise LeaseNotFoundError
        return self._lessor

    # --- alarms, members, cluster ---------------------------------------------------------

    def _alarm(self, req: AlarmRequest) -> AlarmResponse:
        if req.action == AlarmAction.GET:
            alarms = self._alarms.get(req.alarm)
        elif req.action == AlarmAction.ACTIVATE:
            alarms = (self._alarms.activate(req.member_id, req.alarm),)
            if not self._nospace and req.alarm == AlarmType.NOSPACE:
                logger.warning("apply: NOSPACE alarm raised by %x; writes refused", req.member_id)
        else:
            cleared = self._alarms.deactivate(req.member_id, req.alarm)
            alarms = (cleared,) if cleared is not None else ()
        self._reload_alarms()
        return AlarmResponse(self._kv.current_revision, alarms)

    def _member_attr_set(self, req: MemberAttrSetRequest) -> MembersResponse:
        self._membership.set_attributes(req.member_id, req.name, req.client_urls)
        return MembersResponse(self._membership.members())

    def _cluster_version_set(self, req: ClusterVersionSetRequest) -> ClusterVersionSetResponse:
        self._membership.set_cluster_version(req.version)
        return ClusterVersionSetResponse(req.version)

    def _apply_conf_change_entry(self, entry: Entry) -> tuple[int, ApplyResult]:
        try:
            request_id, cc = _decode_conf_change(entry)
        except ValueError as exc:
            logger.error("apply: conf change at %d is unreadable (%s)", entry.index, exc)
            self._membership.record_rejected(entry.index)
            return 0, PayloadError(str(exc))
        try:
            members = self._membership.apply_conf_change(cc)
        except (MembershipError, ValueError) as exc:
            # Rejected on every member alike; the raft configuration does not change.
            self._membership.record_rejected(entry.index)
            logger.info("apply: conf change at %d rejected: %s", entry.index, exc)
            error = exc if isinstance(exc, MembershipError) else PayloadError(str(exc))
            return request_id, error
        conf_state = None
        if self._apply_conf_change_cb is not None:
            conf_state = self._apply_conf_change_cb(cc)
        return request_id, MembersResponse(members, conf_state)

    def _replay_conf_change(self, entry: Entry) -> None:
        """A conf change the backend holds already: only the raft core needs it again."""
        if self._apply_conf_change_cb is None or self._membership.was_rejected(entry.index):
            return
        try:
            _request_id, cc = _decode_conf_change(entry)
        except ValueError:
            return  # it was rejected when first applied, whatever the record says
        self._apply_conf_change_cb(cc)

    # --- auth -----------------------------------------------------------------------------
    # Every management request needs the root role while auth is enabled, checked here against
    # the state this entry sees, so all members decide alike (etcd's needAdminPermission).

    def _lease_keys(self, lease_id: int) -> tuple[bytes, ...]:
        if self._lessor is None or not self._lessor.exists(lease_id):
            return ()
        return self._lessor.keys(lease_id)

    def _check_permissions(self, request: Request) -> None:
        """A client's write may touch only what its user may write (and read what it reads
        back), judged against the auth state this entry sees, with the auth revision its
        user was checked at (etcd's authApplierV3). Internal writes (lease expiry) carry no
        user and are not checked."""
        if isinstance(request, PutRequest | DeleteRangeRequest | TxnRequest):
            needs = needs_of(request, self._lease_keys)
        elif isinstance(request, LeaseRevokeRequest):
            needs = revoke_needs(request.lease_id, self._lease_keys)
        else:
            return
        check_needs(self.auth, self._auth_info, needs)

    def _admin(self) -> AuthStore:
        self.auth.check_admin(self._auth_info)
        return self.auth

    def _auth_enable(self, _req: AuthEnableRequest) -> AuthResponse:
        self._admin().auth_enable()
        return AuthResponse()

    def _auth_disable(self, _req: AuthDisableRequest) -> AuthResponse:
        self._admin().auth_disable()
        return AuthResponse()

    def _authenticate(self, req: AuthenticateRequest) -> AuthResponse:
        # The token's suffix is this entry's index: the same token on every member.
        return AuthResponse(self.auth.authenticate(req.name, req.token_prefix, self._entry_index))

    def _user_add(self, req: UserAddRequest) -> AuthResponse:
        self._admin().user_add(req.name, req.password_hash, req.no_password)
        return AuthResponse()

    def _user_delete(self, req: UserDeleteRequest) -> AuthResponse:
        self._admin().user_delete(req.name)
        return AuthResponse()

    def _user_change_password(self, req: UserChangePasswordRequest) -> AuthResponse:
        self._admin().user_change_password(req.name, req.password_hash)
        return AuthResponse()

    def _user_grant_role(self, req: UserGrantRoleRequest) -> AuthResponse:
        self._admin().user_grant_role(req.user, req.role)
        return AuthResponse()

    def _user_revoke_role(self, req: UserRevokeRoleRequest) -> AuthResponse:
        self._admin().user_revoke_role(req.name, req.role)
        return AuthResponse()

    def _role_add(self, req: RoleAddRequest) -> AuthResponse:
        self._admin().role_add(req.name)
        return AuthResponse()

    def _role_delete(self, req: RoleDeleteRequest) -> AuthResponse:
        self._admin().role_delete(req.role)
        return AuthResponse()

    def _role_grant_permission(self, req: RoleGrantPermissionRequest) -> AuthResponse:
        self._admin().role_grant_permission(req.name, req.permission)
        return AuthResponse()

    def _role_revoke_permission(self, req: RoleRevokePermissionRequest) -> AuthResponse:
        self._admin().role_revoke_permission(req.role, req.key, req.range_end)
        return AuthResponse()

    # --- background work ------------------------------------------------------------------

    def conf_change_rejected(self, index: int) -> bool:
        """Whether the conf change at ``index`` was refused by the membership rules."""
        return self._membership.was_rejected(index)

    def has_background_work(self) -> bool:
        """Compaction is pending (or physical compactions wait for their answer)."""
        return self._kv.compaction_pending or bool(self._physical_waiters)

    def do_background_work(self, max_steps: int = 1) -> dict[int, ApplyResult]:
        """Run up to `max_steps` bounded compaction steps, committing after each (so readers
        see the space come back and the batch never grows with the compaction); returns the
        results of the physical compactions that are now done."""
        if max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        for _ in range(max_steps):
            if not self._kv.compaction_pending:
                break
            self._kv.compact_step(self._compact_step_revisions)
            self._backend.batch.commit()
        if self._kv.compaction_pending or not self._physical_waiters:
            return {}
        done: dict[int, ApplyResult] = dict(self._physical_waiters)
        self._physical_waiters.clear()
        return done


def _decode_conf_change(entry: Entry) -> tuple[int, ConfChange]:
    try:
        return decode_conf_change(entry)
    except ValueError:
        # Not proposed through the member's shell (no request id), e.g. bootstrap changes.
        return 0, ConfChange.decode(entry.data)


def txn_cost_bytes(req: TxnRequest) -> int:
    """etcd's quota cost of a txn: the larger branch's puts (nested txns counted too, which
    etcd 3.4 forgets: a put inside a nested txn takes space all the same)."""

    def branch(ops: Sequence[object]) -> int:
        total = 0
        for op in ops:
            if isinstance(op, PutRequest):
                total += KV_OVERHEAD_BYTES + len(op.key) + len(op.value)
            elif isinstance(op, TxnRequest):
                total += txn_cost_bytes(op)
        return total

    return max(branch(req.success), branch(req.failure))


def _txn_names_lease(req: TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest) and op.lease:
            return True
        if isinstance(op, TxnRequest) and _txn_names_lease(op):
            return True
    return False
