"""The README's Python and shell examples run as printed against a real kvorum member.

The README promises the library in ten lines and the CLI in five; this keeps those lines true.
Only the endpoint is changed (the member listens on a free port, not on 2379).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.testing import Cluster, binary_for

README = Path(__file__).resolve().parents[3] / "README.md"
DEFAULT_ENDPOINT = "127.0.0.1:2379"
TIMEOUT_S = 30.0


def _block(heading: str, language: str) -> str:
    """The first fenced ``language`` block after the section titled ``heading``."""
    text = README.read_text()
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no {language} block under '## {heading}' in README.md"
    return match.group(1)


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(binary_for("kvorum"), 1, base_dir=tmp_path_factory.mktemp("readme"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_the_python_example_runs_as_printed(member: Cluster) -> None:
    code = _block("From Python, in ten lines", "python")
    code_lines = [line for line in code.splitlines() if line.strip()]
    assert len(code_lines) <= 10, "the README promises the library in ten lines"
    endpoint = member.member(0).client_url.removeprefix("http://")
    done = subprocess.run(
        [sys.executable, "-c", code.replace(DEFAULT_ENDPOINT, endpoint)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    # What the comments in the example say it prints: the value, then the first event of the
    # watch from revision 1 (the put of "blue").
    assert done.stdout.splitlines() == ["b'blue'", "EventType.PUT b'config/color' b'blue'"]
    green = member.etcdctl("get", "config/color", "--print-value-only")
    assert green.stdout.strip() == "green", "the compare-and-set in the example did not apply"


def test_the_shell_example_runs_as_printed(member: Cluster) -> None:
    commands = [
        line for line in _block("From the shell, in five commands", "sh").splitlines() if line
    ]
    assert len(commands) == 5, "the README promises the CLI in five commands"
    kvorumctl = str(Path(sys.executable).parent / "kvorumctl")
    endpoint = member.member(0).client_url
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/kvorumctl"
        done = subprocess.run(
            [kvorumctl, f"--endpoints={endpoint}", *argv[1:]],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
        outputs.append(done.stdout)
    assert outputs[0] == "OK\n"
    assert '"key":"Z3JlZXRpbmc="' in outputs[1]  # base64 of "greeting", as etcdctl prints it
    assert re.fullmatch(r"lease [0-9a-f]+ granted with TTL\(30s\)\n", outputs[3])
    assert "| started |" in outputs[4]


def test_the_testing_example_runs_as_printed(tmp_path: Path) -> None:
    """The README's conftest.py + test_app.py, run by a pytest of their own."""
    block = _block("In your own tests", "python")
    files = re.split(r"^# (\S+\.py)\n", block, flags=re.MULTILINE)[1:]
    assert [files[0], files[2]] == ["conftest.py", "test_app.py"]
    for name, body in zip(files[0::2], files[1::2], strict=True):
        (tmp_path / name).write_text(body)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
