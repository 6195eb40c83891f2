"""Go's text formatting, as etcdctl's output depends on it: ``%q``, ``%x``, durations, JSON
strings, ``humanize.Bytes`` and ``strconv`` errors.

Every function is pure; printers build their bytes from these so that the quoting and rounding
rules of Go's standard library live in one place.
"""

from __future__ import annotations

import base64
import math
import unicodedata

__all__ = [
    "go_bool",
    "go_duration",
    "go_hex_bytes",
    "go_json_bytes",
    "go_json_string",
    "go_quote",
    "go_unquote",
    "humanize_bytes",
    "parse_go_bool",
    "parse_go_int",
]

_SIMPLE_ESCAPES = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
}


def go_bool(value: bool) -> str:
    """``fmt.Print`` of a bool."""
    return "true" if value else "false"


def _go_is_print(ch: str) -> bool:
    # unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    if ch == " ":
        return True
    return unicodedata.category(ch)[0] in "LMNPS"


def go_quote(data: bytes | str) -> str:
    """``strconv.Quote`` (what ``%q`` prints): invalid UTF-8 bytes become ``\\xNN``."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    out = ['"']
    text = raw.decode("utf-8", "surrogateescape")
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in ('"', "\\"):
            out.append("\\" + ch)
        elif _go_is_print(ch):
            out.append(ch)
        elif code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_UNQUOTE_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def go_unquote(text: str) -> str:
    """``strconv.Unquote`` of a double-quoted or back-quoted Go string literal.

    Raises ``ValueError("invalid syntax")`` as Go returns ``strconv.ErrSyntax``.
    """
    if len(text) >= 2 and text[0] == text[-1] == "`":
        body = text[1:-1]
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("invalid syntax")
    body = text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        esc = body[i + 1]
        i += 2
        if esc in _UNQUOTE_SIMPLE:
            out.append(_UNQUOTE_SIMPLE[esc])
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i : i + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            i += width
            value = int(digits, 16)
            if esc == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise ValueError("invalid syntax")
                out += chr(value).encode()
        elif esc in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise ValueError("invalid syntax")
            value = int(digits, 8)
            if value > 255:
                raise ValueError("invalid syntax")
            out.append(value)
            i += 2
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "surrogateescape")


def go_hex_bytes(data: bytes) -> str:
    """etcdctl's ``--hex`` form: every byte as ``\\xNN``."""
    return "".join(f"\\x{b:02x}" for b in data)


def go_duration(ns: int) -> str:
    """``time.Duration.String``: ``2.367503ms``, ``1.5s``, ``850µs``, ``1m2.5s``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, scale in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < scale * 1000:
                return sign + _frac(u, scale) + unit
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _frac(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _frac(value: int, scale: int) -> str:
    whole, part = divmod(value, scale)
    if part == 0:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")


def humanize_bytes(size: int) -> str:
    """``humanize.Bytes`` (SI units, one decimal below 10, Go's round-half-even ``%.0f``)."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    suffix = ("B", "kB", "MB", "GB", "TB", "PB", "EB")[exponent]
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    return f"{value:.1f} {suffix}" if value < 10 else f"{value:.0f} {suffix}"


def go_json_string(data: bytes | str) -> str:
    """``encoding/json`` of a Go string: HTML-safe escapes, invalid UTF-8 as U+FFFD."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    text = raw.decode("utf-8", "replace")
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json_bytes(data: bytes) -> str:
    """``encoding/json`` of a ``[]byte``: standard base64 in quotes."""
    return '"' + base64.b64encode(data).decode("ascii") + '"'


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``; raises ``ValueError`` with Go's message."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


def parse_go_int(text: str, base: int = 10, bits: int = 64) -> int:
    """``strconv.ParseInt``; raises ``ValueError`` with Go's message."""
    body = text[1:] if text[:1] in "+-" else text
    digits = "0123456789abcdef"[:base]
    if not body or any(c.lower() not in digits for c in body):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text, base)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value
