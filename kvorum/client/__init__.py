"""kvorum's Python client for kvorum and any etcd v3 cluster.

``AsyncClient`` (asyncio) and ``Client`` (synchronous; runs an event loop in a background
thread) speak etcd's gRPC API over several endpoints with failover::

    async with AsyncClient(["http://127.0.0.1:2379"]) as c:
        await c.put("k", b"v")
        r = await c.txn().if_(c.value("k") == b"v").then(c.put_op("k", b"w")).commit()
        async for event in c.watch("k", start_revision=1):
            ...

Results are frozen dataclasses (``types``); failures are ``EtcdError`` subclasses named after
etcd's errors (``errors``).
"""

from kvorum.client.aio import AsyncClient
from kvorum.client.concurrency import Election, Lock
from kvorum.client.errors import *  # noqa: F403
from kvorum.client.errors import __all__ as _errors_all
from kvorum.client.lease import KeepAlive
from kvorum.client.sync import Client
from kvorum.client.txn import Txn
from kvorum.client.types import (
    Alarm,
    DeleteResult,
    Event,
    EventType,
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
from kvorum.client.watch import Watch

__all__ = [
    "Alarm",
    "AsyncClient",
    "Client",
    "DeleteResult",
    "Election",
    "Event",
    "EventType",
    "GetResult",
    "HashKVResult",
    "Header",
    "KeepAlive",
    "KeyValue",
    "LeaseGrant",
    "LeaseTimeToLive",
    "Lock",
    "Member",
    "PutResult",
    "Status",
    "Txn",
    "TxnResult",
    "Watch",
    *_errors_all,
]
