"""The Go and TypeScript clients (clients/) against the real server: each language's own test
(`go test`, `npm test`) and example run as child processes, pointed at the session's server
by MEMOBASE_GRPC_TARGET and MEMOBASE_TOKEN. The toolchains and packages come from
scripts/install_client_tools.sh; when they are missing these tests fail, never skip."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Stack

REPO_ROOT = Path(__file__).resolve().parent.parent
GO_DIR = REPO_ROOT / "clients" / "go"
TS_DIR = REPO_ROOT / "clients" / "typescript"
README = REPO_ROOT / "clients" / "README.md"
INSTALL_HINT = "run `scripts/install_client_tools.sh` (or `make client-tools`) first"

# The commands clients/README.md shows, run here verbatim (in clients/go, clients/typescript).
GO_TEST = ["go", "test", "-count=1", "-v", "./..."]
GO_EXAMPLE = ["go", "run", "./example"]
NPM_TEST = ["npm", "test"]
NPM_EXAMPLE = ["npm", "run", "example"]

TIMEOUT = 600  # seconds; a cold Go build cache compiles gRPC (~1 min on 2 cores)


def _tool(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(f"`{name}` is not installed: {INSTALL_HINT}", pytrace=False)
    return found


def _run(cmd: list[str], cwd: Path, stack: Stack, **extra_env: str) -> str:
    env = {
        **os.environ,
        "MEMOBASE_GRPC_TARGET": stack.grpc_target,
        "MEMOBASE_TOKEN": stack.root_token,
        **extra_env,
    }
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, (
        f"`{' '.join(cmd)}` in {cwd.relative_to(REPO_ROOT)} exited {proc.returncode}:\n"
        f"{proc.stdout[-6000:]}"
    )
    return proc.stdout


@functools.cache
def _go_ready() -> str:
    """The go command, once the client's modules are in the module cache (the tests run with
    GOPROXY=off: they must not download anything)."""
    go = _tool("go", "/usr/local/go/bin/go")
    check = subprocess.run(
        [go, "mod", "download"],
        cwd=GO_DIR,
        env={**os.environ, "GOPROXY": "off"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check.returncode != 0:
        pytest.fail(
            f"the Go client's modules are not in the module cache: {INSTALL_HINT}\n"
            f"{check.stderr[-2000:]}",
            pytrace=False,
        )
    return go


@functools.cache
def _npm_ready() -> str:
    """The npm command, once clients/typescript/node_modules is installed from the lockfile."""
    _tool("node")
    npm = _tool("npm")
    bins = TS_DIR / "node_modules" / ".bin"
    if not all((bins / tool).exists() for tool in ("tsc", "tsx", "protoc-gen-es")):
        pytest.fail(
            f"clients/typescript/node_modules is not installed: {INSTALL_HINT}", pytrace=False
        )
    return npm


def test_go_client_round_trip(stack: Stack) -> None:
    out = _run([_go_ready(), *GO_TEST[1:]], GO_DIR, stack, GOPROXY="off")
    assert "--- SKIP" not in out, out
    for name in ("TestChatRoundTrip", "TestWrongTokenIsUnauthenticated"):
        assert f"--- PASS: {name}" in out, out
    assert re.search(r"^ok\s+github\.com/memobase-server/clients/go\s", out, re.M), out


def test_go_example(stack: Stack) -> None:
    out = _run([_go_ready(), *GO_EXAMPLE[1:]], GO_DIR, stack, GOPROXY="off")
    assert re.search(r"^user [0-9a-f-]{36}, blob [0-9a-f-]{36} \(BLOB_TYPE_CHAT\)$", out, re.M)
    assert "  user: I moved to Lisbon\n  assistant: How do you like it?" in out, out


def test_typescript_client_round_trip(stack: Stack) -> None:
    out = _run([_npm_ready(), *NPM_TEST[1:]], TS_DIR, stack)
    counts = dict(re.findall(r"^\S+ (tests|pass|fail|skipped|cancelled|todo) (\d+)$", out, re.M))
    assert counts == {
        "tests": "2",
        "pass": "2",
        "fail": "0",
        "skipped": "0",
        "cancelled": "0",
        "todo": "0",
    }, out
    for name in ("chat round trip", "a wrong token is unauthenticated"):
        assert re.search(rf"^✔ {name} \(", out, re.M), out


def test_typescript_example(stack: Stack) -> None:
    out = _run([_npm_ready(), *NPM_EXAMPLE[1:]], TS_DIR, stack)
    assert re.search(r"^user [0-9a-f-]{36}, blob [0-9a-f-]{36} \(CHAT\)$", out, re.M), out
    assert "  user: I moved to Lisbon\n  assistant: How do you like it?" in out, out


def test_readme_shows_the_tested_code() -> None:
    """clients/README.md's examples are the files and commands these tests run."""
    readme = README.read_text()
    blocks = re.findall(r"^```\w*\n(.*?)^```$", readme, re.M | re.S)
    for example in (GO_DIR / "example" / "main.go", TS_DIR / "example" / "main.ts"):
        assert example.read_text() in blocks, f"{README.name} must show {example} verbatim"
    for cmd in (GO_TEST, GO_EXAMPLE, NPM_TEST, NPM_EXAMPLE):
        assert " ".join(cmd) in readme, f"{README.name} must show `{' '.join(cmd)}`"
