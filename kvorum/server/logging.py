"""The member's logging: etcd's ``--logger``, ``--log-level``, ``--log-outputs`` on stdlib logging.

Every kvorum module logs through a named logger under ``kvorum`` (``kvorum.server.raft``,
``kvorum.transport``, ...); this module only installs handlers on the ``kvorum`` root of that
tree, so tests and embedders that never call ``configure`` see nothing new.

Two line shapes, as etcd 3.4 offers:

- ``capnslog`` (etcd 3.4's default): ``2026-11-21 21:40:00.123456 I | server: started`` --
  timestamp, one-letter level, the logger's name below ``kvorum.``, the message;
- ``zap``: one JSON object per line with ``level``, ``ts``, ``logger``, ``msg`` and the
  ``extra`` fields given to the call, so log shippers can index them.

``--log-outputs`` entries ``default`` and ``stderr`` write to stderr, ``stdout`` to stdout and
anything else is a file opened for appending (zap only; the config layer checked that).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from kvorum.config import ServerConfig

__all__ = ["LEVELS", "ROOT_LOGGER", "CapnslogFormatter", "ZapFormatter", "configure"]

ROOT_LOGGER = "kvorum"
_MARK = "_kvorum_member"  # set on the handlers configure() installs, so it can replace them

#: etcd's level names -> stdlib levels. panic and fatal both mean "only the worst".
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

_CAPNSLOG_LETTERS = {
    logging.DEBUG: "D",
    logging.INFO: "I",
    logging.WARNING: "W",
    logging.ERROR: "E",
    logging.CRITICAL: "C",
}
_ZAP_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _short_name(name: str) -> str:
    """``kvorum.server.raft`` -> ``server.raft``: the prefix is the same on every line."""
    prefix = ROOT_LOGGER + "."
    return name[len(prefix) :] if name.startswith(prefix) else name


class CapnslogFormatter(logging.Formatter):
    """``YYYY-MM-DD HH:MM:SS.ffffff L | package: message`` in UTC, as etcd 3.4 prints."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        letter = _CAPNSLOG_LETTERS.get(record.levelno, "N")
        line = f"{ts:%Y-%m-%d %H:%M:%S.%f} {letter} | {_short_name(record.name)}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ZapFormatter(logging.Formatter):
    """One JSON object per line: level, ts (RFC 3339 UTC), logger, msg, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        fields: dict[str, object] = {
            "level": _ZAP_LEVELS.get(record.levelno, "info"),
            "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "logger": _short_name(record.name),
            "caller": f"{record.module}.py:{record.lineno}",
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, separators=(",", ":"))


def _stream_for(output: str) -> TextIO | None:
    if output in ("default", "stderr"):
        return sys.stderr
    if output == "stdout":
        return sys.stdout
    return None


def level_for(config: ServerConfig) -> int:
    """The threshold in force: ``--debug`` (deprecated) wins, as in etcd 3.4."""
    if config.debug:
        return logging.DEBUG
    return LEVELS.get(config.log_level.lower(), logging.INFO)


def configure(config: ServerConfig) -> list[logging.Handler]:
    """Install handlers on the ``kvorum`` logger per the config; returns them (for removal).

    Previously installed handlers of an earlier ``configure`` are replaced, so calling it
    twice in one process (tests) does not duplicate lines.
    """
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    formatter: logging.Formatter = ZapFormatter() if config.logger == "zap" else CapnslogFormatter()
    handlers = [_handler(output, formatter) for output in _outputs(config.log_outputs)]
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level_for(config))
    # Lines logged under kvorum stop here: a host application's root handlers do not repeat them.
    root.propagate = False
    # grpc and asyncio log through stdlib too; their warnings matter to an operator.
    logging.captureWarnings(True)
    return handlers


def _outputs(outputs: Sequence[str]) -> Sequence[str]:
    return outputs or ("default",)


def _handler(output: str, formatter: logging.Formatter) -> logging.Handler:
    stream = _stream_for(output)
    handler: logging.Handler
    if stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        handler = logging.FileHandler(output, mode="a", encoding="utf-8")
    handler.setFormatter(formatter)
    setattr(handler, _MARK, True)
    return handler
