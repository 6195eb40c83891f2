"""The entry points: every source read in etcd's order, checked, derived and frozen.

The flow is command line → (config file | environment) → checks → derived values →
:class:`ServerConfig`. The file branch drops the other flags' values (they were still
syntax-checked, as etcd does); the flag branch lets ``ETCD_*`` fill what the command line left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from kvorum.config._checks import validate
from kvorum.config._cmdline import parse_argv
from kvorum.config._env import apply_environment
from kvorum.config._errors import ConfigError
from kvorum.config._file import read_config_file
from kvorum.config._flags import DEFAULT_NAME, FLAGS, Kind, Parsed, default_values
from kvorum.config._goflag import GoValueError, parse_go_duration_ns, parse_strict_atoi
from kvorum.config._server_config import ServerConfig

MAX_QUOTA_BACKEND_BYTES: Final = 8 * 1024**3  # etcd warns above this


@dataclass(frozen=True, slots=True)
class Invocation:
    """What the command line asks for: run with ``config``, or print help or the version."""

    action: Literal["run", "help", "version"]
    config: ServerConfig | None = None


def _compaction_retention(mode: str, retention: str) -> tuple[float, int]:
    """(period in seconds, revisions) from --auto-compaction-retention under ``mode``."""
    whole = parse_strict_atoi(retention)
    if whole is not None and whole >= 0:
        return (whole * 3600.0, 0) if mode != "revision" else (0.0, whole)
    if mode == "revision":
        # etcd 3.4 would read "1h" here as 3.6e12 revisions; refusing is the useful answer.
        raise ConfigError(
            f'invalid value "{retention}" for --auto-compaction-retention: '
            "--auto-compaction-mode=revision needs a whole number of revisions"
        )
    try:
        nanoseconds = parse_go_duration_ns(retention)
    except GoValueError as err:
        raise ConfigError(f"error parsing --auto-compaction-retention: {err}") from None
    return nanoseconds / 1e9, 0


def _initial_cluster_from_name(name: str, advertise_peer_urls: tuple[str, ...]) -> str:
    return ",".join(f"{name or DEFAULT_NAME}={url}" for url in advertise_peer_urls)


def _freeze(
    values: dict[str, object], config_file: str, explicit: set[str], warnings: list[str]
) -> ServerConfig:
    """Derived values etcd fills in after validation, then the frozen ServerConfig."""
    default_cluster = _initial_cluster_from_name(DEFAULT_NAME, ("http://localhost:2380",))
    name = cast(str, values["name"])
    if name != DEFAULT_NAME and values["initial-cluster"] == default_cluster:
        # etcd: `--name abc` alone means a one-member cluster named abc.
        values["initial-cluster"] = _initial_cluster_from_name(
            name, cast("tuple[str, ...]", values["initial-advertise-peer-urls"])
        )
    if values["data-dir"] == "":
        values["data-dir"] = f"{name}.etcd"
    mode = cast(str, values["auto-compaction-mode"]) or "periodic"
    values["auto-compaction-mode"] = mode
    period_s, revisions = _compaction_retention(
        mode, cast(str, values["auto-compaction-retention"])
    )
    quota = cast(int, values["quota-backend-bytes"])
    if quota > MAX_QUOTA_BACKEND_BYTES:
        warnings.append(
            f"--quota-backend-bytes={quota} exceeds the maximum recommended "
            f"{MAX_QUOTA_BACKEND_BYTES}"
        )
    fields: dict[str, object] = {
        "auto_compaction_period_s": period_s,
        "auto_compaction_retention_revisions": revisions,
        "config_file": config_file,
        "explicit_flags": frozenset(explicit),
        "warnings": tuple(warnings),
    }
    for spec in FLAGS:
        if spec.field is None:
            continue
        value = values[spec.name]
        if spec.kind is Kind.DURATION:
            value = cast(int, value) / 1e9
        fields[spec.field] = value
    return ServerConfig(**cast("dict[str, Any]", fields))


def parse_invocation(argv: Sequence[str], environ: Mapping[str, str]) -> Invocation:
    """Read the command line, environment and config file as etcd 3.4 does.

    Raises ConfigError (with etcd's exit status) for anything etcd would refuse.
    """
    parsed = Parsed(values=default_values(), set_names=set(), warnings=[])
    wants_help, leftover = parse_argv(argv, parsed)
    if wants_help:
        return Invocation("help")
    if leftover:
        raise ConfigError(f"'{leftover[0]}' is not a valid flag")
    if parsed.values["version"] is True:
        return Invocation("version")
    config_file = cast(str, parsed.values["config-file"]) or environ.get("ETCD_CONFIG_FILE", "")
    if config_file:
        # etcd ignores every other flag and variable once a config file is named. They were
        # syntax-checked above (a malformed flag still stops etcd), but their values are
        # dropped here; only the ignored-flag warnings survive.
        notes = [w for w in parsed.warnings if "no longer supported" in w]
        parsed = Parsed(values=default_values(), set_names=set(), warnings=notes)
        parsed.warnings.append(
            f"loading configuration from {config_file}; other flags and ETCD_* variables "
            "are ignored"
        )
        late_errors = read_config_file(config_file, parsed)
        values = parsed.values
        discovery_set = values["discovery"] != "" or values["discovery-srv"] != ""
        default_cluster = _initial_cluster_from_name(DEFAULT_NAME, ("http://localhost:2380",))
        if discovery_set and values["initial-cluster"] == default_cluster:
            values["initial-cluster"] = ""
        validate(values, may_be_proxy=False, warnings=parsed.warnings)
        if late_errors:
            raise late_errors[0]
    else:
        apply_environment(parsed, environ)
        values = parsed.values
        may_be_proxy = values["proxy"] != "off" or (
            values["discovery"] != "" and values["discovery-fallback"] == "proxy"
        )
        if (
            "listen-client-urls" in parsed.set_names
            and "advertise-client-urls" not in parsed.set_names
            and not may_be_proxy
        ):
            values["advertise-client-urls"] = ()  # the default must not be advertised
        discovery_set = any(
            values[n] != "" for n in ("discovery", "discovery-srv", "discovery-srv-name")
        )
        if discovery_set and "initial-cluster" not in parsed.set_names:
            values["initial-cluster"] = ""
        validate(values, may_be_proxy=may_be_proxy, warnings=parsed.warnings)
    return Invocation("run", _freeze(values, config_file, parsed.set_names, parsed.warnings))


def load_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The ServerConfig for ``argv`` (without the program name); for tests and embedding.

    Raises ConfigError for bad input, and also when ``argv`` asks for help or the version.
    """
    invocation = parse_invocation(argv, {} if environ is None else environ)
    if invocation.config is None:
        raise ConfigError(f"--{invocation.action} requested, no configuration to load")
    return invocation.config
