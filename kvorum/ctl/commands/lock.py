"""``lock <lockname> [exec-command arg1 arg2 ...]``: etcdctl 3.4's lock, built as clientv3's
``concurrency`` package builds it -- on KV, Lease and Watch, not on the Lock service -- so the
keys, revisions and outputs are etcdctl's.

A session is a lease (``--ttl``) kept alive every third of its TTL. The lock is the key
``<lockname>/<lease id in hex>``, created under the lease; the holder is the key of the prefix
with the lowest create revision, and a waiter watches for the deletion of each key created
before its own. Blocking work runs on a worker thread so that the main thread can wait for
SIGINT/SIGTERM, which end the command as they end etcdctl: the lock is released and the command
exits 0 once held, ``context canceled`` (exit 1) while still waiting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Generic, TypeVar

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl._conn import CallError, Conn
from kvorum.ctl.commands.kv import call_failed, prefix_range_end
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec

__all__ = [
    "LOCK",
    "Session",
    "Stop",
    "first_created",
    "run_until_stopped",
    "stop_on_signals",
    "wait_deletes",
]

T = TypeVar("T")

_CANCELED = "context canceled"
_COMPACTED = "etcdserver: mvcc: required revision has been compacted"
_LEASE_NOT_FOUND = "etcdserver: requested lease not found"
# clientv3 looks at its keep-alives twice a second; a renewal comes every TTL/3 seconds.
_KEEPALIVE_TICK_S = 0.5
_POLL_S = 0.1
# Go's names of the signals a child may die of (os.ProcessState.String()).
_SIGNAL_TEXT = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGABRT: "aborted",
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGPIPE: "broken pipe",
    signal.SIGTERM: "terminated",
}


@dataclass(slots=True)
class Stop:
    """Set by SIGINT/SIGTERM (etcdctl cancels its context on either)."""

    event: threading.Event = field(default_factory=threading.Event)

    @property
    def requested(self) -> bool:
        return self.event.is_set()


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT and SIGTERM set the returned ``Stop`` instead of ending the process, until the
    block ends (handlers can only be installed from the main thread; elsewhere nothing is)."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass(slots=True)
class _Outcome(Generic[T]):
    value: T | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def run_until_stopped(work: Callable[[], T], stop: Stop) -> tuple[bool, T | None]:
    """Run ``work`` on a worker thread: ``(True, its result)``, or ``(False, None)`` if ``stop``
    came first. The worker is left behind then: closing the connection when the command ends
    fails its pending call, as cancelling the context does in Go."""
    outcome: _Outcome[T] = _Outcome()

    def body() -> None:
        try:
            outcome.value = work()
        except BaseException as err:
            outcome.error = err
        finally:
            outcome.done.set()

    threading.Thread(target=body, name="kvorumctl-worker", daemon=True).start()
    while not outcome.done.wait(_POLL_S):
        if stop.requested:
            return False, None
    if outcome.error is not None:
        raise outcome.error
    return True, outcome.value


class Session:
    """clientv3's ``concurrency.Session``: a lease of ``ttl_s`` kept alive by a thread.
    ``done`` is set once the lease is gone (revoked, expired, or not renewed within its TTL)."""

    def __init__(self, conn: Conn, ttl_s: int) -> None:
        self._conn = conn
        self.lease_id = conn.lease_grant(ttl_s).ID
        self._ttl_s = ttl_s
        self.done = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._keep_alive, name="kvorumctl-keepalive", daemon=True).start()

    def _keep_alive(self) -> None:
        deadline = time.monotonic() + self._ttl_s
        while not self._closed.is_set():
            try:
                ttl_s = self._conn.lease_keep_alive_once(self.lease_id).TTL
            except CallError as err:
                if err.message == _LEASE_NOT_FOUND or time.monotonic() > deadline:
                    self.done.set()
                    return
                self._closed.wait(_KEEPALIVE_TICK_S)
                continue
            except Exception:
                return
            deadline = time.monotonic() + ttl_s
            self._closed.wait(max(float(ttl_s // 3), _KEEPALIVE_TICK_S))

    def close(self) -> None:
        """Stop renewing. Like etcdctl, the lease is not revoked: it expires after its TTL."""
        self._closed.set()


def first_created(
    prefix: bytes, *, last: bool = False, max_create_revision: int = 0
) -> rpc_pb2.RangeRequest:
    """clientv3's ``WithFirstCreate``/``WithLastCreate`` on ``prefix``: its oldest (newest)
    key, optionally among those created at or before ``max_create_revision``."""
    order = rpc_pb2.RangeRequest.DESCEND if last else rpc_pb2.RangeRequest.ASCEND
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_range_end(prefix),
        limit=1,
        sort_order=order,
        sort_target=rpc_pb2.RangeRequest.CREATE,
        max_create_revision=max_create_revision,
    )


def _wait_delete(conn: Conn, key: bytes, revision: int) -> None:
    """clientv3's ``waitDelete``: until ``key`` is deleted at ``revision`` or later."""
    req = rpc_pb2.WatchCreateRequest(key=key, start_revision=revision)
    for resp in conn.watch(req):
        if resp.canceled:
            raise CtlExit(EXIT_ERROR, _COMPACTED if resp.compact_revision else resp.cancel_reason)
        if any(ev.type == kv_pb2.Event.DELETE for ev in resp.events):
            return
    raise CtlExit(EXIT_ERROR, "lost watcher waiting for delete")


def wait_deletes(conn: Conn, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
    """clientv3's ``waitDeletes``: until no key of ``prefix`` created at or before
    ``max_create_revision`` is left; the header of the read that saw none."""
    while True:
        resp = conn.range(first_created(prefix, last=True, max_create_revision=max_create_revision))
        if not resp.kvs:
            return resp.header
        _wait_delete(conn, resp.kvs[0].key, resp.header.revision)


class Mutex:
    """clientv3's ``concurrency.Mutex`` on the session's lease."""

    def __init__(self, conn: Conn, session: Session, name: str) -> None:
        self._conn = conn
        self._session = session
        self.prefix = os.fsencode(name) + b"/"
        self.key = self.prefix + f"{session.lease_id:x}".encode()
        self.header = rpc_pb2.ResponseHeader()

    def lock(self) -> None:
        """Queue up (one txn) and wait until every key queued before ours is gone."""
        lease = self._session.lease_id
        mine = rpc_pb2.Compare(
            key=self.key,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=0,
        )
        owner = rpc_pb2.RequestOp(request_range=first_created(self.prefix))
        put = rpc_pb2.PutRequest(key=self.key, value=b"", lease=lease)
        txn = rpc_pb2.TxnRequest(
            compare=[mine],
            success=[rpc_pb2.RequestOp(request_put=put), owner],
            # Our key exists already: this session queued before.
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=self.key)), owner],
        )
        resp = self._conn.txn(txn)
        my_revision = resp.header.revision
        if not resp.succeeded:
            my_revision = resp.responses[0].response_range.kvs[0].create_revision
        holder = resp.responses[1].response_range.kvs
        if not holder or holder[0].create_revision == my_revision:
            self.header = resp.header
            return
        self.header = wait_deletes(self._conn, self.prefix, my_revision - 1)

    def unlock(self) -> None:
        self._conn.delete_range(rpc_pb2.DeleteRangeRequest(key=self.key))


def _exec_error(argv: list[str], environ: Mapping[str, str]) -> str | None:
    """Go's ``exec.LookPath`` failure text for ``argv[0]``, or ``None`` when it can run."""
    name = argv[0]
    if "/" in name:
        if not os.path.exists(name):
            return f'exec: "{name}": stat {name}: no such file or directory'
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            return f'exec: "{name}": permission denied'
        return None
    if shutil.which(name, path=environ.get("PATH", "")) is None:
        return f'exec: "{name}": executable file not found in $PATH'
    return None


def _exit_text(returncode: int) -> str:
    """Go's ``ProcessState.String()`` of a failed child."""
    if returncode >= 0:
        return f"exit status {returncode}"
    sig = -returncode
    try:
        return "signal: " + _SIGNAL_TEXT[signal.Signals(sig)]
    except (KeyError, ValueError):
        return f"signal: signal {sig}"


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _run_child(ctx: Context, argv: list[str], mutex: Mutex) -> str | None:
    """Run the exec-command while holding the lock, as etcdctl does: ``ETCD_LOCK_KEY`` and
    ``ETCD_LOCK_REV`` come first in its environment (so the caller's own values win), its
    output goes to ours, stdin is /dev/null. Returns Go's error text of a failure."""
    environ = dict(ctx.environ)
    env = {"ETCD_LOCK_KEY": os.fsdecode(mutex.key), "ETCD_LOCK_REV": str(mutex.header.revision)}
    env.update(environ)
    failure = _exec_error(argv, environ)
    if failure is not None:
        return failure
    ctx.stdout.flush()
    ctx.stderr.flush()
    out_fd, err_fd = _fileno(ctx.stdout), _fileno(ctx.stderr)
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out_fd if out_fd is not None else subprocess.PIPE,
        stderr=err_fd if err_fd is not None else subprocess.PIPE,
        env=env,
        check=False,
    )
    # In-process runs (tests) have no descriptors: the child's output is relayed.
    if out_fd is None:
        ctx.stdout.write(done.stdout)
    if err_fd is None:
        ctx.stderr.write(done.stderr)
    return None if done.returncode == 0 else _exit_text(done.returncode)


def _run_lock(ctx: Context) -> int:
    if not ctx.args:
        raise CtlExit(
            EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute"
        )
    name, command = ctx.args[0], ctx.args[1:]
    with stop_on_signals() as stop:
        conn = ctx.conn()
        ctx.printer  # noqa: B018 -- etcdctl builds its printer with the client
        try:
            session = Session(conn, ctx.flags.get_int("ttl"))
        except CallError as err:
            raise call_failed(err) from None
        try:
            return _hold(ctx, conn, session, name, command, stop)
        finally:
            session.close()


def _hold(
    ctx: Context, conn: Conn, session: Session, name: str, command: list[str], stop: Stop
) -> int:
    mutex = Mutex(conn, session, name)
    try:
        acquired, _ = run_until_stopped(mutex.lock, stop)
        if not acquired:
            # Cancelled while queued: our key leaves the queue (failures ignored, as in Go).
            with suppress(CallError):
                mutex.unlock()
            raise CtlExit(EXIT_ERROR, _CANCELED)
        if command:
            failure = _run_child(ctx, command, mutex)
            mutex.unlock()
            if failure is not None:
                raise CtlExit(EXIT_ERROR, failure)
            return 0
        held = conn.range(rpc_pb2.RangeRequest(key=mutex.key))
        if not held.kvs:
            raise CtlExit(EXIT_ERROR, "lock lost on init")
        ctx.emit(ctx.printer.get(held))
        ctx.stdout.flush()
        while not stop.event.wait(_POLL_S):
            if session.done.is_set():
                raise CtlExit(EXIT_ERROR, "session expired")
        mutex.unlock()
    except CallError as err:
        raise call_failed(err) from None
    return 0


LOCK = Command(
    "lock",
    "Acquires a named lock",
    use_args="<lockname> [exec-command arg1 arg2 ...]",
    flags=(FlagSpec("ttl", "int", 10, "timeout for session"),),
    run=_run_lock,
)
