"""Any command line, environment or config file ends in a ServerConfig or a ConfigError —
never in another exception."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.config import FLAGS, ConfigError, parse_invocation, verify_bootstrap

# KVORUM_LONG=1 runs ten times as many examples.
_EXAMPLES = 3000 if os.environ.get("KVORUM_LONG") else 300
_NAMES = [spec.name for spec in FLAGS if spec.name not in ("config-file", "version")]
_PIECES = st.sampled_from(
    [
        "", "0", "-1", "0x", "1_", "abc", "true", "5s", "1.5h", "*", ",", "=", "[", "]", ":",
        "http://", "http://[", "http://[::1", "http://[::1]", "http://[::1]:1", "http://a:1",
        "http://a:1/p", "unix://x:1", "https://a:b", "n=", "n=http://a:1", "default", "zap",
        "\x00", "é", " ", "\t",
    ]
)  # fmt: skip
_VALUES = st.lists(_PIECES, max_size=4).map("".join)


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    words: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(_NAMES))
        dash = draw(st.sampled_from(["-", "--"]))
        if draw(st.booleans()):
            words.append(f"{dash}{name}={draw(_VALUES)}")
        else:
            words += [f"{dash}{name}", draw(_VALUES)]
    return words


def _outcome(argv: list[str], env: dict[str, str]) -> None:
    try:
        invocation = parse_invocation(argv, env)
        if invocation.config is not None:
            verify_bootstrap(invocation.config)
    except ConfigError as err:
        assert err.message and "\n" not in err.message
        assert err.exit_code in (1, 2)


@settings(max_examples=_EXAMPLES, deadline=None)
@given(_argv(), st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=3))
def test_flags_and_environment_never_crash(argv: list[str], env_flags: dict[str, str]) -> None:
    env = {"ETCD_" + name.upper().replace("-", "_"): value for name, value in env_flags.items()}
    _outcome(argv, env)


_YAML_VALUES = st.sampled_from(
    [
        "", "~", "0", "-1", "1e3", "1.5", "y", "yes", "abc", "'x'", "[]", "[a, 1]", "{}",
        "{a: 1}", "http://[::1", "http://a:1", "'*'", "!!binary aGk=", "2001-12-14", "&a 1",
        "*a", "|\n  x", ".inf", "[", "{", "'", "1:30", "0x_", "- 1",
    ]
)  # fmt: skip


@settings(max_examples=_EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*_NAMES, "client-transport-security"]), _YAML_VALUES)))
def test_config_files_never_crash(items: list[tuple[str, str]]) -> None:
    text = "".join(f"{key}: {value}\n" for key, value in items)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "conf.yml"
        path.write_text(text, encoding="utf-8")
        _outcome(["--config-file", str(path)], {})
