"""``snapshot save|status|restore`` with etcdctl 3.4's texts, log lines and exit codes.

``save`` streams ``Maintenance.Snapshot`` into ``<file>.part``, fsyncs it and renames it to
``<file>`` -- so a file at ``<file>`` is always whole; the stream's last message (the server's
SHA-256 of the rest) stays at the end of the file, which ``restore`` checks. ``status`` reads
an etcd (bbolt) snapshot with ``kvorum.ctl.bbolt`` and a kvorum (LMDB) one with
``kvorum.ctl.kvsnapshot``, told apart by their magic numbers. ``restore`` writes a kvorum data
directory from a kvorum snapshot (``kvsnapshot`` says how) and refuses an etcd one: kvorum
cannot run on etcd's files.

Like etcdctl, these commands log with zap's production logger on stderr: one JSON line per
step, with the time as seconds since the epoch (the client library's lines have ISO times).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from kvorum.config import ConfigError, parse_initial_cluster, parse_url_list
from kvorum.ctl import bbolt, kvsnapshot, progress
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import go_quote, humanize_bytes
from kvorum.ctl.printers.table import render_table

__all__ = ["SNAPSHOT", "go_float", "zap_line"]

#: etcdctl's ExitInterrupted: what ``snapshot save`` ends with on any failure.
EXIT_INTERRUPTED = 5
_NS_PER_S = 1_000_000_000
_SNAPSHOT_CALLER = "snapshot/v3_snapshot.go"
_DEFAULT_NAME = "default"
_DEFAULT_PEER_URL = "http://localhost:2380"
_PROBE_BYTES = 32


def go_float(value: float) -> str:
    """A float as zap writes it: the shortest text that reads back, never in exponent form."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def zap_line(
    msg: str, caller: str, fields: Mapping[str, object], now_s: float | None = None
) -> str:
    """A zap production logger line (info level, epoch time), fields in the order given."""
    stamp = go_float(time.time() if now_s is None else now_s)
    head = f'{{"level":"info","ts":{stamp},"caller":{json.dumps(caller)},"msg":{json.dumps(msg)}'
    body = "".join(f",{json.dumps(k)}:{_json_value(v)}" for k, v in fields.items())
    return head + body + "}\n"


def _json_value(value: object) -> str:
    if isinstance(value, float):
        return go_float(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _client_line(msg: str, caller: str) -> str:
    """A clientv3 log line (ISO time, milliseconds)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return (
        json.dumps(
            {"level": "info", "ts": stamp, "caller": caller, "msg": msg}, separators=(",", ":")
        )
        + "\n"
    )


def _go_os_error(op: str, path: str, err: OSError) -> str:
    """Go's ``*PathError`` text: ``open x: no such file or directory``."""
    reason = err.strerror or str(err)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def _log(ctx: Context, line: str) -> None:
    ctx.stderr.write(line.encode())
    ctx.stderr.flush()


# --- save --------------------------------------------------------------------------------------


def _save_timeout_s(ctx: Context) -> float | None:
    """etcdctl bounds ``snapshot save`` only by a ``--command-timeout`` the user gave."""
    if "command-timeout" in ctx.flags.changed or ctx.environ.get("ETCDCTL_COMMAND_TIMEOUT"):
        return ctx.options.command_timeout_ns / _NS_PER_S
    return None


def _run_save(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "snapshot save expects one argument")
    path = ctx.args[0]
    endpoints = ctx.options.endpoints
    if len(endpoints) != 1:
        listed = " ".join(endpoints)
        raise CtlExit(
            EXIT_INTERRUPTED,
            f"snapshot must be requested to one selected node, not multiple [{listed}]",
        )
    conn = ctx.conn()
    part = path + ".part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as err:
        text = _go_os_error("open", part, err)
        raise CtlExit(EXIT_INTERRUPTED, f"could not open {part} ({text})") from None
    caller = _SNAPSHOT_CALLER
    try:
        _log(ctx, zap_line("created temporary db file", f"{caller}:119", {"path": part}))
        started = time.monotonic()
        bar = progress.for_stream(ctx.stderr, "snapshot", 0)
        size = 0
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                stream = iter(conn.snapshot(_save_timeout_s(ctx)))
                # clientv3 logs these once the stream exists, i.e. once the server answered.
                first = next(stream, None)
                _log(ctx, _client_line("opened snapshot stream; downloading", _MAINT_OPENED))
                _log(
                    ctx, zap_line("fetching snapshot", f"{caller}:127", {"endpoint": endpoints[0]})
                )
                for resp in itertools.chain((first,) if first is not None else (), stream):
                    out.write(resp.blob)
                    size += len(resp.blob)
                    # remaining_bytes counts what follows this message: the total is known
                    # from the first one on.
                    if bar.total == 0:
                        bar.set_total(size + resp.remaining_bytes)
                    bar.update(size)
                # Erased before the next log line, which would otherwise follow it on its line.
                bar.finish()
                _log(ctx, _client_line("completed snapshot read; closing", _MAINT_DONE))
                out.flush()
                os.fsync(out.fileno())
        except CallError as err:
            bar.finish()
            raise CtlExit(EXIT_INTERRUPTED, err.message, prefix=_stream_failed(err, size)) from None
        # zap writes a duration as float seconds of whole nanoseconds.
        took_s = round(time.monotonic() - started, 9)
        fields: dict[str, object] = {
            "endpoint": endpoints[0],
            "size": humanize_bytes(size),
            "took": took_s,
        }
        _log(ctx, zap_line("fetched snapshot", f"{caller}:142", fields))
        try:
            os.replace(part, path)
        except OSError as err:
            text = f"could not rename {part} to {path} ({_go_os_error('rename', part, err)})"
            raise CtlExit(EXIT_INTERRUPTED, text) from None
        _fsync_parent(path)
        _log(ctx, zap_line("saved", f"{caller}:152", {"path": path}))
    finally:
        # etcdctl removes the part file whatever happened (after a rename it is gone anyway).
        if os.path.exists(part):
            os.unlink(part)
    ctx.stdout.write(f"Snapshot saved at {path}\n".encode())
    return 0


def _stream_failed(err: CallError, received_bytes: int) -> str:
    """clientv3's log line for a snapshot stream that failed: before the first message, its
    stream interceptor's error (etcdctl adds a Go stack trace, which kvorumctl cannot); after,
    the warning of its reader."""
    error = json.loads(err.log_line())["error"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if received_bytes == 0:
        record = {
            "level": "error",
            "ts": stamp,
            "caller": "clientv3/retry_interceptor.go:129",
            "msg": "streamer failed to create ClientStream",
            "error": error,
        }
    else:
        record = {
            "level": "warn",
            "ts": stamp,
            "caller": "clientv3/maintenance.go:211",
            "msg": "failed to receive from snapshot stream; closing",
            "error": error,
        }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


_MAINT_OPENED = "clientv3/maintenance.go:200"
_MAINT_DONE = "clientv3/maintenance.go:208"


def _fsync_parent(path: str) -> None:
    """Make the rename durable (etcdctl does not; a crash could lose the saved name)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- status ------------------------------------------------------------------------------------


def read_status(path: str) -> bbolt.DBStatus:
    """The status of the snapshot at ``path``, bbolt or kvorum; ``CtlExit`` on failure."""
    try:
        os.stat(path)
    except OSError as err:
        raise CtlExit(EXIT_ERROR, _go_os_error("stat", path, err)) from None
    try:
        with open(path, "rb") as probe:
            head = probe.read(_PROBE_BYTES)
        if kvsnapshot.is_lmdb(head):
            return kvsnapshot.status(path)
        # Anything else goes to the bbolt reader, which refuses it with bbolt's own error.
        return bbolt.status(path)
    except bbolt.BoltError as err:
        raise CtlExit(EXIT_ERROR, str(err)) from None
    except OSError as err:
        raise CtlExit(EXIT_ERROR, _go_os_error("open", path, err)) from None
    except Exception as err:  # lmdb.Error: a damaged kvorum snapshot
        raise CtlExit(EXIT_ERROR, f"{path}: not a readable snapshot ({err})") from None


def render_status(write_out: str, st: bbolt.DBStatus) -> bytes:
    """etcdctl's ``DBStatus`` printers."""
    if write_out == "simple":
        size = humanize_bytes(st.total_size)
        return f"{st.hash:x}, {st.revision}, {st.total_key}, {size}\n".encode()
    if write_out == "json":
        record = {
            "hash": st.hash,
            "revision": st.revision,
            "totalKey": st.total_key,
            "totalSize": st.total_size,
        }
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()
    if write_out == "table":
        header = ["hash", "revision", "total keys", "total size"]
        row = [f"{st.hash:x}", str(st.revision), str(st.total_key), humanize_bytes(st.total_size)]
        return render_table(header, [row])
    if write_out == "fields":
        return (
            f'"Hash" : {st.hash}\n"Revision" : {st.revision}\n'
            f'"Keys" : {st.total_key}\n"Size" : {st.total_size}\n'
        ).encode()
    raise CtlExit(EXIT_BAD_FEATURE, f"{write_out} not supported as output format")


def _run_status(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    ctx.printer  # noqa: B018 -- etcdctl's initDisplayFromCmd: an unknown format ends the run
    write_out = ctx.options.write_out
    st = read_status(ctx.args[0])
    ctx.stdout.write(render_status(write_out, st))
    return 0


# --- restore -----------------------------------------------------------------------------------


def _parse_urls(text: str) -> tuple[str, ...]:
    try:
        return parse_url_list(text)
    except (ConfigError, ValueError) as err:
        raise CtlExit(EXIT_ERROR, _url_error(err)) from None


def _url_error(err: Exception) -> str:
    text = getattr(err, "message", None) or str(err)
    return text.removeprefix("error setting up initial cluster: ")


def _parse_cluster(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    try:
        return parse_initial_cluster(text)
    except (ConfigError, ValueError) as err:
        raise CtlExit(EXIT_ERROR, _url_error(err)) from None


def _verify_bootstrap(
    name: str, cluster: Sequence[tuple[str, tuple[str, ...]]], peer_urls: tuple[str, ...], raw: str
) -> None:
    """etcd's ``VerifyBootstrap`` for a new cluster, with its texts."""
    members = dict(cluster)
    if name not in members:
        raise CtlExit(
            EXIT_ERROR,
            f"couldn't find local name {go_quote(name)} in the initial cluster configuration",
        )
    seen: set[str] = set()
    for urls in members.values():
        for url in urls:
            if url in seen:
                raise CtlExit(EXIT_ERROR, f"initial cluster {raw} has duplicate url")
            seen.add(url)
    ours = tuple(sorted(members[name]))
    advertised = tuple(sorted(peer_urls))
    if ours != advertised:
        missing = ",".join(f"{name}={u}" for u in ours)
        raise CtlExit(
            EXIT_ERROR,
            f"--initial-cluster has {missing} but missing from --initial-advertise-peer-urls="
            f"{','.join(peer_urls)} (resolved urls: {go_quote(','.join(advertised))} != "
            f"{go_quote(','.join(ours))})",
        )


def _run_restore(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    source = ctx.args[0]
    flags = ctx.flags
    name = flags.get_str("name")
    data_dir = flags.get_str("data-dir") or f"{name}.etcd"
    wal_flag = flags.get_str("wal-dir")
    wal_dir = wal_flag or os.path.join(data_dir, "member", "wal")
    snap_dir = os.path.join(data_dir, "member", "snap")
    peer_urls = _parse_urls(flags.get_str("initial-advertise-peer-urls"))
    raw_cluster = flags.get_str("initial-cluster")
    cluster = _parse_cluster(raw_cluster)
    _verify_bootstrap(name, cluster, peer_urls, raw_cluster)
    if os.path.exists(data_dir):
        raise CtlExit(EXIT_ERROR, f"data-dir {go_quote(data_dir)} exists")
    if os.path.exists(wal_dir):
        raise CtlExit(EXIT_ERROR, f"wal-dir {go_quote(wal_dir)} exists")
    where = {"path": source, "wal-dir": wal_dir, "data-dir": data_dir, "snap-dir": snap_dir}
    _log(ctx, zap_line("restoring snapshot", f"{_SNAPSHOT_CALLER}:296", where))
    try:
        with open(source, "rb") as probe:
            head = probe.read(_PROBE_BYTES)
    except OSError as err:
        raise CtlExit(EXIT_ERROR, _go_os_error("open", source, err)) from None
    if bbolt.is_bolt(head):
        raise CtlExit(
            EXIT_ERROR,
            f"{source} is an etcd (bbolt) snapshot: kvorum cannot run on etcd's backend files; "
            "restore it with etcdctl and an etcd, or copy the keys over with a client",
        )
    plan = kvsnapshot.plan(
        name,
        cluster,
        flags.get_str("initial-cluster-token"),
        data_dir,
        wal_flag or None,
        flags.get_bool("skip-hash-check"),
    )
    bar = progress.for_stream(ctx.stderr, "restore", os.stat(source).st_size)
    try:
        kvsnapshot.restore(source, plan, bar.advance)
    except kvsnapshot.RestoreError as err:
        bar.finish()
        raise CtlExit(EXIT_ERROR, str(err)) from None
    except OSError as err:
        bar.finish()
        raise CtlExit(EXIT_ERROR, str(err)) from None
    bar.finish()
    for m in plan.members:
        added = {
            "cluster-id": f"{plan.cluster_id:x}",
            "local-member-id": "0",
            "added-peer-id": f"{m.id:x}",
            "added-peer-peer-urls": list(m.peer_urls),
        }
        _log(ctx, zap_line("added member", "membership/cluster.go:392", added))
    _log(ctx, zap_line("restored snapshot", f"{_SNAPSHOT_CALLER}:309", where))
    return 0


# --- the tree ----------------------------------------------------------------------------------

SNAPSHOT = Command(
    "snapshot",
    "Manages etcd node snapshots",
    use_args="<subcommand>",
    children=(
        Command(
            "restore",
            "Restores an etcd member snapshot to an etcd directory",
            use_args="<filename> [options]",
            flags=(
                FlagSpec("data-dir", "string", "", "Path to the data directory"),
                FlagSpec(
                    "initial-advertise-peer-urls",
                    "string",
                    _DEFAULT_PEER_URL,
                    "List of this member's peer URLs to advertise to the rest of the cluster",
                ),
                FlagSpec(
                    "initial-cluster",
                    "string",
                    f"{_DEFAULT_NAME}={_DEFAULT_PEER_URL}",
                    "Initial cluster configuration for restore bootstrap",
                ),
                FlagSpec(
                    "initial-cluster-token",
                    "string",
                    "etcd-cluster",
                    "Initial cluster token for the etcd cluster during restore bootstrap",
                ),
                FlagSpec("name", "string", _DEFAULT_NAME, "Human-readable name for this member"),
                FlagSpec(
                    "skip-hash-check",
                    "bool",
                    False,
                    "Ignore snapshot integrity hash value (required if copied from data directory)",
                ),
                FlagSpec(
                    "wal-dir",
                    "string",
                    "",
                    "Path to the WAL directory (use --data-dir if none given)",
                ),
            ),
            run=_run_restore,
        ),
        Command(
            "save",
            "Stores an etcd node backend snapshot to a given file",
            use_args="<filename>",
            run=_run_save,
        ),
        Command(
            "status",
            "Gets backend snapshot status of a given file",
            use_args="<filename>",
            long=(
                "When --write-out is set to simple, this command prints out comma-separated "
                "status lists for each endpoint.\nThe items in the lists are hash, revision, "
                "total keys, total size."
            ),
            run=_run_status,
        ),
    ),
)
