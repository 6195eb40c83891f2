"""`python -m kvorum.check linearizability HISTORY`: output and exit codes."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

from kvorum.check import dump_history, main_linearizability
from tests.unit.check.helpers import H, generate_history


def _write(tmp_path: Path, h: H) -> str:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(dump_history(h.ops)))
    return str(path)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main_linearizability(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_linearizable_history_exits_0(tmp_path: Path) -> None:
    path = _write(tmp_path, H().write(1, 0, 10, "a").read(2, 5, 20, "a"))
    code, out, _ = _run(path)
    assert code == 0
    assert out.startswith("linearizability: ok")


def test_violation_exits_1_and_explains(tmp_path: Path) -> None:
    path = _write(tmp_path, H().write(1, 0, 10, "a").write(1, 20, 30, "b").read(2, 40, 50, "a"))
    code, out, _ = _run(path, "--timeout-s", "5")
    assert code == 1
    assert "cannot be placed" in out and "#2 p2 read 'k' -> 'a'" in out


def test_json_output(tmp_path: Path) -> None:
    path = _write(tmp_path, H().write(1, 0, 10, "a").read(2, 40, 50, "b"))
    code, out, _ = _run(path, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verdict"] == "illegal"
    assert doc["violations"][0]["stuck"]["index"] == 1
    assert doc["violations"][0]["prefix"] == [0]


def test_exhausted_budget_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    ops = generate_history(random.Random(1), 3_000, keys=1, clients=5)
    path.write_text("".join(dump_history(ops)))
    code, out, _ = _run(str(path), "--max-steps", "10")
    assert code == 2
    assert out.startswith("linearizability: unknown (step limit)")


def test_usage_and_history_errors_exit_2(tmp_path: Path) -> None:
    assert _run()[0] == 2
    code, _, err = _run(str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"op": "read"}\n')
    code, _, err = _run(str(bad))
    assert code == 2 and "line 1" in err
    assert _run(str(bad), "--timeout-s", "0")[0] == 2


def test_module_entry_point(tmp_path: Path) -> None:
    path = _write(tmp_path, H().write(1, 0, 10, "a").read(2, 40, 50, None))
    proc = subprocess.run(
        [sys.executable, "-m", "kvorum.check", "linearizability", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "not linearizable" in proc.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "kvorum.check", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_kvorumctl_check_linearizability_runs_the_same_check(tmp_path: Path) -> None:
    """The issue's `kvorumctl check linearizability HISTORY`, as a real process."""
    kvorumctl = str(Path(sys.executable).parent / "kvorumctl")
    good = _write(tmp_path, H().write(1, 0, 10, "a").read(2, 5, 20, "a"))
    done = subprocess.run([kvorumctl, "check", "linearizability", good], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"linearizability: ok")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(dump_history(H().write(1, 0, 10, "a").read(2, 40, 50, "b").ops)))
    done = subprocess.run(
        [kvorumctl, "check", "linearizability", str(bad), "--json"], capture_output=True
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["verdict"] == "illegal"
    done = subprocess.run([kvorumctl, "check", "linearizability"], capture_output=True)
    assert done.returncode == 2 and b"usage: kvorumctl check linearizability" in done.stderr
