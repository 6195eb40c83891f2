"""kvorum/raft is pure: no I/O, clocks, threads or global randomness (DESIGN §4)."""

from __future__ import annotations

import ast
from pathlib import Path

import kvorum.raft

RAFT_DIR = Path(kvorum.raft.__file__).parent

FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "os",
    "time",
    "threading",
    "multiprocessing",
    "subprocess",
    "selectors",
    "signal",
    "grpc",
    "lmdb",
    "logging",
    "uvloop",
    "datetime",
    "secrets",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
}


def _violations(tree: ast.AST) -> list[str]:
    found: list[str] = []
    random_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_MODULES:
                    found.append(f"import {alias.name}")
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
            if node.module == "random":
                # Only the class may be imported: functions would use the global source.
                found.extend(
                    f"from random import {a.name}" for a in node.names if a.name != "Random"
                )
        elif isinstance(node, ast.Call):
            fn = node.func
            if (
                isinstance(fn, ast.Attribute)
                and isinstance(fn.value, ast.Name)
                and fn.value.id in random_aliases
                and fn.attr != "Random"
            ):
                found.append(f"call of global random.{fn.attr}()")
            if isinstance(fn, ast.Name) and fn.id in {"open", "input", "print"}:
                found.append(f"call of {fn.id}()")
    return found


def test_raft_package_imports_nothing_of_the_outside_world() -> None:
    modules = sorted(RAFT_DIR.glob("*.py"))
    assert len(modules) >= 8
    problems = {p.name: v for p in modules if (v := _violations(ast.parse(p.read_text(), str(p))))}
    assert problems == {}


def test_the_checker_catches_forbidden_code() -> None:
    bad = ast.parse(
        "import random\nimport time as t\nfrom os import path\n"
        "random.randint(1, 2)\nx = random.Random(3)\n"
    )
    assert _violations(bad) == [
        "import time as t".replace(" as t", ""),
        "from os import ...",
        "call of global random.randint()",
    ]
