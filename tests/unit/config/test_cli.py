"""The ``kvorum`` command, in-process through ``main`` and as the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from kvorum import __version__, cli
from kvorum.config import FLAGS, ServerConfig


def run_main(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    status = cli.main(argv, env or {})
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[ServerConfig]:
    """Stand in for kvorum.server so main's hand-over can be observed."""
    started: list[ServerConfig] = []
    module = types.ModuleType("kvorum_test_fake_server")

    def run(config: ServerConfig) -> int:
        started.append(config)
        return 0

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(cli, "SERVER_MODULE", module.__name__)
    return started


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, ["--version"])
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"kvorum Version: {__version__}"
    assert lines[1] == "etcd API Version: 3.4"
    assert any(line.startswith("Python Version: ") for line in lines)


def test_help_lists_every_documented_flag(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, ["--help"])
    assert status == 0
    for spec in FLAGS:
        if not spec.hidden and spec.field is not None:
            assert f"  --{spec.name} '" in out, spec.name
    assert "--heartbeat-interval '100'" in out and "--data-dir '${name}.etcd'" in out


@pytest.mark.parametrize(
    ("argv", "env", "status", "needle"),
    [
        (["--unknown-flag"], {}, 2, "flag provided but not defined: --unknown-flag"),
        (["-heartbeat-interval", "abc"], {}, 2, "--heartbeat-interval"),
        (["--election-timeout=300"], {}, 1, "--election-timeout[300ms]"),
        (["--name", "a"], {"ETCD_NAME": "b"}, 1, "ETCD_NAME"),
    ],
)
def test_errors_are_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    status: int,
    needle: str,
) -> None:
    got_status, out, err = run_main(capsys, argv, env)
    assert got_status == status and out == ""
    assert err.count("\n") == 1 and err.startswith("kvorum: ") and needle in err


def test_missing_member_module_is_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "SERVER_MODULE", "kvorum._no_such_member_module")
    status, _, err = run_main(capsys, [])
    assert status == 1
    assert err == "kvorum: the member process is not built yet\n"


def test_member_module_without_run_is_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("kvorum_test_member_without_run")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(cli, "SERVER_MODULE", module.__name__)
    status, _, err = run_main(capsys, [])
    assert (status, err) == (1, "kvorum: the member process is not built yet\n")


def test_a_good_command_line_starts_the_member(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_server: list[ServerConfig],
) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(capsys, ["--name", "m1", "--pre-vote"], {"ETCD_TYPO": "1"})
    assert status == 0
    assert [(c.name, c.pre_vote, c.data_dir) for c in fake_server] == [("m1", True, "m1.etcd")]
    assert err == "kvorum: warning: unrecognized environment variable ETCD_TYPO=1\n"


def test_bootstrap_checks_apply_to_a_fresh_data_dir_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_server: list[ServerConfig]
) -> None:
    data_dir = tmp_path / "data"
    argv = ["--name=foo", "--initial-cluster=bar=http://127.0.0.1:2380", f"--data-dir={data_dir}"]
    status, _, err = run_main(capsys, argv)
    assert status == 1 and "couldn't find local name 'foo'" in err
    assert fake_server == []
    # A member restarting from its data ignores --initial-cluster, as etcd does.
    data_dir.mkdir()
    (data_dir / "member").mkdir()
    status, _, _ = run_main(capsys, argv)
    assert status == 0 and [c.name for c in fake_server] == ["foo"]


# ---------------------------------------------------------------- the console script

SCRIPT = Path(sys.executable).parent / "kvorum"
needs_script = pytest.mark.skipif(
    not SCRIPT.exists(), reason="console script missing: run .venv/bin/pip install -e ."
)


def run_script(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    done = subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@needs_script
def test_script_version_and_errors(tmp_path: Path) -> None:
    status, out, _ = run_script(["-version"], tmp_path)
    assert status == 0 and out.startswith(f"kvorum Version: {__version__}\n")
    status, out, err = run_script(["--heartbeat-interval", "abc"], tmp_path)
    assert status == 2 and out == ""
    assert err == 'kvorum: invalid value "abc" for flag --heartbeat-interval: parse error\n'
    status, _, err = run_script([], tmp_path, {"ETCD_ELECTION_TIMEOUT": "200"})
    assert status == 1 and err.count("\n") == 1 and "--election-timeout[200ms]" in err
