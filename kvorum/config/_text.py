"""What ``kvorum --version`` and ``kvorum --help`` print, in etcd's layout.

The help lists the flag table's documented flags by group with their defaults, so it cannot
drift from what the parser accepts.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from typing import Final

from kvorum import __version__
from kvorum.config._flags import FLAGS, HIDDEN_GROUP, FlagSpec

ETCD_API_VERSION: Final = "3.4"


def version_text() -> str:
    """``--version`` output in etcd's layout, describing kvorum and the etcd API it speaks."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return (
        f"kvorum Version: {__version__}\n"
        f"etcd API Version: {ETCD_API_VERSION}\n"
        "Git SHA: Not provided\n"
        f"Python Version: {platform.python_version()}\n"
        f"Python OS/Arch: {sys.platform}/{arch}\n"
    )


def _help_groups() -> Iterator[tuple[str, list[FlagSpec]]]:
    order: list[str] = []
    grouped: dict[str, list[FlagSpec]] = {}
    for spec in FLAGS:
        if spec.hidden or spec.group == HIDDEN_GROUP:
            continue
        if spec.group not in grouped:
            order.append(spec.group)
            grouped[spec.group] = []
        grouped[spec.group].append(spec)
    for group in order:
        yield group, grouped[group]


def help_text() -> str:
    """``--help`` output: usage, then every documented flag with its default."""
    lines = [
        "Usage:",
        "",
        "  kvorum [flags]",
        "    Start a kvorum member (an etcd v3 compatible server).",
        "",
        "  kvorum --version",
        "    Print the version of kvorum and of the etcd API it speaks.",
        "",
        "  kvorum -h | --help",
        "    Print this help.",
        "",
        "  kvorum --config-file <path>",
        "    Read the configuration from a YAML file keyed by flag name; other flags and",
        "    ETCD_* environment variables are then ignored.",
        "",
        "Every flag can also be set with ETCD_<FLAG_NAME> (e.g. ETCD_NAME, ETCD_DATA_DIR).",
    ]
    for group, specs in _help_groups():
        lines += ["", f"{group}:"]
        for spec in specs:
            shown = "${name}.etcd" if spec.name == "data-dir" else spec.default
            lines.append(f"  --{spec.name} '{shown}'")
            lines.append(f"    {spec.help}")
    return "\n".join(lines) + "\n"
