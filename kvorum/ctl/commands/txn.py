"""``txn``: etcdctl's line grammar for a transaction read from standard input.

Three sections, each ended by an empty line: comparisons (``mod("k") > "3"``), then the
requests to run on success, then on failure; a request line is a ``get``, ``put`` or ``del``
command line. End of input inside a section is an error, as in etcdctl.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.kv import (
    DEL_FLAGS,
    GET_FLAGS,
    PUT_FLAGS,
    call_failed,
    delete_request,
    get_request,
    put_request,
)
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_INVALID_INPUT, EXIT_PANIC, CtlExit
from kvorum.ctl.flags import FlagError, FlagSpec, parse_flags
from kvorum.ctl.gofmt import go_quote, go_unquote, parse_go_int
from kvorum.ctl.usage import cobra_default_usage

__all__ = ["TXN", "argify", "parse_compare", "parse_request"]

# etcdctl's Argify: double-quoted (Go escapes), single-quoted, or bare words.
_ARG = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^'\"\s]\S*[^'\"\s]?")
_OPS = {
    "=": rpc_pb2.Compare.EQUAL,
    "==": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    ">": rpc_pb2.Compare.GREATER,
    "<": rpc_pb2.Compare.LESS,
}
_TARGETS = {
    "ver": rpc_pb2.Compare.VERSION,
    "version": rpc_pb2.Compare.VERSION,
    "c": rpc_pb2.Compare.CREATE,
    "create": rpc_pb2.Compare.CREATE,
    "m": rpc_pb2.Compare.MOD,
    "mod": rpc_pb2.Compare.MOD,
    "val": rpc_pb2.Compare.VALUE,
    "value": rpc_pb2.Compare.VALUE,
}
_MAX_LINES = 10_000  # a bound on one transaction's input


def argify(line: str) -> list[str]:
    """Split a request line into arguments as etcdctl does (quirks included)."""
    args = _ARG.findall(line)
    out = []
    for arg in args:
        if arg.startswith("'"):
            # etcdctl slices with the argument count instead of the argument's length.
            end = len(args) - 1
            if end < 1 or end > len(arg):
                panic = "panic: runtime error: slice bounds out of range\n"
                raise CtlExit(EXIT_PANIC, None, prefix=panic)
            out.append(arg[1:end])
        elif arg.startswith('"'):
            try:
                out.append(go_unquote(arg))
            except ValueError:
                raise CtlExit(EXIT_INVALID_INPUT, "invalid syntax") from None
        else:
            out.append(arg)
    return out


def _scan_quoted(text: str, pos: int) -> tuple[str, int] | None:
    """fmt.Sscanf's ``%q``: skip spaces, read one Go string literal."""
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    if pos >= len(text) or text[pos] not in '"`':
        return None
    quote = text[pos]
    end = pos + 1
    while end < len(text) and text[end] != quote:
        end += 2 if quote == '"' and text[end] == "\\" else 1
    if end >= len(text):
        return None
    try:
        return go_unquote(text[pos : end + 1]), end + 1
    except ValueError:
        return None


def _scan(rest: str) -> tuple[int, str, str, str]:
    """``fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)``: (count, key, op, val)."""
    key = op = val = ""
    got = _scan_quoted(rest, 0)
    if got is None:
        return 0, key, op, val
    key, pos = got
    if not rest.startswith(")", pos):
        return 1, key, op, val
    pos += 1
    while pos < len(rest) and rest[pos] in " \t\r\n":
        pos += 1
    start = pos
    while pos < len(rest) and rest[pos] not in " \t\r\n":
        pos += 1
    op = rest[start:pos]
    if not op:
        return 1, key, op, val
    got = _scan_quoted(rest, pos)
    if got is None:
        return 2, key, op, val
    return 3, key, op, got[0]


def parse_compare(line: str) -> rpc_pb2.Compare:
    """One comparison line (``target("key") op "value"``) as a Compare."""
    target, paren, rest = line.partition("(")
    if not paren:
        raise CtlExit(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    count, key, op, val = _scan(rest)
    if count != 3:
        raise CtlExit(
            EXIT_INVALID_INPUT,
            f"malformed comparison: {line}; got {target}({go_quote(key)}) {op} {go_quote(val)}",
        )
    if target not in _TARGETS:
        raise CtlExit(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {target})")
    if op not in _OPS:
        # clientv3.Compare panics on an unknown operator.
        raise CtlExit(EXIT_PANIC, None, prefix="panic: Unknown result op\n")
    cmp = rpc_pb2.Compare(key=key.encode("utf-8", "surrogateescape"), result=_OPS[op])
    cmp.target = _TARGETS[target]
    if cmp.target == rpc_pb2.Compare.VALUE:
        cmp.value = val.encode("utf-8", "surrogateescape")
        return cmp
    try:
        number = parse_go_int(val)
    except ValueError:
        raise CtlExit(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
    if cmp.target == rpc_pb2.Compare.VERSION:
        cmp.version = number
    elif cmp.target == rpc_pb2.Compare.CREATE:
        cmp.create_revision = number
    else:
        cmp.mod_revision = number
    return cmp


_REQUESTS: dict[str, tuple[str, tuple[FlagSpec, ...]]] = {
    "get": ("[options] <key> [range_end]", GET_FLAGS),
    "put": ("[options] <key> <value> (<value> can also be given from stdin)", PUT_FLAGS),
    "del": ("[options] <key> [range_end]", DEL_FLAGS),
}


def parse_request(line: str, ctx: Context) -> tuple[rpc_pb2.RequestOp, bytes]:
    """One request line as a RequestOp, plus what etcdctl writes to stderr on the way."""
    args = argify(line)
    if len(args) < 2:
        raise CtlExit(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    name = args[0]
    if name not in _REQUESTS:
        raise CtlExit(EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    use_args, specs = _REQUESTS[name]
    try:
        flags = parse_flags(specs, args[1:])
    except FlagError:
        usage = cobra_default_usage(name, use_args, specs)
        raise CtlExit(EXIT_INVALID_INPUT, f"invalid txn request: {line}", prefix=usage) from None
    op = rpc_pb2.RequestOp()
    if name == "get":
        op.request_range.CopyFrom(get_request(flags, flags.args))
    elif name == "put":
        # etcdctl reads the transaction through a buffer that has already drained standard
        # input, so a request line without a value finds stdin empty.
        op.request_put.CopyFrom(put_request(flags, flags.args, b""))
    else:
        op.request_delete_range.CopyFrom(delete_request(flags, flags.args))
    return op, b""


def _lines(ctx: Context) -> Iterator[str]:
    for _ in range(_MAX_LINES):
        raw = ctx.stdin.readline()
        if not raw.endswith(b"\n"):
            raise CtlExit(EXIT_INVALID_INPUT, "EOF")
        yield raw.decode("utf-8", "surrogateescape").strip()
    raise CtlExit(EXIT_INVALID_INPUT, f"more than {_MAX_LINES} lines")


def _section(ctx: Context) -> Iterator[str]:
    for line in _lines(ctx):
        if not line:
            return
        yield line


def _prompt(ctx: Context, text: str) -> None:
    if ctx.flags.get_bool("interactive"):
        ctx.stdout.write(text.encode() + b"\n")
        ctx.stdout.flush()


def _run_txn(ctx: Context) -> int:
    if ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "txn command does not accept argument")
    conn = ctx.conn()
    req = rpc_pb2.TxnRequest()
    _prompt(ctx, "compares:")
    req.compare.extend(parse_compare(line) for line in _section(ctx))
    _prompt(ctx, "success requests (get, put, del):")
    req.success.extend(parse_request(line, ctx)[0] for line in _section(ctx))
    _prompt(ctx, "failure requests (get, put, del):")
    req.failure.extend(parse_request(line, ctx)[0] for line in _section(ctx))
    try:
        resp = conn.txn(req)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.txn(resp))
    return 0


TXN = Command(
    "txn",
    "Txn processes all the requests in one transaction",
    use_args="[options]",
    flags=(FlagSpec("interactive", "bool", False, "Input transaction in interactive mode", "i"),),
    run=_run_txn,
)
