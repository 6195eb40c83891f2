"""Key-value commands: ``get``, ``put``, ``del``, ``compaction`` (etcdctl 3.4 semantics).

The ``*_request`` builders are shared with ``txn``, whose request lines are these commands.
"""

from __future__ import annotations

import os

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec, ParsedFlags
from kvorum.ctl.gofmt import go_quote, parse_go_int
from kvorum.ctl.printers import make_printer
from kvorum.ctl.printers.simple import SimplePrinter

__all__ = [
    "COMPACTION",
    "DEL",
    "DEL_FLAGS",
    "GET",
    "GET_FLAGS",
    "PUT",
    "PUT_FLAGS",
    "call_failed",
    "delete_request",
    "get_request",
    "prefix_range_end",
    "put_request",
]

GET_FLAGS = (
    FlagSpec("consistency", "string", "l", "Linearizable(l) or Serializable(s)"),
    FlagSpec("from-key", "bool", False,
             "Get keys that are greater than or equal to the given key using byte compare"),
    FlagSpec("keys-only", "bool", False, "Get only the keys"),
    FlagSpec("limit", "int", 0, "Maximum number of results"),
    FlagSpec("order", "string", "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
    FlagSpec("prefix", "bool", False, "Get keys with matching prefix"),
    FlagSpec("print-value-only", "bool", False,
             'Only write values when using the "simple" output format'),
    FlagSpec("rev", "int", 0, "Specify the kv revision"),
    FlagSpec("sort-by", "string", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
)  # fmt: skip
PUT_FLAGS = (
    FlagSpec("ignore-lease", "bool", False, "updates the key using its current lease"),
    FlagSpec("ignore-value", "bool", False, "updates the key using its current value"),
    FlagSpec("lease", "string", "0", "lease ID (in hexadecimal) to attach to the key"),
    FlagSpec("prev-kv", "bool", False, "return the previous key-value pair before modification"),
)
DEL_FLAGS = (
    FlagSpec("from-key", "bool", False,
             "delete keys that are greater than or equal to the given key using byte compare"),
    FlagSpec("prefix", "bool", False, "delete keys with matching prefix"),
    FlagSpec("prev-kv", "bool", False, "return deleted key-value pairs"),
)  # fmt: skip

_PREFIX_AND_FROM_KEY = "`--prefix` and `--from-key` cannot be set at the same time, choose one"
_TOO_MANY = "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
_SORT_TARGETS = {
    "CREATE": rpc_pb2.RangeRequest.CREATE,
    "KEY": rpc_pb2.RangeRequest.KEY,
    "MODIFY": rpc_pb2.RangeRequest.MOD,
    "VALUE": rpc_pb2.RangeRequest.VALUE,
    "VERSION": rpc_pb2.RangeRequest.VERSION,
    "": rpc_pb2.RangeRequest.KEY,
}
_SORT_ORDERS = {
    "ASCEND": rpc_pb2.RangeRequest.ASCEND,
    "DESCEND": rpc_pb2.RangeRequest.DESCEND,
    "": rpc_pb2.RangeRequest.NONE,
}


def _arg(text: str) -> bytes:
    # Go sees argv as raw bytes; Python decoded them with surrogateescape.
    return os.fsencode(text)


def prefix_range_end(key: bytes) -> bytes:
    """clientv3's ``GetPrefixRangeEnd``: the first key after every key starting with ``key``."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def get_request(flags: ParsedFlags, args: list[str]) -> rpc_pb2.RangeRequest:
    """etcdctl's ``getGetOp``: the RangeRequest for ``get``'s flags and arguments."""
    if not args:
        raise CtlExit(
            EXIT_BAD_ARGS,
            "get command needs one argument as key and an optional argument as range_end",
        )
    prefix, from_key = flags.get_bool("prefix"), flags.get_bool("from-key")
    if prefix and from_key:
        raise CtlExit(EXIT_BAD_ARGS, _PREFIX_AND_FROM_KEY)
    req = rpc_pb2.RangeRequest()
    consistency = flags.get_str("consistency")
    if consistency == "s":
        req.serializable = True
    elif consistency != "l":
        raise CtlExit(EXIT_BAD_FEATURE, f"unknown consistency flag {go_quote(consistency)}")
    key = _arg(args[0])
    if len(args) > 1:
        if prefix or from_key:
            raise CtlExit(EXIT_BAD_ARGS, _TOO_MANY)
        req.range_end = _arg(args[1])
    req.limit = flags.get_int("limit")
    if flags.get_int("rev") > 0:
        req.revision = flags.get_int("rev")
    order_text = flags.get_str("order")
    if order_text.upper() not in _SORT_ORDERS:
        raise CtlExit(EXIT_BAD_FEATURE, f"bad sort order {order_text}")
    target_text = flags.get_str("sort-by")
    if target_text.upper() not in _SORT_TARGETS:
        raise CtlExit(EXIT_BAD_FEATURE, f"bad sort target {target_text}")
    order = _SORT_ORDERS[order_text.upper()]
    target = _SORT_TARGETS[target_text.upper()]
    # clientv3.WithSort: ascending by key is the server's natural order, sent as "none".
    if target == rpc_pb2.RangeRequest.KEY and order == rpc_pb2.RangeRequest.ASCEND:
        order = rpc_pb2.RangeRequest.NONE
    req.sort_order, req.sort_target = order, target
    if prefix:
        if key:
            req.range_end = prefix_range_end(key)
        else:
            key, req.range_end = b"\x00", b"\x00"
    if from_key:
        key = key or b"\x00"
        req.range_end = b"\x00"
    req.key = key
    if flags.get_bool("keys-only"):
        req.keys_only = True
    return req


def put_request(
    flags: ParsedFlags, args: list[str], stdin_data: bytes | None
) -> rpc_pb2.PutRequest:
    """etcdctl's ``getPutOp``; ``stdin_data`` is standard input (read when no value is given)."""
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        raise CtlExit(EXIT_BAD_ARGS, usage)
    ignore_value = flags.get_bool("ignore-value")
    if ignore_value and len(args) > 1:
        raise CtlExit(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    if len(args) > 1:
        value = _arg(args[1])
    elif stdin_data:
        value = stdin_data
    elif ignore_value:
        value = b""
    else:
        raise CtlExit(EXIT_BAD_ARGS, usage)
    try:
        lease = parse_go_int(flags.get_str("lease"), 16)
    except ValueError as err:
        raise CtlExit(EXIT_BAD_ARGS, f"bad lease ID ({err}), expecting ID in Hex") from None
    req = rpc_pb2.PutRequest(key=_arg(args[0]), value=value, lease=lease)
    req.prev_kv = flags.get_bool("prev-kv")
    req.ignore_value = ignore_value
    req.ignore_lease = flags.get_bool("ignore-lease")
    return req


def delete_request(flags: ParsedFlags, args: list[str]) -> rpc_pb2.DeleteRangeRequest:
    """etcdctl's ``getDelOp``."""
    if not args or len(args) > 2:
        raise CtlExit(
            EXIT_BAD_ARGS,
            "del command needs one argument as key and an optional argument as range_end",
        )
    prefix, from_key = flags.get_bool("prefix"), flags.get_bool("from-key")
    if prefix and from_key:
        raise CtlExit(EXIT_BAD_ARGS, _PREFIX_AND_FROM_KEY)
    req = rpc_pb2.DeleteRangeRequest()
    key = _arg(args[0])
    if len(args) > 1:
        if prefix or from_key:
            raise CtlExit(EXIT_BAD_ARGS, _TOO_MANY)
        req.range_end = _arg(args[1])
    if prefix:
        if key:
            req.range_end = prefix_range_end(key)
        else:
            key, req.range_end = b"\x00", b"\x00"
    req.prev_kv = flags.get_bool("prev-kv")
    if from_key:
        key = key or b"\x00"
        req.range_end = b"\x00"
    req.key = key
    return req


def call_failed(err: CallError) -> CtlExit:
    """How a failed RPC ends a command: clientv3's log line, then ``Error: ...``, exit 1."""
    return CtlExit(EXIT_ERROR, err.message, prefix=err.log_line())


def _run_get(ctx: Context) -> int:
    req = get_request(ctx.flags, ctx.args)
    try:
        resp = ctx.conn().range(req)
    except CallError as err:
        raise call_failed(err) from None
    printer = ctx.printer
    if ctx.flags.get_bool("print-value-only"):
        if not isinstance(printer, SimplePrinter):
            raise CtlExit(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        printer = make_printer("simple", ctx.options.hex, value_only=True)
    ctx.emit(printer.get(resp))
    return 0


def _run_put(ctx: Context) -> int:
    stdin_data = ctx.stdin.read() if len(ctx.args) == 1 else None
    req = put_request(ctx.flags, ctx.args, stdin_data)
    try:
        resp = ctx.conn().put(req)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.put(resp))
    return 0


def _run_del(ctx: Context) -> int:
    req = delete_request(ctx.flags, ctx.args)
    try:
        resp = ctx.conn().delete_range(req)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.delete(resp))
    return 0


def _run_compaction(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        rev = parse_go_int(ctx.args[0])
    except ValueError as err:
        raise CtlExit(EXIT_ERROR, str(err)) from None
    req = rpc_pb2.CompactionRequest(revision=rev, physical=ctx.flags.get_bool("physical"))
    try:
        ctx.conn().compact(req)
    except CallError as err:
        raise call_failed(err) from None
    ctx.stdout.write(f"compacted revision {rev}\n".encode())
    return 0


_PHYSICAL = FlagSpec(
    "physical",
    "bool",
    False,
    "'true' to wait for compaction to physically remove all old revisions",
)
GET = Command(
    "get",
    "Gets the key or a range of keys",
    use_args="[options] <key> [range_end]",
    flags=GET_FLAGS,
    run=_run_get,
)
PUT = Command(
    "put",
    "Puts the given key into the store",
    use_args="[options] <key> <value> (<value> can also be given from stdin)",
    long="""Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.""",
    flags=PUT_FLAGS,
    run=_run_put,
)
DEL = Command(
    "del",
    "Removes the specified key or range of keys [key, range_end)",
    use_args="[options] <key> [range_end]",
    flags=DEL_FLAGS,
    run=_run_del,
)
COMPACTION = Command(
    "compaction",
    "Compacts the event history in etcd",
    use_args="[options] <revision>",
    flags=(_PHYSICAL,),
    run=_run_compaction,
)
