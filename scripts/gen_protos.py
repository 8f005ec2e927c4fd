"""Generates the Python code of the contract into server/memobase_server/gen.

Runs grpc_tools.protoc (with mypy-protobuf stubs) into a temporary folder, rewrites the
`memobase.v1` imports to the package the code lives in (the name `memobase` belongs to the
official SDK), and replaces the committed tree. `--check` fails when the committed code is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
VENDOR_ROOT = ROOT / "third_party" / "googleapis"
TARGET = ROOT / "server" / "memobase_server" / "gen"
PACKAGE = "memobase_server.gen"

# Module references (imports and stub annotations), never the serialized descriptor bytes.
_MODULE_REF = re.compile(r"(?<![\w./\\'\"])memobase\.v1(?=\.\w+_pb2\b| import )")


def _protoc(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{VENDOR_ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"protoc failed with exit code {result.returncode}")


def _rewrite(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    out = [
        line if "AddSerializedFile" in line else _MODULE_REF.sub(f"{PACKAGE}.memobase.v1", line)
        for line in lines
    ]
    path.write_text("".join(out))


def generate(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _protoc(out)
        for path in out.rglob("*.py*"):
            _rewrite(path)
        for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out, dest)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs if d != "__pycache__")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        generate(TARGET)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        committed = TARGET
        if not committed.exists() or not _same_tree(fresh, committed):
            print("generated code is stale: run `make proto`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
