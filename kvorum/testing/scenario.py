"""etcdctl scenarios as data: one YAML file per scenario group, one etcdctl run per step.

File format (``tests/e2e/diff/scenarios/*.yaml``)::

    description: what the group covers
    steps:
      - run: put foo bar                  # etcdctl arguments, split like a POSIX shell
      - run: get foo -w json
        env: {ETCDCTL_HEX: "false"}       # extra environment for this run
      - run: txn                          # stdin as text ...
        stdin: |
          value("foo") = "bar"

          put foo baz

      - run: put big                      # ... or generated: prefix + line*count + suffix,
        stdin: {line: "x", count: 1600000}  # "{i}" in line is the 0-based line number
        rc: 1                             # exit code the reference (etcd) must give
      - run: lease grant 60
        capture: {LEASE: "lease ([0-9a-f]+) granted"}   # group 1 of the match on stdout
      - run: put k v --lease=${LEASE}     # captured values are substituted in later steps

``--endpoints`` is never written in a scenario: the runner points etcdctl at the cluster.
``rc`` guards the scenario itself: a step written to provoke an error must really provoke it
against etcd, otherwise the comparison would prove nothing about that error.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Scenario", "ScenarioError", "Step", "load_scenario", "load_scenarios", "substitute"]

# Generated stdin is bounded: the largest scenario (a value over the 1.5 MiB request limit)
# needs about 2 MiB.
STDIN_BYTES_MAX = 4 * 1024 * 1024
STEPS_MAX = 500
_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_STEP_KEYS = frozenset({"run", "env", "stdin", "rc", "capture"})


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and step."""


@dataclass(frozen=True, slots=True)
class Step:
    """One etcdctl run: arguments (may hold ``${VAR}``), environment, stdin, expectations."""

    number: int  # 1-based position in its scenario, for messages
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    stdin: str | None = None
    rc: int | None = None
    capture: tuple[tuple[str, str], ...] = ()  # (variable name, regex with one group)

    @property
    def command(self) -> str:
        return shlex.join(self.args)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    path: Path
    description: str
    steps: tuple[Step, ...]


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ``${NAME}`` by its captured value; an unknown name is an error, not a blank."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ScenarioError(f"${{{name}}} used before any step captured it")
        return variables[name]

    return _VAR.sub(one, text)


def _stdin(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, dict):
        unknown = set(raw) - {"prefix", "line", "count", "suffix"}
        if unknown or "line" not in raw or not isinstance(raw.get("count"), int):
            raise ScenarioError(f"{where}: stdin generator needs line and count, got {raw}")
        line = str(raw["line"])
        count: int = raw["count"]
        if count * len(line) > STDIN_BYTES_MAX:
            raise ScenarioError(f"{where}: generated stdin over {STDIN_BYTES_MAX} bytes")
        body = (
            "".join(line.replace("{i}", str(i)) for i in range(count))
            if "{i}" in line
            else line * count
        )
        text = str(raw.get("prefix", "")) + body + str(raw.get("suffix", ""))
    else:
        raise ScenarioError(f"{where}: stdin must be text or a generator mapping")
    if len(text.encode()) > STDIN_BYTES_MAX:
        raise ScenarioError(f"{where}: stdin over {STDIN_BYTES_MAX} bytes")
    return text


def _step(raw: Any, number: int, where: str) -> Step:
    if not isinstance(raw, dict) or not isinstance(raw.get("run"), str):
        raise ScenarioError(f"{where}: a step is a mapping with a 'run' string, got {raw!r}")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    args = tuple(shlex.split(raw["run"]))
    if not args:
        raise ScenarioError(f"{where}: empty command")
    if any(a.startswith("--endpoints") for a in args):
        raise ScenarioError(f"{where}: the runner sets --endpoints, scenarios must not")
    env = raw.get("env") or {}
    capture = raw.get("capture") or {}
    rc = raw.get("rc")
    if not isinstance(env, dict) or not isinstance(capture, dict):
        raise ScenarioError(f"{where}: env and capture are mappings")
    if rc is not None and not isinstance(rc, int):
        raise ScenarioError(f"{where}: rc is an integer")
    for name, pattern in capture.items():
        if not _VAR.fullmatch(f"${{{name}}}") or re.compile(str(pattern)).groups != 1:
            raise ScenarioError(f"{where}: capture {name} needs an UPPER name and one group")
    return Step(
        number=number,
        args=args,
        env=tuple((str(k), str(v)) for k, v in env.items()),
        stdin=_stdin(raw.get("stdin"), where),
        rc=rc,
        capture=tuple((str(k), str(v)) for k, v in capture.items()),
    )


def load_scenario(path: Path) -> Scenario:
    """Parse one scenario file; raise ``ScenarioError`` naming the file and step if malformed."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ScenarioError(f"{path}: top level needs 'steps' (a list)")
    raw_steps: list[Any] = data["steps"]
    if not 0 < len(raw_steps) <= STEPS_MAX:
        raise ScenarioError(f"{path}: 1..{STEPS_MAX} steps, got {len(raw_steps)}")
    steps = tuple(
        _step(raw, n, f"{path.name} step {n}") for n, raw in enumerate(raw_steps, start=1)
    )
    return Scenario(
        name=path.stem, path=path, description=str(data.get("description", "")), steps=steps
    )


def load_scenarios(directory: Path) -> list[Scenario]:
    """Every ``*.yaml`` scenario in ``directory``, sorted by name."""
    return [load_scenario(p) for p in sorted(directory.glob("*.yaml"))]
