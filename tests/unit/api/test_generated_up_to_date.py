"""The committed generated code is exactly what scripts/gen_proto.py produces from the sources.

Regenerates into a temporary directory and compares file sets and bytes, so a hand edit of
``kvorum/api/pb`` or a .proto change without ``make proto`` fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PB_DIR = Path("kvorum") / "api" / "pb"


def _files(root: Path) -> dict[str, bytes]:
    base = root / PB_DIR
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_sources(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = _files(tmp_path)
    committed = _files(REPO_ROOT)
    assert "etcdserverpb/rpc_pb2.py" in fresh
    assert sorted(committed) == sorted(fresh), "run `make proto`: generated file set differs"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], f"run `make proto`: regenerated files differ: {stale}"
