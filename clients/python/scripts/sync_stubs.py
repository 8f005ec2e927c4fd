"""Copies the server's generated contract code into the client package.

`make proto` generates the Python code of `proto/memobase/v1` into
`server/memobase_server/gen` (scripts/gen_protos.py). The client ships its own copy, so that it
does not depend on the server package at run time: the same files with the package prefix
`memobase_server.gen` rewritten to `memobase_grpc._gen` (the serialized descriptors are left
as they are, so both copies register the same files and can be imported side by side).

    python clients/python/scripts/sync_stubs.py           # after scripts/gen_protos.py
    python clients/python/scripts/sync_stubs.py --check   # fail when the copy is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "server" / "memobase_server" / "gen"
TARGET = ROOT / "clients" / "python" / "src" / "memobase_grpc" / "_gen"
SOURCE_PACKAGE = "memobase_server.gen"
TARGET_PACKAGE = "memobase_grpc._gen"
HEADER = "# Copied from memobase_server.gen by clients/python/scripts/sync_stubs.py. DO NOT EDIT!\n"


def _rewrite(text: str) -> str:
    lines = text.splitlines(keepends=True)
    out = [
        line if "AddSerializedFile" in line else line.replace(SOURCE_PACKAGE, TARGET_PACKAGE)
        for line in lines
    ]
    return HEADER + "".join(out)


def generate(dest: Path) -> None:
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} is missing: run scripts/gen_protos.py first")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen"
        for path in sorted(SOURCE.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            if path.suffix not in {".py", ".pyi"}:
                continue
            target = out / path.relative_to(SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_rewrite(path.read_text()))
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out, dest)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the copy is stale")
    args = parser.parse_args()
    if not args.check:
        generate(TARGET)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        if not TARGET.exists() or not _same_tree(fresh, TARGET):
            print("the client's generated code is stale: run `make proto`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
