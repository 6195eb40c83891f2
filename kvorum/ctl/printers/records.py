"""Per-endpoint results of the ``endpoint`` commands, as etcdctl's printers receive them."""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.api.pb.etcdserverpb import rpc_pb2

__all__ = ["EpHashKV", "EpHealth", "EpStatus", "Rendered"]


@dataclass(frozen=True, slots=True)
class EpStatus:
    """``endpoint status`` of one endpoint (etcdctl's ``epStatus``)."""

    endpoint: str
    response: rpc_pb2.StatusResponse


@dataclass(frozen=True, slots=True)
class EpHashKV:
    """``endpoint hashkv`` of one endpoint (etcdctl's ``epHashKV``)."""

    endpoint: str
    response: rpc_pb2.HashKVResponse


@dataclass(frozen=True, slots=True)
class EpHealth:
    """``endpoint health`` of one endpoint; ``took`` is Go's duration text, ``error`` empty
    when healthy."""

    endpoint: str
    health: bool
    took: str
    error: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a printer writes: bytes for stdout and for stderr."""

    out: bytes = b""
    err: bytes = b""

    def __add__(self, other: Rendered) -> Rendered:
        return Rendered(self.out + other.out, self.err + other.err)
