"""The command line, read with Go's ``flag.FlagSet.Parse`` rules as etcd does.

``--flag``, ``-flag``, ``--flag=v``, ``-flag=v`` and ``--flag v`` are all accepted; booleans take
``--flag`` or ``--flag=true|false`` but never a separate word; parsing stops at ``--`` or the
first non-flag word; a flag given twice keeps the last value. A malformed command line is a
:class:`ConfigError` with exit status 2, as Go's flag package exits.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvorum.config._errors import EXIT_USAGE, ConfigError
from kvorum.config._flags import BY_NAME, Kind, Parsed, parse_flag_text, set_value
from kvorum.config._goflag import GoValueError


def parse_argv(argv: Sequence[str], parsed: Parsed) -> tuple[bool, list[str]]:
    """Apply Go ``flag.FlagSet.Parse`` rules; returns (help requested, leftover words)."""
    args = list(argv)
    while args:
        word = args[0]
        if len(word) < 2 or word[0] != "-":
            break  # the first non-flag word ends flag parsing
        dashes = 2 if word[1] == "-" else 1
        if word == "--":
            args.pop(0)
            break
        name = word[dashes:]
        if not name or name[0] in "-=":
            raise ConfigError(f"bad flag syntax: {word}", EXIT_USAGE)
        args.pop(0)
        name, eq, inline = name.partition("=")
        spec = BY_NAME.get(name)
        if spec is None:
            if name in ("h", "help"):
                return True, []
            raise ConfigError(f"flag provided but not defined: --{name}", EXIT_USAGE)
        if spec.is_bool:
            text = inline if eq else "true"
            if spec.kind is Kind.BOOL:
                try:
                    value = parse_flag_text(spec, text)
                except GoValueError as err:
                    raise ConfigError(
                        f'invalid boolean value "{text}" for --{name}: {err}', EXIT_USAGE
                    ) from None
            else:
                value = None
        else:
            if eq:
                text = inline
            elif args:
                text = args.pop(0)  # Go takes the next word even if it starts with '-'
            else:
                raise ConfigError(f"flag needs an argument: --{name}", EXIT_USAGE)
            try:
                value = parse_flag_text(spec, text)
            except GoValueError as err:
                raise ConfigError(
                    f'invalid value "{text}" for flag --{name}: {err}', EXIT_USAGE
                ) from None
        set_value(parsed, spec, value)
    return False, args
