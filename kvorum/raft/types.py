"""The data the raft core takes in and gives out.

Everything here is plain immutable data: the core never performs I/O, so what it
wants done (persist, send, apply) is described by these values and carried out by
the caller. Numbering of message, entry and conf-change types follows etcd's
``raftpb`` so that a transport can map them one to one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

NONE = 0
"""The node id that means "nobody" (no leader, no vote)."""


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class MessageType(IntEnum):
    # Local messages never cross the network: the core feeds them to itself.
    HUP = 0  # start an election (pre-vote first when enabled)
    BEAT = 1  # leader: send heartbeats now
    PROP = 2  # a proposal; a follower forwards it to the leader
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local: the transport could not reach a peer
    SNAP_STATUS = 11  # local: the transport reports how a snapshot send ended
    CHECK_QUORUM = 12  # local: leader checks it still hears from a quorum
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.READ_INDEX_RESP,
        MessageType.PRE_VOTE_RESP,
    }
)


class StateRole(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner to voter
    REMOVE_NODE = 1
    UPDATE_NODE = 2  # no change to the configuration; carries context only
    ADD_LEARNER_NODE = 3


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Bytes this entry weighs for flow control (payload plus a fixed header)."""
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the application likes to observe; never persisted."""

    leader: int
    role: StateRole


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership: ids of voters and learners, each sorted ascending."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    conf_state: ConfState = field(default_factory=ConfState)
    index: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Application state up to and including ``metadata.index``; ``data`` is opaque."""

    data: bytes = b""
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single membership change, carried in a CONF_CHANGE entry's data."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    _HEADER = struct.Struct(">BQ")

    def encode(self) -> bytes:
        return self._HEADER.pack(int(self.type), self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) < cls._HEADER.size:
            raise ValueError(f"conf change record too short: {len(data)} bytes")
        kind, node_id = cls._HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[cls._HEADER.size :]))


@dataclass(frozen=True, slots=True)
class Message:
    """One raft message. ``frm`` is the sender (``from`` is a Python keyword)."""

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the state machine has applied ``index``."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """Work the application must carry out, in this order, then call ``advance()``.

    1. Persist ``snapshot`` (if not empty), then ``entries``, then ``hard_state`` (if
       not None) to stable storage with one fsync. ``entries`` may overwrite a
       suffix of what is stored: drop stored entries at index >= entries[0].index.
    2. Send ``messages``. Every message may be sent only after step 1 is durable,
       with one exception (thesis §10.2.1): messages of type APP, SNAP and
       HEARTBEAT sent by a leader may go out while step 1 is still in progress.
       The leader counts its own log toward commitment only once ``advance()``
       says it is persisted, so nothing commits on a non-durable leader copy.
    3. Apply ``snapshot`` and then ``committed_entries`` to the state machine.
       Committed entries are always already durable on a quorum *and* locally.
    4. Serve each of ``read_states`` once the state machine has applied its index.
    5. Call ``advance()``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: tuple[ReadState, ...] = ()
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot = EMPTY_SNAPSHOT
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    must_sync: bool = False


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match: int
    next: int
    state: ProgressState
    recent_active: bool
    is_learner: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    leader: int
    role: StateRole
    lead_transferee: int
    conf_state: ConfState
    progress: dict[int, PeerStatus]  # only on the leader; empty elsewhere


# --- errors -------------------------------------------------------------------


class RaftError(Exception):
    """Base for errors the core raises."""


class ProposalDroppedError(RaftError):
    """A proposal was refused; the text says why (no leader, transfer, limits)."""


class StorageError(RaftError):
    pass


class CompactedError(StorageError):
    """The requested index is older than the storage's first index."""


class UnavailableError(StorageError):
    """The requested index is beyond the storage's last index."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot offered is older than the one already held."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The application cannot produce a snapshot right now; try again later."""


class Storage(Protocol):
    """Read access to the persisted raft log, as the core needs it.

    The application writes to its storage when it carries out a ``Ready``; the core
    only reads. Index 0 / term 0 is the implicit empty entry before the log.
    """

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one if any, then up to ``max_size`` bytes."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; valid for first_index()-1 .. last_index()."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class Logger(Protocol):
    """The subset of ``logging.Logger`` the core uses; passed in at construction."""

    def debug(self, msg: str, *args: object) -> None: ...

    def info(self, msg: str, *args: object) -> None: ...

    def warning(self, msg: str, *args: object) -> None: ...

    def error(self, msg: str, *args: object) -> None: ...
