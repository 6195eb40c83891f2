"""Names of the LMDB databases (buckets) and of the keys kept in the `meta` bucket.

One table, so every owner of persistent state (mvcc, lease, auth, membership, alarms) finds its
bucket here and no two owners pick the same name by accident.
"""

from __future__ import annotations

from typing import Final

# --- buckets -------------------------------------------------------------------------------
#: mvcc primary store: index key (escaped user key + separator + revision) -> KeyValue record.
KEY_INDEX: Final = b"key_index"
#: mvcc revision log: revision (16 bytes) -> kind byte + user key; watch catch-up and compaction.
KEY: Final = b"key"
#: small fixed records: applied raft index/term, revisions, compaction progress.
META: Final = b"meta"
LEASE: Final = b"lease"
AUTH: Final = b"auth"
AUTH_USERS: Final = b"auth_users"
AUTH_ROLES: Final = b"auth_roles"
MEMBERS: Final = b"members"
MEMBERS_REMOVED: Final = b"members_removed"
ALARM: Final = b"alarm"

ALL_BUCKETS: Final = (
    KEY_INDEX,
    KEY,
    META,
    LEASE,
    AUTH,
    AUTH_USERS,
    AUTH_ROLES,
    MEMBERS,
    MEMBERS_REMOVED,
    ALARM,
)

# --- keys in the meta bucket ---------------------------------------------------------------
#: 16 bytes: last applied raft entry index and its term, big-endian unsigned.
META_CONSISTENT_INDEX: Final = b"consistent_index"
#: 8 bytes: the store's current main revision.
META_CURRENT_REVISION: Final = b"current_revision"
#: 8 bytes: the highest compaction revision requested (what reads are checked against).
META_SCHEDULED_COMPACT: Final = b"scheduled_compact_revision"
#: 8 bytes: revisions at or below this are already physically compacted.
META_FINISHED_COMPACT: Final = b"finished_compact_revision"
#: 16 bytes: the last revision entry the running compaction has processed.
META_COMPACT_PROGRESS: Final = b"compact_progress"

#: meta keys left out of `Backend.hash()`: they differ between members with equal data.
HASH_IGNORED_META: Final = frozenset({META_CONSISTENT_INDEX})
