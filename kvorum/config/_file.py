"""``--config-file``: YAML keyed by flag name, type-checked and applied in etcd's stages.

Once a config file is named, etcd ignores every other flag and ``ETCD_*`` variable (the caller,
:mod:`kvorum.config._load`, handles that). Values must have the types etcd's JSON decoder
wants: a bool for a bool, a number for a count, integer nanoseconds for a duration, a list for
``log-outputs``/``cipher-suites``, and a string (quoted if it looks like a number) for the
rest. TLS settings sit in the ``client-transport-security`` and ``peer-transport-security``
sections. Unknown keys are ignored by etcd; kvorum ignores them too but records a warning
naming each one, because a misspelt key silently doing nothing is a trap.

The only I/O in :mod:`kvorum.config` is the file read here.
"""

from __future__ import annotations

from typing import Any, Final, cast

import yaml

from kvorum.config._errors import EXIT_INVALID, EXIT_USAGE, ConfigError
from kvorum.config._flags import (
    BY_NAME,
    FLAGS,
    KEEP,
    FlagSpec,
    Kind,
    Parsed,
    parse_flag_text,
    set_value,
)
from kvorum.config._goflag import GoValueError
from kvorum.config._goyaml import GoYamlLoader, yaml_type_name

_SECURITY_SECTIONS: Final = {
    # YAML section → {section key → flag name}; the file spells TLS settings this way.
    "client-transport-security": {
        "cert-file": "cert-file",
        "key-file": "key-file",
        "client-cert-auth": "client-cert-auth",
        "trusted-ca-file": "trusted-ca-file",
        "auto-tls": "auto-tls",
    },
    "peer-transport-security": {
        "cert-file": "peer-cert-file",
        "key-file": "peer-key-file",
        "client-cert-auth": "peer-client-cert-auth",
        "trusted-ca-file": "peer-trusted-ca-file",
        "auto-tls": "peer-auto-tls",
    },
}


def _yaml_integer(spec: FlagSpec, value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 100.0 is 100
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoValueError(f"expected a whole number, got {yaml_type_name(value)}")
    signed = spec.kind in (Kind.INT, Kind.DURATION)
    low, high = (
        (-(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1)
        if signed
        else (0, (1 << spec.bits) - 1)
    )
    if not low <= value <= high:
        raise GoValueError(f"number {value} out of range")
    return value


# etcd reads a config file in stages, and the stage decides which error is reported when
# several keys are wrong: (1) YAML syntax; (2) the JSON type of every key it decodes; (3) the
# URL lists, then cors, then host-whitelist; (4) the flag checks shared with the command line;
# (5) etcdmain's own keys — the v2 proxy settings and discovery-fallback. kvorum keeps that
# order so that it refuses a file with the same complaint etcd makes.
_FILE_PARSED_IN_ORDER: Final = (
    "listen-peer-urls",
    "listen-client-urls",
    "initial-advertise-peer-urls",
    "advertise-client-urls",
    "listen-metrics-urls",
    "cors",
    "host-whitelist",
)
_FILE_LATE_KEYS: Final = frozenset(
    {
        "proxy",
        "discovery-fallback",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
    }
)


def _yaml_typed(spec: FlagSpec, value: object) -> object:
    """Check one YAML value against the Go type etcd's JSON decoder gives that key."""
    if value is None:
        return KEEP  # JSON null leaves a Go field at its default
    kind = spec.kind
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise GoValueError(f"expected true or false, got {yaml_type_name(value)}")
        return value
    if kind in (Kind.UINT, Kind.INT, Kind.DURATION):
        # Durations are Go time.Duration in JSON: integer nanoseconds, not "5s".
        return _yaml_integer(spec, value)
    if spec.file_list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GoValueError(f"expected a list of strings, got {yaml_type_name(value)}")
        return tuple(cast("list[str]", value))
    if not isinstance(value, str):
        raise GoValueError(f"expected a string, got {yaml_type_name(value)}")
    return value


def _load_yaml_mapping(path: str) -> dict[Any, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"open {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    try:
        document = yaml.load(text, Loader=GoYamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"config file {path}: invalid YAML: {detail}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of flag names to values, "
            f"got {yaml_type_name(document)}"
        )
    return document


def _typed_file_values(path: str, parsed: Parsed, late: list[ConfigError]) -> dict[str, object]:
    """Stage 2: every known key type-checked; flag name → typed value (or KEEP)."""
    document = _load_yaml_mapping(path)
    # Go's JSON decoder matches keys case-insensitively, so etcd accepts "Name:" for "name".
    by_key = {spec.name.lower(): spec for spec in FLAGS if spec.in_file}
    sections = {name.lower(): name for name in _SECURITY_SECTIONS}
    typed: dict[str, object] = {}
    for key, value in document.items():
        folded = str(key).lower()
        entries: list[tuple[str, FlagSpec, object]] = []
        if folded in sections:
            section = sections[folded]
            if value is not None and not isinstance(value, dict):
                raise ConfigError(
                    f"config file {path}: key {section!r}: expected a mapping, "
                    f"got {yaml_type_name(value)}"
                )
            for inner, item in (value or {}).items():
                flag_name = _SECURITY_SECTIONS[section].get(str(inner).lower())
                if flag_name is None:
                    parsed.warnings.append(
                        f"config file {path}: unknown key {section}.{inner} ignored"
                    )
                    continue
                entries.append((f"{section}.{inner}", BY_NAME[flag_name], item))
        elif folded in by_key:
            entries.append((by_key[folded].name, by_key[folded], value))
        else:
            parsed.warnings.append(f"config file {path}: unknown key {key!r} ignored")
        for label, spec, item in entries:
            try:
                typed[spec.name] = _yaml_typed(spec, item)
            except GoValueError as err:
                error = ConfigError(f"config file {path}: key {label!r}: {err}")
                if spec.name not in _FILE_LATE_KEYS:
                    raise error from None
                late.append(error)
    return typed


def read_config_file(path: str, parsed: Parsed) -> list[ConfigError]:
    """Load ``path`` into ``parsed``; returns the errors etcd reports only after its checks."""
    late: list[ConfigError] = []
    typed = _typed_file_values(path, parsed, late)
    for name in _FILE_PARSED_IN_ORDER:  # stage 3
        raw = typed.pop(name, KEEP)
        if raw is KEEP or raw == "":
            continue  # etcd only parses these when the string is non-empty
        spec = BY_NAME[name]
        try:
            value = parse_flag_text(spec, cast(str, raw))
        except GoValueError as err:
            # etcd exits 1 on a bad URL list here but panics (exit status 2) on a bad cors.
            status = EXIT_USAGE if spec.kind is Kind.CORS else EXIT_INVALID
            raise ConfigError(f"config file {path}: key {name!r}: {err}", status) from None
        set_value(parsed, spec, value)
    for name, raw in typed.items():
        spec = BY_NAME[name]
        if spec.kind is Kind.CHOICE and raw not in (KEEP, "", *spec.choices):
            error = ConfigError(
                f"config file {path}: key {name!r}: invalid value {raw!r}, must be one of "
                f"{', '.join(spec.choices)}"
            )
            if name not in _FILE_LATE_KEYS:
                raise error
            late.append(error)
            continue
        set_value(parsed, spec, KEEP if raw == "" and spec.kind is Kind.CHOICE else raw)
    return late
