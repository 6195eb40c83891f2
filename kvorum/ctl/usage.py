"""etcdctl's help and usage text: its template, its flag listing and Go's ``text/tabwriter``.

etcdctl writes the whole text through one tabwriter (tab width 8, padding 1, padding with tabs),
so every tab-terminated cell is padded to its column's width rounded up to a multiple of 8, a
column being a run of consecutive lines that have a cell there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kvorum.ctl.flags import FlagSpec

if TYPE_CHECKING:
    from kvorum.ctl.commands.spec import Command

__all__ = ["API_VERSION", "ETCDCTL_VERSION", "render_usage", "tabwrite"]

ETCDCTL_VERSION = "3.4.23"
API_VERSION = "3.4"
_TAB_WIDTH = 8


def tabwrite(text: str) -> str:
    """Go's ``tabwriter.NewWriter(w, 1, 8, 1, '\\t', 0)`` applied to ``text``."""
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    # cells[i][:-1] are tab-terminated (aligned); the last cell of a line is free text.
    widths: list[list[int]] = [[0] * (len(c) - 1) for c in cells]
    column = 0
    while True:
        found = False
        i = 0
        while i < len(cells):
            if len(cells[i]) - 1 <= column:
                i += 1
                continue
            found = True
            start = i
            width = 0
            while i < len(cells) and len(cells[i]) - 1 > column:
                width = max(width, len(cells[i][column]) + 1)
                i += 1
            width = -(-width // _TAB_WIDTH) * _TAB_WIDTH
            for j in range(start, i):
                widths[j][column] = width
        if not found:
            break
        column += 1
    out = []
    for row, row_widths in zip(cells, widths, strict=True):
        parts = []
        for cell, width in zip(row[:-1], row_widths, strict=True):
            parts.append(cell + "\t" * -(-(width - len(cell)) // _TAB_WIDTH))
        parts.append(row[-1])
        out.append("".join(parts))
    return "\n".join(out)


def _flag_lines(specs: Sequence[FlagSpec]) -> str:
    return "".join(f"{s.display()}\t{s.usage}\n" for s in sorted(specs, key=lambda s: s.name))


def render_usage(chain: Sequence[Command]) -> str:
    """The help text of the last command of ``chain`` (root first), as etcdctl prints it."""
    cmd = chain[-1]
    path = " ".join(c.name for c in chain)
    help_flag = FlagSpec("help", "bool", False, f"help for {cmd.name}", "h")
    local = [*cmd.flags, *cmd.persistent_flags, help_flag]
    inherited = [f for c in chain[:-1] for f in c.persistent_flags]
    use = f"{path} {cmd.use_args}".rstrip() + " [flags]"
    # NAME leaves out the root, USAGE does not.
    name = " ".join(c.name for c in chain[1:]) or cmd.name
    text = f"NAME:\n\t{name} - {cmd.short}\n\nUSAGE:\n\t{use}\n\n"
    if len(chain) == 1:
        text += f"VERSION:\n\t{ETCDCTL_VERSION}\n\n"
    if cmd.children:
        text += f"API VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n"
        text += "".join(f"\t{path}\t{short}\n" for path, short in _leaves(cmd, ""))
        text += "\n"
    elif cmd.long:
        text += "DESCRIPTION:\n" + "".join(f"\t{line}\n" for line in cmd.long.split("\n")) + "\n"
    text += "OPTIONS:\n" + _flag_lines(local) + "\n"
    if inherited:
        text += "GLOBAL OPTIONS:\n" + _flag_lines(inherited) + "\n"
    return tabwrite(text)


def _leaves(cmd: Command, prefix: str) -> list[tuple[str, str]]:
    """Every runnable descendant as ``(path relative to cmd, short)``, sorted as cobra sorts."""
    out: list[tuple[str, str]] = []
    for child in sorted(cmd.children, key=lambda c: c.name):
        path = prefix + child.name
        if child.children:
            out.extend(_leaves(child, path + " "))
        else:
            out.append((path, child.short))
    return out


def _pflag_line(spec: FlagSpec) -> tuple[str, str]:
    head = f"  -{spec.shorthand}, --{spec.name}" if spec.shorthand else f"      --{spec.name}"
    varname = {"bool": "", "int": "int", "uint": "uint", "duration": "duration",
               "strings": "strings", "string": "string"}[spec.kind]  # fmt: skip
    if varname:
        head += " " + varname
    usage = spec.usage
    if spec.kind == "string" and spec.default != "":
        usage += f' (default "{spec.default}")'
    elif spec.kind in ("int", "uint") and spec.default != 0:
        usage += f" (default {spec.default})"
    elif spec.kind == "bool" and spec.default is True:
        usage += " (default true)"
    return head, usage


def cobra_default_usage(name: str, use_args: str, specs: Sequence[FlagSpec]) -> str:
    """cobra's stock usage text (what a txn request line's inner command prints on error)."""
    help_flag = FlagSpec("help", "bool", False, f"help for {name}", "h")
    lines = [_pflag_line(s) for s in sorted([*specs, help_flag], key=lambda s: s.name)]
    width = max(len(head) for head, _ in lines) + 1
    body = "".join(f"{head} {' ' * (width - len(head))} {usage}\n" for head, usage in lines)
    return f"Usage:\n   {name} {use_args} [flags]\n\nFlags:\n{body}\n"
