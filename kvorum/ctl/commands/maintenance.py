"""``alarm list``, ``alarm disarm`` and ``defrag`` (online, per endpoint)."""

from __future__ import annotations

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.endpoint import endpoints_for
from kvorum.ctl.commands.kv import call_failed
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec

__all__ = ["ALARM", "DEFRAG"]


def _run_alarm_list(ctx: Context) -> int:
    req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    try:
        resp = ctx.conn().alarm(req)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.alarm(resp))
    return 0


def _run_alarm_disarm(ctx: Context) -> int:
    # clientv3's AlarmDisarm of "every alarm": list them, deactivate each, and answer with a
    # header-less response holding what was deactivated.
    conn = ctx.conn()
    try:
        listed = conn.alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET))
        done = rpc_pb2.AlarmResponse()
        for alarm in listed.alarms:
            req = rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm
            )
            done.alarms.extend(conn.alarm(req).alarms)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.alarm(done))
    return 0


def _run_defrag(ctx: Context) -> int:
    if ctx.flags.get_str("data-dir"):
        raise CtlExit(EXIT_ERROR, "kvorumctl does not defragment a data directory offline yet")
    ctx.setup()
    failures = 0
    for ep in endpoints_for(ctx):
        try:
            ctx.connect([ep], True).defragment()
        except CallError as err:
            failures += 1
            ctx.stderr.write(err.log_line().encode())
            line = f"Failed to defragment etcd member[{ep}] ({err.message})\n"
            ctx.stderr.write(line.encode())
            continue
        ctx.stdout.write(f"Finished defragmenting etcd member[{ep}]\n".encode())
    return EXIT_ERROR if failures else 0


ALARM = Command(
    "alarm",
    "Alarm related commands",
    use_args="<subcommand>",
    children=(
        Command("disarm", "Disarms all alarms", run=_run_alarm_disarm),
        Command("list", "Lists all alarms", run=_run_alarm_list),
    ),
)
DEFRAG = Command(
    "defrag",
    "Defragments the storage of the etcd members with given endpoints",
    flags=(
        FlagSpec("cluster", "bool", False, "use all endpoints from the cluster member list"),
        FlagSpec(
            "data-dir",
            "string",
            "",
            "Optional. If present, defragments a data directory not in use by etcd.",
        ),
    ),
    run=_run_defrag,
)
