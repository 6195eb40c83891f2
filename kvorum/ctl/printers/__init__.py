"""etcdctl's output formats (``--write-out``), each a pure function of protobuf responses."""

from __future__ import annotations

from kvorum.ctl.errors import EXIT_BAD_FEATURE, CtlExit
from kvorum.ctl.printers.base import Printer
from kvorum.ctl.printers.fields import FieldsPrinter
from kvorum.ctl.printers.json import JsonPrinter
from kvorum.ctl.printers.protobuf import ProtobufPrinter
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered
from kvorum.ctl.printers.simple import SimplePrinter
from kvorum.ctl.printers.table import TablePrinter

__all__ = [
    "EpHashKV",
    "EpHealth",
    "EpStatus",
    "Printer",
    "Rendered",
    "make_printer",
]


def make_printer(write_out: str, hex_output: bool, value_only: bool = False) -> Printer:
    """The printer for ``--write-out``; an unknown name ends the run as etcdctl does."""
    if write_out == "simple":
        return SimplePrinter(hex=hex_output, value_only=value_only)
    if write_out == "json":
        return JsonPrinter()
    if write_out == "fields":
        return FieldsPrinter()
    if write_out == "table":
        return TablePrinter()
    if write_out == "protobuf":
        return ProtobufPrinter()
    raise CtlExit(EXIT_BAD_FEATURE, "unsupported output format")
