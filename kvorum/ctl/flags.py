"""Command-line flags with Go pflag/cobra semantics, etcdctl's global flags, and ``ETCDCTL_*``.

``parse_flags`` accepts what pflag accepts -- ``--flag=v``, ``--flag v``, ``-w json``, ``-wjson``,
``-w=json``, grouped boolean shorthands, flags interspersed with arguments, ``--`` ending flags --
and fails with pflag's own messages. ``apply_env`` mirrors etcd's ``pkg/flags.SetPflagsFromEnv``:
a variable fills a global flag that the command line left unset; a variable naming no flag is
warned about; a variable shadowed by a flag given on the command line is fatal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kvorum.ctl.errors import EXIT_ERROR, CtlExit
from kvorum.ctl.gofmt import go_duration, go_quote, parse_go_bool, parse_go_int

__all__ = [
    "GLOBAL_FLAGS",
    "FlagError",
    "FlagSpec",
    "GlobalOptions",
    "ParsedFlags",
    "apply_env",
    "global_options",
    "parse_duration_ns",
    "parse_flags",
]

FlagKind = Literal["bool", "string", "int", "uint", "duration", "strings"]
FlagValue = bool | str | int | tuple[str, ...]
ENV_PREFIX = "ETCDCTL"


class FlagError(Exception):
    """A command line pflag rejects; the message is pflag's text."""


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One flag: long name, optional one-letter shorthand, kind, default and help text."""

    name: str
    kind: FlagKind
    default: FlagValue
    usage: str
    shorthand: str = ""

    def display(self) -> str:
        """The ``--name=default`` part of etcdctl's flag listing."""
        head = f"  -{self.shorthand}, " if self.shorthand else "      "
        if self.kind == "bool":
            return f"{head}--{self.name}[={'true' if self.default else 'false'}]"
        if self.kind == "string":
            return f"{head}--{self.name}={go_quote(str(self.default))}"
        if self.kind == "strings":
            assert isinstance(self.default, tuple)
            return f"{head}--{self.name}=[{','.join(self.default)}]"
        if self.kind == "duration":
            assert isinstance(self.default, int)
            return f"{head}--{self.name}={go_duration(self.default)}"
        return f"{head}--{self.name}={self.default}"


_SECOND_NS = 1_000_000_000
GLOBAL_FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("cacert", "string", "",
             "verify certificates of TLS-enabled secure servers using this CA bundle"),
    FlagSpec("cert", "string", "", "identify secure client using this TLS certificate file"),
    FlagSpec("command-timeout", "duration", 5 * _SECOND_NS,
             "timeout for short running command (excluding dial timeout)"),
    FlagSpec("debug", "bool", False, "enable client-side debug logging"),
    FlagSpec("dial-timeout", "duration", 2 * _SECOND_NS, "dial timeout for client connections"),
    FlagSpec("discovery-srv", "string", "",
             "domain name to query for SRV records describing cluster endpoints", "d"),
    FlagSpec("discovery-srv-name", "string", "", "service name to query when using DNS discovery"),
    FlagSpec("endpoints", "strings", ("127.0.0.1:2379",), "gRPC endpoints"),
    FlagSpec("hex", "bool", False, "print byte strings as hex encoded strings"),
    FlagSpec("insecure-discovery", "bool", True,
             "accept insecure SRV records describing cluster endpoints"),
    FlagSpec("insecure-skip-tls-verify", "bool", False,
             "skip server certificate verification (CAUTION: this option should be enabled only "
             "for testing purposes)"),
    FlagSpec("insecure-transport", "bool", True,
             "disable transport security for client connections"),
    FlagSpec("keepalive-time", "duration", 2 * _SECOND_NS, "keepalive time for client connections"),
    FlagSpec("keepalive-timeout", "duration", 6 * _SECOND_NS,
             "keepalive timeout for client connections"),
    FlagSpec("key", "string", "", "identify secure client using this TLS key file"),
    FlagSpec("password", "string", "",
             "password for authentication (if this option is used, --user option shouldn't "
             "include password)"),
    FlagSpec("user", "string", "",
             "username[:password] for authentication (prompt if password is not supplied)"),
    FlagSpec("write-out", "string", "simple",
             "set the output format (fields, json, protobuf, simple, table)", "w"),
)  # fmt: skip

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": _SECOND_NS,
    "m": 60 * _SECOND_NS,
    "h": 3600 * _SECOND_NS,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration_ns(text: str) -> int:
    """``time.ParseDuration`` in nanoseconds; ``ValueError`` carries Go's message."""
    bad = ValueError(f"time: invalid duration {go_quote(text)}")
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    if body == "0":
        return 0
    if not body:
        raise bad
    total = 0.0
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            if m is None and re.fullmatch(r"[0-9.]+", body[pos:]):
                raise ValueError(f"time: missing unit in duration {go_quote(text)}")
            raise bad
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * round(total)


def _convert(spec: FlagSpec, raw: str, current: FlagValue | None) -> FlagValue:
    """A flag's new value from its text; ``ValueError`` with Go's parse error."""
    if spec.kind == "bool":
        return parse_go_bool(raw)
    if spec.kind == "int":
        return parse_go_int(raw)
    if spec.kind == "uint":
        value = parse_go_int(raw)
        if value < 0:
            raise ValueError(f"strconv.ParseUint: parsing {go_quote(raw)}: invalid syntax")
        return value
    if spec.kind == "duration":
        return parse_duration_ns(raw)
    if spec.kind == "strings":
        # pflag's StringSlice: the first Set replaces the default, later ones append; each
        # value is one CSV record.
        items = tuple(raw.split(",")) if raw else ()
        return items if current is None else tuple(current) + items  # type: ignore[arg-type]
    return raw


@dataclass(slots=True)
class ParsedFlags:
    """Flag values after parsing: ``values`` has every known flag, ``changed`` the ones set."""

    values: dict[str, FlagValue]
    changed: set[str] = field(default_factory=set)
    args: list[str] = field(default_factory=list)
    help: bool = False

    def get_bool(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool)
        return value

    def get_str(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str)
        return value

    def get_int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int) and not isinstance(value, bool)
        return value

    def get_strings(self, name: str) -> tuple[str, ...]:
        value = self.values[name]
        assert isinstance(value, tuple)
        return value


def _invalid(spec: FlagSpec, raw: str, err: ValueError, *, short: bool) -> FlagError:
    name = f"-{spec.shorthand}, --{spec.name}" if short and spec.shorthand else f"--{spec.name}"
    return FlagError(f"invalid argument {go_quote(raw)} for {go_quote(name)} flag: {err}")


def parse_flags(specs: Sequence[FlagSpec], argv: Sequence[str]) -> ParsedFlags:
    """Parse ``argv`` (the command path already removed) against ``specs`` plus ``-h/--help``."""
    by_name = {s.name: s for s in specs}
    by_short = {s.shorthand: s for s in specs if s.shorthand}
    parsed = ParsedFlags({s.name: s.default for s in specs})
    fresh: set[str] = set()

    def set_value(spec: FlagSpec, raw: str, short: bool) -> None:
        current = parsed.values[spec.name] if spec.name in fresh else None
        try:
            parsed.values[spec.name] = _convert(spec, raw, current)
        except ValueError as err:
            raise _invalid(spec, raw, err, short=short) from None
        fresh.add(spec.name)
        parsed.changed.add(spec.name)

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            parsed.args.extend(argv[i:])
            break
        if len(arg) < 2 or not arg.startswith("-"):
            parsed.args.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, raw = arg[2:].partition("=")
            if not name or name.startswith("-") or name.startswith("="):
                raise FlagError(f"bad flag syntax: {arg}")
            if name == "help" and name not in by_name:
                parsed.help = True
                continue
            spec = by_name.get(name)
            if spec is None:
                raise FlagError(f"unknown flag: --{name}")
            if eq:
                set_value(spec, raw, False)
            elif spec.kind == "bool":
                set_value(spec, "true", False)
            elif i < len(argv):
                set_value(spec, argv[i], False)
                i += 1
            else:
                raise FlagError(f"flag needs an argument: {arg}")
            continue
        shorts = arg[1:]
        while shorts:
            c = shorts[0]
            if c == "h" and "h" not in by_short:
                parsed.help = True
                shorts = shorts[1:]
                continue
            spec = by_short.get(c)
            if spec is None:
                raise FlagError(f"unknown shorthand flag: '{c}' in -{shorts}")
            if len(shorts) > 2 and shorts[1] == "=":
                set_value(spec, shorts[2:], True)
                shorts = ""
            elif spec.kind == "bool":
                set_value(spec, "true", True)
                shorts = shorts[1:]
            elif len(shorts) > 1:
                set_value(spec, shorts[1:], True)
                shorts = ""
            elif i < len(argv):
                set_value(spec, argv[i], True)
                i += 1
                shorts = ""
            else:
                raise FlagError(f"flag needs an argument: '{c}' in -{c}")
    return parsed


Logger = Callable[[str], None]


def capnslog_line(level: str, message: str, now: datetime | None = None) -> str:
    """A line as etcd's capnslog writes it to stderr: local time, level letter, package."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{stamp} {level} | pkg/flags: {message}\n"


def apply_env(
    specs: Sequence[FlagSpec], parsed: ParsedFlags, environ: Mapping[str, str], warn: Logger
) -> None:
    """Fill unset flags from ``ETCDCTL_<FLAG>``; warn on unknown ``ETCDCTL_*`` variables;
    end the run (exit 1) when a variable is shadowed by a flag given on the command line."""
    used: set[str] = set()
    for spec in specs:
        key = ENV_PREFIX + "_" + spec.name.upper().replace("-", "_")
        used.add(key)
        raw = environ.get(key, "")
        if raw and spec.name not in parsed.changed:
            # pkg/flags ignores a value the flag rejects; the default stays.
            try:
                parsed.values[spec.name] = _convert(spec, raw, None)
            except ValueError:
                continue
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX + "_") and key not in used:
            warn(capnslog_line("W", f"unrecognized environment variable {key}={value}"))
    for spec in specs:
        key = ENV_PREFIX + "_" + spec.name.upper().replace("-", "_")
        if spec.name in parsed.changed and environ.get(key, ""):
            message = (
                f"conflicting environment variable {go_quote(key)} is shadowed by corresponding "
                "command-line flag (either unset environment variable or disable flag)"
            )
            raise CtlExit(EXIT_ERROR, None, prefix=capnslog_line("C", message))


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """The global flags after environment and command line, as the client layer needs them."""

    endpoints: tuple[str, ...]
    dial_timeout_ns: int
    command_timeout_ns: int
    keepalive_time_ns: int
    keepalive_timeout_ns: int
    write_out: str
    hex: bool
    user: str
    password: str
    cacert: str
    cert: str
    key: str
    insecure_skip_tls_verify: bool
    insecure_transport: bool
    insecure_discovery: bool
    discovery_srv: str
    discovery_srv_name: str
    debug: bool


def global_options(parsed: ParsedFlags) -> GlobalOptions:
    return GlobalOptions(
        endpoints=parsed.get_strings("endpoints"),
        dial_timeout_ns=parsed.get_int("dial-timeout"),
        command_timeout_ns=parsed.get_int("command-timeout"),
        keepalive_time_ns=parsed.get_int("keepalive-time"),
        keepalive_timeout_ns=parsed.get_int("keepalive-timeout"),
        write_out=parsed.get_str("write-out"),
        hex=parsed.get_bool("hex"),
        user=parsed.get_str("user"),
        password=parsed.get_str("password"),
        cacert=parsed.get_str("cacert"),
        cert=parsed.get_str("cert"),
        key=parsed.get_str("key"),
        insecure_skip_tls_verify=parsed.get_bool("insecure-skip-tls-verify"),
        insecure_transport=parsed.get_bool("insecure-transport"),
        insecure_discovery=parsed.get_bool("insecure-discovery"),
        discovery_srv=parsed.get_str("discovery-srv"),
        discovery_srv_name=parsed.get_str("discovery-srv-name"),
        debug=parsed.get_bool("debug"),
    )
