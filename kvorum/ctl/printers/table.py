"""``--write-out=table``: olekukonko/tablewriter boxes as etcdctl configures them (upper-case
centred headers, right-aligned cells)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.printers.base import Unsupported
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered
from kvorum.ctl.printers.rows import (
    endpoint_hashkv_table,
    endpoint_health_table,
    endpoint_status_table,
    member_list_table,
)

__all__ = ["TablePrinter", "render_table"]


def _width(text: str) -> int:
    # Display width as go-runewidth counts it: East Asian wide characters take two cells.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _title(name: str) -> str:
    return name.replace("_", " ").strip().upper() or (" " if name else "")


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """The box tablewriter renders; cells are not wrapped (etcdctl's cells stay short)."""
    titles = [_title(h) for h in header]
    widths = [_width(t) for t in titles]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"

    def centred(text: str, width: int) -> str:
        gap = width - _width(text)
        left = gap // 2
        return " " * left + text + " " * (gap - left)

    lines = [border, "| " + " | ".join(centred(t, w) for t, w in zip(titles, widths, strict=True))]
    lines.append(" |\n" + border)
    for row in rows:
        cells = [" " * (w - _width(c)) + c for c, w in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |\n")
    lines.append(border)
    return "".join(lines).encode()


class TablePrinter(Unsupported):
    format_name = "table"

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        return Rendered(render_table(*member_list_table(resp)))

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered:
        return Rendered(render_table(*endpoint_status_table(statuses)))

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered:
        return Rendered(render_table(*endpoint_hashkv_table(hashes)))

    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered:
        return Rendered(render_table(*endpoint_health_table(healths)))
