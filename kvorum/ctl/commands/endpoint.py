"""``endpoint status``, ``endpoint health`` and ``endpoint hashkv``, per endpoint of
``--endpoints`` or, with ``--cluster``, of every member's client URLs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import go_duration
from kvorum.ctl.printers import EpHashKV, EpHealth, EpStatus

__all__ = ["ENDPOINT", "endpoints_for"]

# Health probes run concurrently, as etcdctl's do; this bounds the threads.
_HEALTH_WORKERS_MAX = 16
# etcd answers a permission-denied read through consensus, which proves health too.
_PERMISSION_DENIED = "etcdserver: permission denied"


def endpoints_for(ctx: Context) -> list[str]:
    """``--endpoints``, or with ``--cluster`` every client URL of the member list."""
    if not ctx.flags.get_bool("cluster"):
        return list(ctx.options.endpoints)
    conn = ctx.connect(None)
    try:
        members = conn.member_list()
    except CallError as err:
        raise CtlExit(
            EXIT_ERROR,
            f"failed to fetch endpoints from etcd cluster member list: {err.message}",
            prefix=err.log_line(),
        ) from None
    return [url for m in members.members for url in m.clientURLs]


def _run_status(ctx: Context) -> int:
    ctx.setup()
    failed = False
    statuses = []
    for ep in endpoints_for(ctx):
        try:
            resp = ctx.connect([ep], True).status()
        except CallError as err:
            failed = True
            ctx.stderr.write(err.log_line().encode())
            line = f"Failed to get the status of endpoint {ep} ({err.message})\n"
            ctx.stderr.write(line.encode())
            continue
        statuses.append(EpStatus(ep, resp))
    ctx.emit(ctx.printer.endpoint_status(statuses))
    return EXIT_ERROR if failed else 0


def _run_hashkv(ctx: Context) -> int:
    ctx.setup()
    failed = False
    hashes = []
    rev = ctx.flags.get_int("rev")
    for ep in endpoints_for(ctx):
        try:
            resp = ctx.connect([ep], True).hash_kv(rev)
        except CallError as err:
            failed = True
            ctx.stderr.write(err.log_line().encode())
            line = f"Failed to get the hash of endpoint {ep} ({err.message})\n"
            ctx.stderr.write(line.encode())
            continue
        hashes.append(EpHashKV(ep, resp))
    ctx.emit(ctx.printer.endpoint_hashkv(hashes))
    return EXIT_ERROR if failed else 0


def _probe(ctx: Context, ep: str) -> tuple[EpHealth, str]:
    conn = ctx.connect([ep])
    started_ns = time.monotonic_ns()
    log = ""
    error = ""
    try:
        conn.range(rpc_pb2.RangeRequest(key=b"health"))
    except CallError as err:
        log = err.log_line()
        if err.message != _PERMISSION_DENIED:
            error = err.message
    took = go_duration(time.monotonic_ns() - started_ns)
    return EpHealth(ep, not error, took, error), log


def _run_health(ctx: Context) -> int:
    ctx.setup()
    eps = endpoints_for(ctx)
    with ThreadPoolExecutor(max_workers=min(_HEALTH_WORKERS_MAX, max(1, len(eps)))) as pool:
        results = list(pool.map(lambda ep: _probe(ctx, ep), eps))
    for _, log in results:
        ctx.stderr.write(log.encode())
    healths = [h for h, _ in results]
    ctx.emit(ctx.printer.endpoint_health(healths))
    if any(h.error for h in healths):
        raise CtlExit(EXIT_ERROR, "unhealthy cluster")
    return 0


_CLUSTER = FlagSpec("cluster", "bool", False, "use all endpoints from the cluster member list")
ENDPOINT = Command(
    "endpoint",
    "Endpoint related commands",
    use_args="<subcommand>",
    persistent_flags=(_CLUSTER,),
    children=(
        Command(
            "hashkv",
            "Prints the KV history hash for each endpoint in --endpoints",
            flags=(FlagSpec("rev", "int", 0, "maximum revision to hash (default: all revisions)"),),
            run=_run_hashkv,
        ),
        Command(
            "health",
            "Checks the healthiness of endpoints specified in `--endpoints` flag",
            run=_run_health,
        ),
        Command(
            "status",
            "Prints out the status of endpoints specified in `--endpoints` flag",
            long=(
                "When --write-out is set to simple, this command prints out comma-separated "
                "status lists for each endpoint.\nThe items in the lists are endpoint, ID, "
                "version, db size, is leader, is learner, raft term, raft index, raft applied "
                "index, errors."
            ),
            run=_run_status,
        ),
    ),
)
