"""``elect <election-name> [proposal]`` and ``elect -l <election-name>``: etcdctl 3.4's
election, built as clientv3's ``concurrency.Election`` on KV, Lease and Watch.

A candidate's key is ``<election-name>/<lease id in hex>`` under a 60-second session; the
leader is the key of the prefix with the lowest create revision. Campaigning prints the
leader's key and value once elected and holds until SIGINT/SIGTERM, then resigns (exit 0).
Observing prints the leader, then each new value it proclaims, then the next leader, until a
signal (exit 0) or until the observer is lost (exit 1).
"""

from __future__ import annotations

import contextlib
import os

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl._conn import CallError, Conn
from kvorum.ctl.commands.kv import call_failed, prefix_range_end
from kvorum.ctl.commands.lock import (
    Session,
    Stop,
    first_created,
    run_until_stopped,
    stop_on_signals,
    wait_deletes,
)
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec

__all__ = ["ELECT"]

# concurrency.NewSession's default TTL (etcdctl's elect has no --ttl).
_SESSION_TTL_S = 60
_POLL_S = 0.1


class Election:
    """clientv3's ``concurrency.Election`` for one candidate (or observer) session."""

    def __init__(self, conn: Conn, session: Session, name: str) -> None:
        self._conn = conn
        self._session = session
        self.prefix = os.fsencode(name) + b"/"
        self.key = b""
        self._revision = 0

    def _create_is(self, revision: int) -> rpc_pb2.Compare:
        return rpc_pb2.Compare(
            key=self.key,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=revision,
        )

    def campaign(self, value: bytes) -> None:
        """Put our key (or find it from an earlier campaign of this session, then make its
        value ours) and wait until every older candidate is gone."""
        lease = self._session.lease_id
        self.key = self.prefix + f"{lease:x}".encode()
        put = rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=self.key, value=value, lease=lease)
        )
        txn = rpc_pb2.TxnRequest(
            compare=[self._create_is(0)],
            success=[put],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=self.key))],
        )
        resp = self._conn.txn(txn)
        self._revision = resp.header.revision
        if not resp.succeeded:
            kv = resp.responses[0].response_range.kvs[0]
            self._revision = kv.create_revision
            if kv.value != value:
                proclaim = rpc_pb2.TxnRequest(
                    compare=[self._create_is(self._revision)], success=[put]
                )
                if not self._conn.txn(proclaim).succeeded:
                    self.key = b""
                    raise CtlExit(EXIT_ERROR, "election: not leader")
        wait_deletes(self._conn, self.prefix, self._revision - 1)

    def resign(self) -> None:
        """Delete our key if it is still the one we created."""
        if not self.key:
            return
        txn = rpc_pb2.TxnRequest(
            compare=[self._create_is(self._revision)],
            success=[
                rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=self.key))
            ],
        )
        self._conn.txn(txn)
        self.key = b""


def _observe(ctx: Context, conn: Conn, prefix: bytes, stop: Stop) -> None:
    """clientv3's ``Election.observe``: print the leader, each value it proclaims, then the
    next leader; returns when a watch fails or ends."""

    def show(resp: rpc_pb2.RangeResponse) -> None:
        if stop.requested:
            raise CtlExit(EXIT_ERROR, "observer stopped")
        ctx.emit(ctx.printer.get(resp))
        ctx.stdout.flush()

    while True:
        resp = conn.range(first_created(prefix))
        if resp.kvs:
            header, kv = resp.header, resp.kvs[0]
        else:
            header, first = _first_put(conn, prefix, resp.header.revision)
            if first is None:
                return
            kv = first
        show(rpc_pb2.RangeResponse(header=header, kvs=[kv]))
        watch = rpc_pb2.WatchCreateRequest(key=kv.key, start_revision=header.revision + 1)
        deleted = False
        for wresp in conn.watch(watch):
            for ev in wresp.events:
                if ev.type == kv_pb2.Event.DELETE:
                    deleted = True
                    break
                # clientv3 reuses the first read's response: its count and `more` stay.
                resp.header.CopyFrom(wresp.header)
                del resp.kvs[:]
                resp.kvs.append(ev.kv)
                show(resp)
            if deleted or wresp.canceled:
                break
        if not deleted:
            return


def _first_put(
    conn: Conn, prefix: bytes, revision: int
) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue | None]:
    """Wait for the first key put under ``prefix`` from ``revision`` on; its header carries
    the key's revision (a batch may hold several puts)."""
    req = rpc_pb2.WatchCreateRequest(
        key=prefix, range_end=prefix_range_end(prefix), start_revision=revision
    )
    for wresp in conn.watch(req):
        if wresp.canceled:
            break
        for ev in wresp.events:
            if ev.type == kv_pb2.Event.PUT:
                header = rpc_pb2.ResponseHeader()
                header.CopyFrom(wresp.header)
                header.revision = ev.kv.mod_revision
                return header, ev.kv
    return rpc_pb2.ResponseHeader(), None


def _run_observe(ctx: Context, conn: Conn, name: str, stop: Stop) -> int:
    prefix = os.fsencode(name) + b"/"

    def work() -> None:
        # clientv3 closes the observation channel on any failure: the observer is lost.
        with contextlib.suppress(CallError):
            _observe(ctx, conn, prefix, stop)

    finished, _ = run_until_stopped(work, stop)
    if finished and not stop.requested:
        raise CtlExit(EXIT_ERROR, "elect: observer lost")
    return 0


def _run_campaign(
    ctx: Context, conn: Conn, session: Session, name: str, value: str, stop: Stop
) -> int:
    election = Election(conn, session, name)
    try:
        elected, _ = run_until_stopped(lambda: election.campaign(os.fsencode(value)), stop)
        if not elected:
            with contextlib.suppress(CallError):
                election.resign()
            raise CtlExit(EXIT_ERROR, "context canceled")
        leader = conn.range(rpc_pb2.RangeRequest(key=election.key))
        ctx.emit(ctx.printer.get(leader))
        ctx.stdout.flush()
        while not stop.event.wait(_POLL_S):
            if session.done.is_set():
                raise CtlExit(EXIT_ERROR, "elect: session expired")
        election.resign()
    except CallError as err:
        raise call_failed(err) from None
    return 0


def _run_elect(ctx: Context) -> int:
    args, listen = ctx.args, ctx.flags.get_bool("listen")
    if len(args) not in (1, 2):
        raise CtlExit(
            EXIT_BAD_ARGS,
            "elect takes one election name argument and an optional proposal argument",
        )
    with stop_on_signals() as stop:
        conn = ctx.conn()
        ctx.printer  # noqa: B018 -- etcdctl builds its printer with the client
        if len(args) == 1 and not listen:
            raise CtlExit(EXIT_BAD_ARGS, "no proposal argument but -l not set")
        if len(args) == 2 and listen:
            raise CtlExit(EXIT_BAD_ARGS, "proposal given but -l is set")
        try:
            session = Session(conn, _SESSION_TTL_S)
        except CallError as err:
            raise call_failed(err) from None
        try:
            if listen:
                return _run_observe(ctx, conn, args[0], stop)
            return _run_campaign(ctx, conn, session, args[0], args[1], stop)
        finally:
            session.close()


ELECT = Command(
    "elect",
    "Observes and participates in leader election",
    use_args="<election-name> [proposal]",
    flags=(FlagSpec("listen", "bool", False, "observation mode", "l"),),
    run=_run_elect,
)
