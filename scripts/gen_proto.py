#!/usr/bin/env python3
"""Generate kvorum's protobuf and gRPC Python modules from ``kvorum/api/proto``.

The sources live flat in ``kvorum/api/proto/<pkg>/<file>.proto``; protoc sees them under the
virtual root ``kvorum/api/pb`` (``-Ikvorum/api/pb=kvorum/api/proto``), so the import paths it
writes into the generated code are ``kvorum.api.pb.<pkg>.<file>_pb2`` with no post-processing.

Output is a pure function of the .proto sources and the pinned grpcio-tools version: stale
generated files are removed first and the package ``__init__.py`` files are written with fixed
text. ``tests/unit/api/test_generated_up_to_date.py`` regenerates into a temporary directory
and requires the committed files to be byte-identical.

Usage: ``python scripts/gen_proto.py [--out ROOT]`` (ROOT defaults to the repository root).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "kvorum" / "api" / "proto"
# The Python package the generated modules belong to, as a path relative to the output root.
PB_PACKAGE = Path("kvorum") / "api" / "pb"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

PB_INIT_TEXT = (
    '"""Generated protobuf and gRPC modules for etcd\'s v3 API.\n\n'
    "Do not edit: run `make proto` (scripts/gen_proto.py) after changing kvorum/api/proto.\n"
    '"""\n'
)
SUBPACKAGE_INIT_TEXT = '"""Generated from kvorum/api/proto/{name}; do not edit."""\n'


def proto_sources() -> list[Path]:
    """Return the .proto files relative to PROTO_DIR, in a stable order."""
    return sorted(p.relative_to(PROTO_DIR) for p in PROTO_DIR.rglob("*.proto"))


def clean_generated(pb_dir: Path) -> None:
    """Remove previously generated modules and caches so deleted protos leave nothing behind."""
    if not pb_dir.is_dir():
        return
    for path in sorted(pb_dir.rglob("*")):
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES):
            path.unlink()
    for cache in sorted(pb_dir.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def write_inits(pb_dir: Path, sources: list[Path]) -> None:
    """Write the package markers: pb itself and one subpackage per proto package directory."""
    pb_dir.mkdir(parents=True, exist_ok=True)
    (pb_dir / "__init__.py").write_text(PB_INIT_TEXT)
    for sub in sorted({src.parent for src in sources}):
        (pb_dir / sub).mkdir(parents=True, exist_ok=True)
        (pb_dir / sub / "__init__.py").write_text(SUBPACKAGE_INIT_TEXT.format(name=sub.as_posix()))


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every source into ``out_root``; return the files it produced."""
    sources = proto_sources()
    if not sources:
        raise SystemExit(f"gen_proto: no .proto files under {PROTO_DIR}")
    pb_dir = out_root / PB_PACKAGE
    clean_generated(pb_dir)
    write_inits(pb_dir, sources)
    virtual_names = [(PB_PACKAGE / src).as_posix() for src in sources]
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PB_PACKAGE.as_posix()}={PROTO_DIR}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *virtual_names,
    ]
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)
    return sorted(p for p in pb_dir.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT,
        help="root to write kvorum/api/pb/ under (default: the repository root)",
    )
    args = parser.parse_args(argv)
    produced = generate(args.out.resolve())
    print(f"gen_proto: wrote {len(produced)} files under {args.out / PB_PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
