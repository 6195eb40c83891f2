"""Reading passwords as etcdctl 3.4 does.

etcdctl asks on the terminal with ``bgentry/speakeasy``: the prompt goes to stdout, echo is
turned off by running ``stty -echo`` (and back on with ``stty echo``) on the same three streams,
then one line is read from stdin a byte at a time and a newline is printed after it. When stdin
is not a terminal, stty complains on stderr and the line is read all the same; running the real
stty here makes those bytes etcdctl's too. ``--interactive=false`` reads one ``fmt.Scanf("%s")``
word instead.
"""

from __future__ import annotations

import dataclasses
import subprocess
from typing import BinaryIO

from kvorum.ctl.errors import EXIT_BAD_ARGS, CtlExit
from kvorum.ctl.flags import GlobalOptions

__all__ = ["ask_password", "options_with_password", "read_new_password", "scan_word"]

_STTY = "/bin/stty"
_STTY_TIMEOUT_S = 5.0
# A password line longer than this is cut (a bound on what a runaway stdin can make us hold).
_LINE_BYTES_MAX = 1 << 20


def _fd_or_devnull(stream: BinaryIO) -> int:
    """The stream's descriptor for stty, or /dev/null when it has none (in-process runs)."""
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return subprocess.DEVNULL


def _stty(setting: str, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> None:
    """Run ``stty <setting>`` on our stdin as speakeasy does; its output is relayed."""
    stdout.flush()
    stderr.flush()
    try:
        done = subprocess.run(
            ["stty", setting],  # argv[0] as speakeasy passes it: stty names itself so
            executable=_STTY,
            stdin=_fd_or_devnull(stdin),
            capture_output=True,
            timeout=_STTY_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CtlExit(EXIT_BAD_ARGS, f"failed to ask password: {err}") from None
    stdout.write(done.stdout)
    stderr.write(done.stderr)


def _read_line(stdin: BinaryIO) -> bytes:
    """speakeasy's ``readline``: bytes up to a newline or end of input, one at a time so that
    nothing after the line is consumed."""
    line = bytearray()
    while len(line) < _LINE_BYTES_MAX:
        byte = stdin.read(1)
        if not byte or byte == b"\n":
            break
        line += byte
    return bytes(line).removesuffix(b"\r")


def ask_password(prompt: str, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> str:
    """``speakeasy.Ask(prompt)``: the line typed, stripped of surrounding white space."""
    stdout.write(prompt.encode())
    _stty("-echo", stdin, stdout, stderr)
    try:
        line = _read_line(stdin)
    finally:
        _stty("echo", stdin, stdout, stderr)
    stdout.write(b"\n")
    stdout.flush()
    return line.decode("utf-8", "surrogateescape").strip()


def read_new_password(name: str, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> str:
    """etcdctl's ``readPasswordInteractive``: asked twice, both must match and not be empty."""
    first = ask_password(f"Password of {name}: ", stdin, stdout, stderr)
    if not first:
        raise CtlExit(EXIT_BAD_ARGS, "empty password")
    second = ask_password(
        f"Type password of {name} again for confirmation: ", stdin, stdout, stderr
    )
    if first != second:
        raise CtlExit(EXIT_BAD_ARGS, "given passwords are different")
    return first


_BLANKS = (b" ", b"\t")
_LINE_ENDS = (b"", b"\n", b"\r")


def scan_word(stdin: BinaryIO) -> str:
    """``fmt.Scanf("%s", &word)``: blanks skipped, then a word up to white space; a newline or
    the end of input before any word leaves it empty (Scanf fails and etcdctl ignores that)."""
    byte = stdin.read(1)
    while byte in _BLANKS and byte:
        byte = stdin.read(1)
    word = bytearray()
    while byte not in _LINE_ENDS and byte not in _BLANKS and len(word) < _LINE_BYTES_MAX:
        word += byte
        byte = stdin.read(1)
    return bytes(word).decode("utf-8", "surrogateescape")


def options_with_password(
    options: GlobalOptions, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO
) -> GlobalOptions:
    """etcdctl's ``authCfgFromCmd``: ``--user`` without ``:password`` and no ``--password``
    asks for it on the terminal before the client is made."""
    if not options.user or options.password or ":" in options.user:
        return options
    password = ask_password("Password: ", stdin, stdout, stderr)
    if not password:
        # An empty answer is sent as an empty password, as etcdctl does; the server decides.
        return options
    return dataclasses.replace(options, password=password)
