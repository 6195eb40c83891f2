"""Member and alarm records, and the byte formats they travel and rest in.

A member is stored, and carried in a conf change's context, as etcd's own `etcdserverpb.Member`
message (the fields are the same ones MemberList shows), so no second format exists for it.

Conf change context (after the envelope's request id, which `kvorum.server.envelope` strips):
``flags (1 byte) || etcdserverpb.Member``. Flag bit 0 marks an ADD_NODE that promotes an existing
learner (etcd's `ConfigChangeContext.IsPromote`); the other bits must be zero. A REMOVE_NODE
needs no context; an empty context decodes as "no member record".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kvorum.api.pb.etcdserverpb import rpc_pb2

_FLAG_PROMOTE = 0x01
_KNOWN_FLAGS = _FLAG_PROMOTE


@dataclass(frozen=True, slots=True)
class Member:
    """One cluster member. `name` and `client_urls` stay empty until the member publishes them
    (etcd's "unstarted" member); `peer_urls` come with the conf change that added it."""

    id: int
    name: str = ""
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    @property
    def is_started(self) -> bool:
        """etcd's IsStarted: the member has published its name since it joined."""
        return self.name != ""


class AlarmAction(enum.IntEnum):
    """etcdserverpb.AlarmRequest.AlarmAction."""

    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


class AlarmType(enum.IntEnum):
    """etcdserverpb.AlarmType. NONE in a GET asks for every alarm."""

    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


@dataclass(frozen=True, slots=True, order=True)
class AlarmMember:
    """One raised alarm: which member raised it, which kind."""

    member_id: int
    alarm: AlarmType


@dataclass(frozen=True, slots=True)
class ConfChangeContext:
    """What a conf change carries besides its type and node id."""

    member: Member | None = None
    is_promote: bool = False


def encode_member(member: Member) -> bytes:
    return rpc_pb2.Member(
        ID=member.id,
        name=member.name,
        peerURLs=member.peer_urls,
        clientURLs=member.client_urls,
        isLearner=member.is_learner,
    ).SerializeToString()


def decode_member(data: bytes) -> Member:
    """Inverse of `encode_member`; raises ValueError for bytes that are not a Member."""
    msg = rpc_pb2.Member()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"malformed member record: {exc}") from None
    return Member(
        id=msg.ID,
        name=msg.name,
        peer_urls=tuple(msg.peerURLs),
        client_urls=tuple(msg.clientURLs),
        is_learner=msg.isLearner,
    )


def encode_conf_change_context(ctx: ConfChangeContext) -> bytes:
    flags = _FLAG_PROMOTE if ctx.is_promote else 0
    body = encode_member(ctx.member) if ctx.member is not None else b""
    return bytes([flags]) + body


def decode_conf_change_context(data: bytes) -> ConfChangeContext:
    """Inverse of `encode_conf_change_context`; raises ValueError for an unknown format."""
    if not data:
        return ConfChangeContext()
    flags = data[0]
    if flags & ~_KNOWN_FLAGS:
        raise ValueError(f"conf change context has unknown flags {flags:#04x}")
    member = decode_member(data[1:]) if len(data) > 1 else None
    return ConfChangeContext(member, bool(flags & _FLAG_PROMOTE))
