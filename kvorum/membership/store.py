"""The member list, the removed ids and the cluster identity, kept in the backend.

Layout: bucket `members` maps the member id (8 bytes big-endian) to its `etcdserverpb.Member`
record; bucket `members_removed` maps every removed id to b"" (etcd's rule: an id once removed
never rejoins, so a stale member cannot come back under its old identity); the cluster id and
the cluster version live in `meta`.

Every write goes through the backend's open batch, the same LMDB transaction the apply layer
writes the entry's consistent index into, so a membership change and its applied index commit
together. Reads go through `Backend.view()`: on the apply thread they see the applied changes
of the open batch. Nothing is cached: a cluster has a handful of members, and a batch abort
cannot leave a stale copy behind.

Two kinds of checks, as in etcd:

* `validate_conf_change` runs when a committed conf change is applied, on every member, against
  the same state, so every member accepts or rejects it alike (etcd's
  `ValidateConfigurationChange`).
* `check_may_add` / `check_may_remove` / `check_may_promote` run on the member that is asked
  for the change, before it proposes anything (etcd's `mayAddMember` & co, the
  `--strict-reconfig-check` guard). They need the server's view of which peers are connected
  and how far a learner's log has caught up, which the caller passes in.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from typing import Final

from kvorum.backend import Backend, schema
from kvorum.membership.errors import (
    IDRemovedError,
    LearnerNotReadyError,
    MemberExistsError,
    MemberNotFoundError,
    MemberNotLearnerError,
    NotEnoughStartedMembersError,
    PeerURLExistsError,
    TooManyLearnersError,
    UnhealthyClusterError,
)
from kvorum.membership.types import (
    ConfChangeContext,
    Member,
    decode_conf_change_context,
    decode_member,
    encode_member,
)
from kvorum.raft.types import ConfChange, ConfChangeType

#: etcd 3.4 allows one learner at a time.
MAX_LEARNERS: Final = 1
#: etcd's readyPercent: a learner may be promoted once its log reaches 90% of the leader's.
LEARNER_READY_RATIO: Final = 0.9
#: meta keys owned by this module (prefixed so they cannot clash with the backend's own).
META_CLUSTER_ID: Final = b"membership_cluster_id"
META_CLUSTER_VERSION: Final = b"membership_cluster_version"
#: prefix of the meta keys recording which committed conf changes were rejected (+ index).
META_REJECTED_CONF_CHANGE: Final = b"membership_rejected_conf_change/"

_ID = struct.Struct(">Q")


class MembershipStore:
    """Members, removed ids, cluster id and version over a `Backend`. One writer: the applier."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    # --- reads ----------------------------------------------------------------------------

    def members(self) -> tuple[Member, ...]:
        """Every member, in id order."""
        with self._backend.view() as txn:
            rows = list(txn.cursor(db=self._backend.db(schema.MEMBERS)).iternext())
        return tuple(decode_member(bytes(value)) for _key, value in rows)

    def member(self, member_id: int) -> Member | None:
        with self._backend.view() as txn:
            raw = txn.get(_ID.pack(member_id), db=self._backend.db(schema.MEMBERS))
        return decode_member(bytes(raw)) if raw is not None else None

    def is_removed(self, member_id: int) -> bool:
        with self._backend.view() as txn:
            raw = txn.get(_ID.pack(member_id), db=self._backend.db(schema.MEMBERS_REMOVED))
        return raw is not None

    def removed_ids(self) -> tuple[int, ...]:
        with self._backend.view() as txn:
            cursor = txn.cursor(db=self._backend.db(schema.MEMBERS_REMOVED))
            keys = list(cursor.iternext(values=False))
        return tuple(_ID.unpack(bytes(k))[0] for k in keys)

    def voting_members(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members() if not m.is_learner)

    def cluster_id(self) -> int:
        """The cluster id; 0 until bootstrap sets it."""
        with self._backend.view() as txn:
            raw = txn.get(META_CLUSTER_ID, db=self._backend.db(schema.META))
        return _ID.unpack(bytes(raw))[0] if raw is not None else 0

    def cluster_version(self) -> str:
        """The cluster version ("3.4.0"); "" until decided."""
        with self._backend.view() as txn:
            raw = txn.get(META_CLUSTER_VERSION, db=self._backend.db(schema.META))
        return bytes(raw).decode() if raw is not None else ""

    def was_rejected(self, index: int) -> bool:
        """Whether the conf change committed at `index` was rejected when it was applied.

        After a restart the raft log replays conf changes the store already holds; the raft
        configuration must be rebuilt from exactly the accepted ones, and validating them again
        against today's members would give other answers (a removed member is now "removed").
        """
        with self._backend.view() as txn:
            raw = txn.get(
                META_REJECTED_CONF_CHANGE + _ID.pack(index), db=self._backend.db(schema.META)
            )
        return raw is not None

    # --- writes (apply thread) -----------------------------------------------------------

    def record_rejected(self, index: int) -> None:
        """Remember that the conf change at `index` was rejected (rare: one small key each)."""
        self._put(schema.META, META_REJECTED_CONF_CHANGE + _ID.pack(index), b"")

    def set_cluster_id(self, cluster_id: int) -> None:
        self._put(schema.META, META_CLUSTER_ID, _ID.pack(cluster_id))

    def set_cluster_version(self, version: str) -> None:
        self._put(schema.META, META_CLUSTER_VERSION, version.encode())

    def add(self, member: Member) -> None:
        """Store a new member (no checks: `validate_conf_change` comes first)."""
        self._put(schema.MEMBERS, _ID.pack(member.id), encode_member(member))

    def remove(self, member_id: int) -> None:
        """Drop the member and remember its id forever."""
        txn = self._backend.batch.write()
        txn.delete(_ID.pack(member_id), db=self._backend.db(schema.MEMBERS))
        txn.put(_ID.pack(member_id), b"", db=self._backend.db(schema.MEMBERS_REMOVED))

    def update_peer_urls(self, member_id: int, peer_urls: tuple[str, ...]) -> Member:
        m = self._existing(member_id)
        updated = Member(m.id, m.name, peer_urls, m.client_urls, m.is_learner)
        self.add(updated)
        return updated

    def promote(self, member_id: int) -> Member:
        m = self._existing(member_id)
        if not m.is_learner:
            raise MemberNotLearnerError(f"{member_id:x}")
        updated = Member(m.id, m.name, m.peer_urls, m.client_urls, False)
        self.add(updated)
        return updated

    def set_attributes(self, member_id: int, name: str, client_urls: tuple[str, ...]) -> Member:
        """What a member publishes when it starts: its name and client URLs (MemberAttrSet)."""
        m = self._existing(member_id)
        updated = Member(m.id, name, m.peer_urls, client_urls, m.is_learner)
        self.add(updated)
        return updated

    def _existing(self, member_id: int) -> Member:
        if self.is_removed(member_id):
            raise IDRemovedError(f"{member_id:x}")
        m = self.member(member_id)
        if m is None:
            raise MemberNotFoundError(f"{member_id:x}")
        return m

    def _put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        self._backend.batch.write().put(key, value, db=self._backend.db(bucket))

    # --- committed conf changes -----------------------------------------------------------

    def validate_conf_change(self, cc: ConfChange, ctx: ConfChangeContext) -> None:
        """Raise the error etcd gives if `cc` may not be applied to the current membership.

        A rejected change is not applied by anyone: every member sees the same state, so every
        member rejects it, and the raft configuration stays as it was.
        """
        node_id = cc.node_id
        if self.is_removed(node_id):
            raise IDRemovedError(f"{node_id:x}")
        members = {m.id: m for m in self.members()}
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if ctx.is_promote:
                current = members.get(node_id)
                if current is None:
                    raise MemberNotFoundError(f"{node_id:x}")
                if not current.is_learner:
                    raise MemberNotLearnerError(f"{node_id:x}")
                return
            if node_id in members:
                raise MemberExistsError(f"{node_id:x}")
            new_urls = ctx.member.peer_urls if ctx.member is not None else ()
            _check_urls_free(new_urls, members.values())
            if cc.type == ConfChangeType.ADD_LEARNER_NODE:
                learners = sum(1 for m in members.values() if m.is_learner)
                if learners + 1 > MAX_LEARNERS:
                    raise TooManyLearnersError(f"{learners} learner(s) already")
        elif cc.type == ConfChangeType.REMOVE_NODE:
            if node_id not in members:
                raise MemberNotFoundError(f"{node_id:x}")
        else:  # UPDATE_NODE
            if node_id not in members:
                raise MemberNotFoundError(f"{node_id:x}")
            new_urls = ctx.member.peer_urls if ctx.member is not None else ()
            _check_urls_free(new_urls, (m for m in members.values() if m.id != node_id))

    def apply_conf_change(self, cc: ConfChange) -> tuple[Member, ...]:
        """Validate and apply a committed conf change; returns the new member list.

        `cc.context` is the member record (see `types`), the envelope's request id already
        removed. Raises a `MembershipError` (nothing written) if etcd would reject it, or
        ValueError if the context is not in kvorum's format.
        """
        ctx = decode_conf_change_context(cc.context)
        if ctx.member is not None and ctx.member.id not in (0, cc.node_id):
            raise ValueError(
                f"conf change for {cc.node_id:x} carries the record of {ctx.member.id:x}"
            )
        self.validate_conf_change(cc, ctx)
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if ctx.is_promote:
                self.promote(cc.node_id)
            else:
                record = ctx.member if ctx.member is not None else Member(cc.node_id)
                # The conf change type decides voter or learner; the record only describes.
                self.add(
                    Member(
                        cc.node_id,
                        record.name,
                        record.peer_urls,
                        record.client_urls,
                        cc.type == ConfChangeType.ADD_LEARNER_NODE,
                    )
                )
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.remove(cc.node_id)
        else:
            urls = ctx.member.peer_urls if ctx.member is not None else ()
            self.update_peer_urls(cc.node_id, urls)
        return self.members()

    # --- checks before proposing (the asked member only) ---------------------------------

    def check_may_add(
        self,
        member: Member,
        *,
        self_id: int,
        active_ids: Collection[int],
        strict: bool = True,
    ) -> None:
        """etcd's checks before proposing a member addition.

        Always: the id is not removed nor taken, the peer URLs are free, a learner slot is
        free. With `strict` (--strict-reconfig-check, etcd's default) a voter is added only if
        a quorum of the enlarged cluster has started, and every voter is connected
        (`active_ids`: peers this member heard from within etcd's health interval).
        """
        members = self.members()
        if self.is_removed(member.id):
            raise IDRemovedError(f"{member.id:x}")
        if any(m.id == member.id for m in members):
            raise MemberExistsError(f"{member.id:x}")
        _check_urls_free(member.peer_urls, members)
        if member.is_learner and sum(1 for m in members if m.is_learner) + 1 > MAX_LEARNERS:
            raise TooManyLearnersError
        if not strict or member.is_learner:
            return
        voters = [m for m in members if not m.is_learner]
        started = sum(1 for m in voters if m.is_started)
        total = len(voters) + 1
        # etcd's exception: a one-member cluster may always grow to two (restoring a backup).
        if not (started == 1 and total == 2) and started < total // 2 + 1:
            raise NotEnoughStartedMembersError
        if any(m.id != self_id and m.id not in active_ids for m in voters):
            raise UnhealthyClusterError

    def check_may_remove(
        self,
        member_id: int,
        *,
        self_id: int,
        active_ids: Collection[int],
        strict: bool = True,
    ) -> None:
        """etcd's checks before proposing a removal: the member exists, and with `strict`, the
        voters left still hold a started quorum and a connected one."""
        m = self._existing(member_id)
        if not strict or m.is_learner:
            return
        voters = self.voting_members()
        rest = [v for v in voters if v.id != member_id]
        started = sum(1 for v in rest if v.is_started)
        if started < len(rest) // 2 + 1:
            raise NotEnoughStartedMembersError
        if member_id != self_id and member_id not in active_ids:
            return  # a member that is down is not part of the active quorum: safe to drop
        active = sum(1 for v in voters if v.id == self_id or v.id in active_ids)
        if active - 1 < 1 + (len(voters) - 1) // 2:
            # etcd's mayRemoveMember answers this last check with ErrUnhealthy (UNAVAILABLE),
            # the started-members one above with ErrNotEnoughStartedMembers.
            raise UnhealthyClusterError

    def check_may_promote(
        self,
        member_id: int,
        *,
        learner_match_index: int | None,
        leader_match_index: int,
        strict: bool = True,
    ) -> None:
        """etcd's checks before proposing a promotion.

        `learner_match_index` is how far the leader knows the learner's log to match (None if
        the leader tracks no progress for it); the learner must have reached 90% of the
        leader's own. With `strict`, the promoted member plus the started voters must form a
        quorum of the enlarged voter set.
        """
        m = self._existing(member_id)
        if not m.is_learner:
            raise MemberNotLearnerError(f"{member_id:x}")
        if (
            learner_match_index is not None
            and learner_match_index < leader_match_index * LEARNER_READY_RATIO
        ):
            raise LearnerNotReadyError(f"match {learner_match_index} of {leader_match_index}")
        if not strict:
            return
        voters = self.voting_members()
        started = 1 + sum(1 for v in voters if v.is_started)
        if started < (len(voters) + 1) // 2 + 1:
            raise NotEnoughStartedMembersError


def _check_urls_free(urls: tuple[str, ...], members: Iterable[Member]) -> None:
    taken: set[str] = set()
    for m in members:
        taken.update(m.peer_urls)
    for url in urls:
        if url in taken:
            raise PeerURLExistsError(url)
