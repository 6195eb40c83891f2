"""How a member finds out who it is: a new cluster, a restart, or joining a running cluster.

Three cases, decided as etcd decides them:

- **restart** -- the data directory already holds a kvorum WAL. The member and cluster ids come
  from the WAL's metadata; ``--initial-cluster*`` flags are ignored (and that is logged). A data
  dir of another member of the same cluster, or one that is not kvorum's, is refused.
- **new** (``--initial-cluster-state new``, empty data dir) -- every initial member derives every
  id from the flags alone (``kvorum.ids``), so the members agree without talking. All initial
  members are voters from index 0, and the membership store is seeded with them.
- **join** (``existing``, empty data dir) -- the member was added with ``member add``; it asks a
  peer listed in ``--initial-cluster`` for the cluster info (cluster id, members), finds itself
  in it by its peer URLs, and starts with an empty log as a non-voter: the leader's log or
  snapshot makes it a member (conf changes replayed set each member's final role).

Cluster info travels as etcd's own ``MemberListResponse`` message (header carries the cluster
id and the answering member), so no new format exists for it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.config import ConfigError, ServerConfig
from kvorum.datadir import DataDir, DataDirError
from kvorum.membership.types import Member
from kvorum.transport import ClusterInfoError

__all__ = [
    "CLUSTER_INFO_TIMEOUT_S",
    "BootstrapError",
    "ClusterInfo",
    "Mode",
    "Plan",
    "data_dir_for",
    "decode_cluster_info",
    "encode_cluster_info",
    "plan",
]

logger = logging.getLogger("kvorum.server.bootstrap")

CLUSTER_INFO_TIMEOUT_S = 5.0
"""How long one peer may take to answer a joining member's cluster-info request."""

FetchInfo = Callable[[str, float], Awaitable[bytes]]
"""``fetch(peer_url, timeout_s) -> cluster info bytes`` (``transport.fetch_cluster_info``)."""


class BootstrapError(Exception):
    """The member cannot start with this configuration and data; the text says why."""


class Mode(enum.Enum):
    NEW = "new"
    RESTART = "restart"
    JOIN = "join"


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What a running member tells one that joins: the cluster id and its members."""

    cluster_id: int
    responder_id: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Who this member is and how its raft log starts.

    ``members`` seeds the membership store of a new or joining member (empty on restart: the
    backend has them). ``voters`` is the raft configuration an empty log starts from.
    """

    mode: Mode
    member_id: int
    cluster_id: int
    members: tuple[Member, ...]
    voters: tuple[int, ...]


def data_dir_for(config: ServerConfig) -> DataDir:
    return DataDir(config.data_dir, config.wal_dir or None)


# --- cluster info ----------------------------------------------------------------------------


def encode_cluster_info(info: ClusterInfo) -> bytes:
    return rpc_pb2.MemberListResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=info.cluster_id, member_id=info.responder_id),
        members=[
            rpc_pb2.Member(
                ID=m.id,
                name=m.name,
                peerURLs=m.peer_urls,
                clientURLs=m.client_urls,
                isLearner=m.is_learner,
            )
            for m in info.members
        ],
    ).SerializeToString()


def decode_cluster_info(data: bytes) -> ClusterInfo:
    """Inverse of ``encode_cluster_info``; ``BootstrapError`` for bytes that are not one."""
    msg = rpc_pb2.MemberListResponse()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise BootstrapError(f"malformed cluster info: {exc}") from None
    if msg.header.cluster_id == 0 or not msg.members:
        raise BootstrapError("cluster info names no cluster id or no members")
    members = tuple(
        Member(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), m.isLearner)
        for m in msg.members
    )
    return ClusterInfo(msg.header.cluster_id, msg.header.member_id, members)


# --- the decision ----------------------------------------------------------------------------


async def plan(
    config: ServerConfig,
    data_dir: DataDir,
    fetch: FetchInfo,
    *,
    timeout_s: float = CLUSTER_INFO_TIMEOUT_S,
) -> Plan:
    """Decide how this member starts. Blocking file reads only (a WAL's first record)."""
    if config.force_new_cluster:
        raise BootstrapError("--force-new-cluster is not supported by kvorum yet")
    if config.discovery or config.discovery_srv:
        raise BootstrapError("discovery (--discovery, --discovery-srv) is not supported yet")
    try:
        exists = data_dir.exists()
    except DataDirError as exc:
        raise BootstrapError(str(exc)) from None
    if exists:
        return _restart(config, data_dir)
    if config.is_new_cluster:
        return _new(config)
    return await _join(config, fetch, timeout_s)


def _initial(config: ServerConfig) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    try:
        return dict(config.initial_cluster_members), config.initial_member_ids()
    except ConfigError as exc:
        raise BootstrapError(exc.message) from None


def _restart(config: ServerConfig, data_dir: DataDir) -> Plan:
    try:
        identity = data_dir.identity()
    except DataDirError as exc:
        raise BootstrapError(str(exc)) from None
    member_id, cluster_id = identity.member_id, identity.cluster_id
    # Only flags that bootstrapped a cluster ("new") name ids; a member that joined got its
    # id from `member add`, which no flag describes.
    flags_member, flags_cluster = _ids_from_flags(config) if config.is_new_cluster else (None, None)
    if flags_cluster == cluster_id and flags_member is not None and flags_member != member_id:
        # Same cluster, another member's id: two processes would act as one member.
        raise BootstrapError(
            f"data directory {data_dir.path} belongs to member {member_id:x} of cluster "
            f"{cluster_id:x}, but --name {config.name} is member {flags_member:x} of that "
            "cluster; refusing to start on another member's data"
        )
    logger.info(
        "restarting member %x of cluster %x from %s; --initial-cluster flags are ignored on "
        "restart",
        member_id,
        cluster_id,
        data_dir.path,
    )
    return Plan(Mode.RESTART, member_id, cluster_id, (), ())


def _ids_from_flags(config: ServerConfig) -> tuple[int | None, int | None]:
    """This member's and the cluster's ids as the flags describe them (None: they do not)."""
    try:
        ids = config.initial_member_ids()
        return ids.get(config.name), config.initial_cluster_id()
    except ConfigError:
        return None, None


def _new(config: ServerConfig) -> Plan:
    urls, ids = _initial(config)
    if config.name not in ids:
        raise BootstrapError(
            f"couldn't find local name {config.name!r} in the initial cluster configuration"
        )
    cluster_id = config.initial_cluster_id()
    # Names are known for every initial member; client URLs arrive when each one publishes.
    members = tuple(
        Member(ids[name], name, urls[name]) for name in sorted(ids, key=lambda n: ids[n])
    )
    voters = tuple(sorted(m.id for m in members))
    return Plan(Mode.NEW, ids[config.name], cluster_id, members, voters)


async def _join(config: ServerConfig, fetch: FetchInfo, timeout_s: float) -> Plan:
    urls, _ = _initial(config)
    own_urls = set(config.initial_advertise_peer_urls)
    peers = [u for name, us in urls.items() if name != config.name for u in us]
    if not peers:
        raise BootstrapError(
            "--initial-cluster-state existing needs --initial-cluster to list at least one "
            "running member to ask for the cluster's membership"
        )
    info = await _fetch_any(peers, fetch, timeout_s)
    ours = [m for m in info.members if set(m.peer_urls) == own_urls]
    if not ours:
        raise BootstrapError(
            f"cluster {info.cluster_id:x} has no member with peer URLs "
            f"{','.join(sorted(own_urls))}; add it first with "
            f"'etcdctl member add {config.name} --peer-urls={','.join(sorted(own_urls))}'"
        )
    me = ours[0]
    voters = tuple(sorted(m.id for m in info.members if not m.is_learner and m.id != me.id))
    logger.info(
        "joining cluster %x as member %x (%s); %d member(s) known, learning the log from the "
        "leader",
        info.cluster_id,
        me.id,
        "learner" if me.is_learner else "voter once its addition is applied",
        len(info.members),
    )
    return Plan(Mode.JOIN, me.id, info.cluster_id, info.members, voters)


async def _fetch_any(peers: Sequence[str], fetch: FetchInfo, timeout_s: float) -> ClusterInfo:
    failures: list[str] = []
    for url in peers:
        try:
            return decode_cluster_info(await fetch(url, timeout_s))
        except (ClusterInfoError, BootstrapError) as exc:
            failures.append(f"{url}: {exc}")
    raise BootstrapError(
        "could not get the cluster's membership from any peer in --initial-cluster ("
        + "; ".join(failures)
        + ")"
    )
