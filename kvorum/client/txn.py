"""Transactions that read like the condition they express, and the request ops they run.

``value("k") == b"v"``, ``version("k") > 0``, ``mod_revision("k") < 7`` build etcd
``Compare`` messages; ``put_op``/``get_op``/``delete_op``/``txn_op`` build ``RequestOp``s; and
``Txn`` collects them::

    await c.txn().if_(c.value("k") == b"v").then(c.put_op("k", b"w")).else_(c.get_op("k")).commit()

``Txn`` is pure: it only assembles a ``TxnRequest`` and hands it to the submit function it was
made with, so the same builder serves the async client (commit returns an awaitable) and the
sync one (commit returns the result).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kvorum.api.pb.etcdserverpb import rpc_pb2

__all__ = [
    "MAX_TXN_OPS",
    "CompareTarget",
    "Txn",
    "create_revision",
    "delete_op",
    "get_op",
    "key_bytes",
    "lease",
    "mod_revision",
    "prefix_end",
    "put_op",
    "range_request",
    "txn_op",
    "value",
    "version",
]

# etcd's default --max-txn-ops: a larger txn is refused by the server anyway; checking here
# turns a round trip into an immediate, clearer error.
MAX_TXN_OPS = 128

_C = rpc_pb2.Compare


def key_bytes(key: str | bytes) -> bytes:
    """Keys and values may be given as str (UTF-8) or bytes; the wire carries bytes."""
    return key.encode() if isinstance(key, str) else key


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix`` (etcd's GetPrefixRangeEnd).

    Trailing 0xff bytes cannot be incremented and are dropped; an all-0xff (or empty) prefix
    means "to the end of the keyspace", which etcd spells as the single byte 0.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _range_end(key: bytes, prefix: bool, range_end: str | bytes | None) -> bytes:
    if prefix and range_end is not None:
        raise ValueError("give either prefix=True or range_end, not both")
    if prefix:
        return prefix_end(key)
    return b"" if range_end is None else key_bytes(range_end)


@dataclass(frozen=True, slots=True)
class CompareTarget:
    """One side of a compare: a key's value, version, create/mod revision or lease.

    The comparison operators return ``rpc_pb2.Compare`` messages, not bools -- that is what
    lets ``value("k") == b"v"`` be written inside ``Txn.if_``.
    """

    target: int
    key: bytes
    range_end: bytes = b""

    def _compare(self, result: int, operand: int | bytes | str) -> rpc_pb2.Compare:
        cmp = _C(result=result, target=self.target, key=self.key, range_end=self.range_end)  # type: ignore[arg-type]
        if self.target == _C.VALUE:
            if isinstance(operand, int):
                raise TypeError("a value compare takes bytes or str")
            cmp.value = key_bytes(operand)
        else:
            if not isinstance(operand, int) or isinstance(operand, bool):
                raise TypeError("version, revision and lease compares take an int")
            field = {
                _C.VERSION: "version",
                _C.CREATE: "create_revision",
                _C.MOD: "mod_revision",
                _C.LEASE: "lease",
            }[self.target]  # type: ignore[index]
            setattr(cmp, field, operand)
        return cmp

    def __eq__(self, other: object) -> rpc_pb2.Compare:  # type: ignore[override]
        return self._compare(_C.EQUAL, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> rpc_pb2.Compare:  # type: ignore[override]
        return self._compare(_C.NOT_EQUAL, other)  # type: ignore[arg-type]

    def __lt__(self, other: int | bytes | str) -> rpc_pb2.Compare:
        return self._compare(_C.LESS, other)

    def __gt__(self, other: int | bytes | str) -> rpc_pb2.Compare:
        return self._compare(_C.GREATER, other)

    __hash__ = None  # type: ignore[assignment]


def _target(
    target: int, key: str | bytes, prefix: bool, range_end: str | bytes | None
) -> CompareTarget:
    k = key_bytes(key)
    return CompareTarget(target, k, _range_end(k, prefix, range_end))


def value(
    key: str | bytes, *, prefix: bool = False, range_end: str | bytes | None = None
) -> CompareTarget:
    return _target(_C.VALUE, key, prefix, range_end)


def version(
    key: str | bytes, *, prefix: bool = False, range_end: str | bytes | None = None
) -> CompareTarget:
    return _target(_C.VERSION, key, prefix, range_end)


def create_revision(
    key: str | bytes, *, prefix: bool = False, range_end: str | bytes | None = None
) -> CompareTarget:
    return _target(_C.CREATE, key, prefix, range_end)


def mod_revision(
    key: str | bytes, *, prefix: bool = False, range_end: str | bytes | None = None
) -> CompareTarget:
    return _target(_C.MOD, key, prefix, range_end)


def lease(
    key: str | bytes, *, prefix: bool = False, range_end: str | bytes | None = None
) -> CompareTarget:
    return _target(_C.LEASE, key, prefix, range_end)


_SORT_ORDERS = {"none": 0, "ascend": 1, "descend": 2}
_SORT_TARGETS = {"key": 0, "version": 1, "create": 2, "mod": 3, "value": 4}


def range_request(
    key: str | bytes,
    *,
    prefix: bool = False,
    range_end: str | bytes | None = None,
    revision: int = 0,
    limit: int = 0,
    keys_only: bool = False,
    count_only: bool = False,
    serializable: bool = False,
    sort_order: str = "none",
    sort_target: str = "key",
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> rpc_pb2.RangeRequest:
    """A RangeRequest; ``sort_order`` is none/ascend/descend, ``sort_target`` key/version/
    create/mod/value (etcdctl's spellings)."""
    k = key_bytes(key)
    try:
        order = _SORT_ORDERS[sort_order.lower()]
        target = _SORT_TARGETS[sort_target.lower()]
    except KeyError as exc:
        raise ValueError(f"unknown sort option {exc.args[0]!r}") from None
    return rpc_pb2.RangeRequest(
        key=k,
        range_end=_range_end(k, prefix, range_end),
        revision=revision,
        limit=limit,
        keys_only=keys_only,
        count_only=count_only,
        serializable=serializable,
        sort_order=order,  # type: ignore[arg-type]
        sort_target=target,  # type: ignore[arg-type]
        min_mod_revision=min_mod_revision,
        max_mod_revision=max_mod_revision,
        min_create_revision=min_create_revision,
        max_create_revision=max_create_revision,
    )


def put_request(
    key: str | bytes,
    value: str | bytes = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=key_bytes(key),
        value=key_bytes(value),
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


def delete_request(
    key: str | bytes,
    *,
    prefix: bool = False,
    range_end: str | bytes | None = None,
    prev_kv: bool = False,
) -> rpc_pb2.DeleteRangeRequest:
    k = key_bytes(key)
    return rpc_pb2.DeleteRangeRequest(
        key=k, range_end=_range_end(k, prefix, range_end), prev_kv=prev_kv
    )


def get_op(key: str | bytes, **kwargs: object) -> rpc_pb2.RequestOp:
    """A range op for a txn; takes ``range_request``'s keyword arguments."""
    return rpc_pb2.RequestOp(request_range=range_request(key, **kwargs))  # type: ignore[arg-type]


def put_op(key: str | bytes, value: str | bytes = b"", **kwargs: object) -> rpc_pb2.RequestOp:
    """A put op for a txn; takes ``put_request``'s keyword arguments."""
    return rpc_pb2.RequestOp(request_put=put_request(key, value, **kwargs))  # type: ignore[arg-type]


def delete_op(key: str | bytes, **kwargs: object) -> rpc_pb2.RequestOp:
    """A delete op for a txn; takes ``delete_request``'s keyword arguments."""
    return rpc_pb2.RequestOp(request_delete_range=delete_request(key, **kwargs))  # type: ignore[arg-type]


def txn_op(txn: Txn[Any]) -> rpc_pb2.RequestOp:
    """A nested txn as an op of another txn (etcd 3.3+)."""
    return rpc_pb2.RequestOp(request_txn=txn.request())


R = TypeVar("R")


class Txn(Generic[R]):
    """A transaction being built: ``if_(*compares).then(*ops).else_(*ops).commit()``.

    Each part may be given once; compares are ANDed, as in etcd. ``commit`` submits the
    request through the function this builder was created with and returns what it returns.
    """

    def __init__(self, submit: Callable[[rpc_pb2.TxnRequest], R]) -> None:
        self._submit = submit
        self._compares: list[rpc_pb2.Compare] = []
        self._success: list[rpc_pb2.RequestOp] = []
        self._failure: list[rpc_pb2.RequestOp] = []
        self._done: set[str] = set()

    def _once(self, part: str) -> None:
        if part in self._done:
            raise ValueError(f"txn: {part} given twice")
        self._done.add(part)

    def if_(self, *compares: rpc_pb2.Compare) -> Txn[R]:
        self._once("if_")
        for c in compares:
            if not isinstance(c, rpc_pb2.Compare):
                raise TypeError(f"txn: if_ takes compares such as value(k) == v, not {c!r}")
        self._compares.extend(compares)
        return self

    def then(self, *ops: rpc_pb2.RequestOp) -> Txn[R]:
        self._once("then")
        self._success.extend(_check_ops(ops))
        return self

    def else_(self, *ops: rpc_pb2.RequestOp) -> Txn[R]:
        self._once("else_")
        self._failure.extend(_check_ops(ops))
        return self

    def request(self) -> rpc_pb2.TxnRequest:
        """The TxnRequest as built so far."""
        if max(len(self._compares), len(self._success), len(self._failure)) > MAX_TXN_OPS:
            raise ValueError(f"txn: more than {MAX_TXN_OPS} compares or ops in one branch")
        return rpc_pb2.TxnRequest(
            compare=self._compares, success=self._success, failure=self._failure
        )

    def commit(self) -> R:
        return self._submit(self.request())


def _check_ops(ops: tuple[rpc_pb2.RequestOp, ...]) -> tuple[rpc_pb2.RequestOp, ...]:
    for op in ops:
        if not isinstance(op, rpc_pb2.RequestOp):
            raise TypeError(f"txn: then/else_ take ops such as put_op(k, v), not {op!r}")
    return ops
