"""Go's value syntax, as etcd's flags read it: ``strconv`` booleans and integers, durations.

etcd reads flags with Go's ``flag`` and ``strconv`` packages, so kvorum accepts and refuses
what they do: ``0x10`` and ``010`` (octal!) are integers, ``+5`` is valid for a signed flag
only, ``T`` is a boolean but ``yes`` is not, ``1h30m`` is a duration but ``5`` is not. These
functions raise :class:`GoValueError` carrying only the reason; the caller names the flag.
Pure: text in, value out.
"""

from __future__ import annotations

import re
from fractions import Fraction


class GoValueError(ValueError):
    """A value Go's parsers would refuse; ``str(err)`` is the reason, not naming the flag."""


_TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``: the twelve spellings Go accepts, nothing else."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise GoValueError("parse error")


def _parse_go_integer(text: str, *, signed: bool, bits: int) -> int:
    """``strconv.ParseInt``/``ParseUint`` with base 0, as Go's flag package calls them."""
    body = text
    negative = False
    if signed and body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    # Python's int() would strip whitespace and accept non-ASCII digits; Go accepts neither.
    if not body or not body.isascii() or any(c.isspace() or c in "+-" for c in body):
        raise GoValueError("parse error")
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            magnitude = int(body, 0)
        elif len(body) > 1 and body[0] == "0":
            # Go's base-0 rule: a bare leading zero means octal (``010`` is eight).
            magnitude = int("0o" + body[1:], 0)
        else:
            magnitude = int(body, 10)
    except ValueError:
        raise GoValueError("parse error") from None
    value = -magnitude if negative else magnitude
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise GoValueError("value out of range")
    return value


def parse_go_uint(text: str, bits: int = 64) -> int:
    """An unsigned flag value (``uint``, ``uint32``, ``uint64``)."""
    return _parse_go_integer(text, signed=False, bits=bits)


def parse_go_int(text: str, bits: int = 64) -> int:
    """A signed flag value (``int``, ``int64``)."""
    return _parse_go_integer(text, signed=True, bits=bits)


def parse_strict_atoi(text: str) -> int | None:
    """``strconv.Atoi``: decimal only, optional sign; ``None`` where Go returns an error."""
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    return int(text, 10)


_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DURATION_NS_MAX = (1 << 63) - 1


def parse_go_duration_ns(text: str) -> int:
    """``time.ParseDuration`` in integer nanoseconds: ``300ms``, ``1.5h``, ``1h30m``, ``0``."""
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise GoValueError(f"invalid duration {text!r}")
    total = Fraction(0)
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise GoValueError(f"invalid duration {text!r}")
        if not unit:
            raise GoValueError(f"missing unit in duration {text!r}")
        if unit not in _NS_PER_UNIT:
            raise GoValueError(f"unknown unit {unit!r} in duration {text!r}")
        number = Fraction(int(whole or "0"))
        if frac:
            number += Fraction(int(frac), 10 ** len(frac))
        total += number * _NS_PER_UNIT[unit]
        rest = rest[match.end() :]
    nanoseconds = int(total)  # Go truncates fractional nanoseconds
    if nanoseconds > _DURATION_NS_MAX:
        raise GoValueError(f"invalid duration {text!r}")
    return -nanoseconds if negative else nanoseconds
