"""Throwaway FerretDB (on its own PostgreSQL cluster) and Redis servers for a test session.

Used by conftest when no server URLs are given: each server runs as a child
process on a free loopback port, with its data and log files in a work dir,
and is stopped by ``LocalServer.stop()`` or, failing that, at interpreter exit.
On Linux the servers also get SIGTERM if the thread that started them dies
(e.g. the test process is SIGKILLed), so start them from the main thread.
Binaries come from ``scripts/ensure_ferretdb.sh`` and ``scripts/ensure_redis.sh``;
the PostgreSQL cluster is made and run by ``scripts/pg_cluster.sh``.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS_DIR = REPO_ROOT / "scripts"
HOST = "127.0.0.1"

START_TIMEOUT = 30.0
"""Seconds to wait for a started server to accept connections."""
STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL in ``LocalServer.stop()``."""
ENSURE_TIMEOUT = 900.0
"""Seconds allowed for an ensure script (a cold FerretDB build takes ~1 min)."""
_START_ATTEMPTS = 3
"""Tries with a new port when a server exits at start (its port was taken)."""


class ServerError(RuntimeError):
    """A server binary could not be obtained or the server did not start."""


class LocalServer:
    """A server running as a child process of the test session."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        url: str,
        port: int,
        log_path: pathlib.Path,
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        """Wrap a started ``process``; it is stopped at exit at the latest."""
        self.name = name
        self.process = process
        self.url = url
        self.port = port
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.companions: list[LocalServer] = []
        """Servers this one needs, stopped after it (FerretDB's PostgreSQL)."""
        self.cleanups: list[Callable[[], None]] = []
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.process.pid

    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate the server, kill it after ``STOP_TIMEOUT``; idempotent."""
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for companion in self.companions:
            companion.stop()
        while self.cleanups:
            self.cleanups.pop()()

    def __enter__(self) -> Self:
        """Return the server; leaving the ``with`` block stops it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Name, URL and pid."""
        return f"LocalServer(name={self.name!r}, url={self.url!r}, pid={self.pid})"


def free_port() -> int:
    """Return a TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until ``host:port`` accepts TCP connections.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``ServerError`` at
    once if ``process`` is given and exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            msg = (
                f"process {process.pid} exited with code {process.returncode}"
                f" before {host}:{port} opened"
            )
            raise ServerError(msg)
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            msg = f"{host}:{port} did not accept connections within {timeout:g}s"
            raise TimeoutError(msg)
        time.sleep(0.1)


def _run_ensure_script(name: str, workdir: pathlib.Path) -> str:
    """Run ``scripts/<name>`` and return the binary path it prints.

    Its stderr (build or apt progress) goes to ``<workdir>/<name>.log``.
    """
    script = SCRIPTS_DIR / name
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(
                [str(script)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=ENSURE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            msg = f"{script} failed: {e} (see {log_path})"
            raise ServerError(msg) from e
    if result.returncode != 0:
        msg = f"{script} exited with code {result.returncode}:\n{_tail(log_path)}"
        raise ServerError(msg)
    lines = result.stdout.decode().strip().splitlines()
    binary = pathlib.Path(lines[-1]) if lines else None
    if binary is None or not binary.is_file():
        msg = f"{script} printed no usable binary path: {result.stdout!r}"
        raise ServerError(msg)
    return str(binary)


def _tail(path: pathlib.Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` asking Linux to SIGTERM the child if we die."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


def _start(
    name: str,
    workdir: pathlib.Path,
    make_args: Callable[[int], Sequence[str]],
    make_url: Callable[[int], str],
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> LocalServer:
    """Start ``make_args(port)`` on a free port and wait until it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    last_error: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        # The child keeps its own copy of the log fd; ours can close at once.
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                list(make_args(port)),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only calls prctl
            )
        server = LocalServer(name, process, make_url(port), port, log_path, stop_signal=stop_signal)
        try:
            wait_for_port(HOST, port, START_TIMEOUT, process=process)
        except ServerError as e:
            # Most likely the port was taken between free_port() and bind.
            server.stop()
            last_error = e
            continue
        except TimeoutError as e:
            server.stop()
            msg = f"{name} did not start: {e}; log {log_path}:\n{_tail(log_path)}"
            raise ServerError(msg) from e
        except BaseException:
            server.stop()
            raise
        return server
    msg = f"{name} did not start ({last_error}); log {log_path}:\n{_tail(log_path)}"
    raise ServerError(msg)


def _postgres_data_dir(workdir: pathlib.Path) -> tuple[pathlib.Path, Callable[[], None]]:
    """Where the cluster lives, and how to remove it. As root, PostgreSQL runs as the
    ``postgres`` user, who cannot enter pytest's private (0700) temp dirs: the cluster
    then lives in a temp dir of its own."""
    if os.geteuid() != 0:
        return workdir / "postgres", lambda: None
    base = pathlib.Path(tempfile.mkdtemp(prefix="memobase-pg-"))
    base.chmod(0o755)
    return base / "data", lambda: shutil.rmtree(base, ignore_errors=True)


def start_postgres(workdir: pathlib.Path) -> LocalServer:
    """Start a private PostgreSQL cluster (``scripts/pg_cluster.sh``) for FerretDB."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, remove = _postgres_data_dir(workdir)
    script = str(SCRIPTS_DIR / "pg_cluster.sh")
    log_path = workdir / "postgres-init.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [script, "init", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=ENSURE_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        remove()
        msg = f"{script} init exited with code {result.returncode}:\n{_tail(log_path)}"
        raise ServerError(msg)
    try:
        server = _start(
            "postgres",
            workdir,
            lambda port: [script, "exec", str(data_dir), str(port)],
            lambda port: f"postgres://postgres@{HOST}:{port}/ferretdb",
            # SIGTERM waits for every client to disconnect; SIGINT is the fast shutdown.
            stop_signal=signal.SIGINT,
        )
    except BaseException:
        remove()
        raise
    server.cleanups.append(remove)
    return server


def start_ferretdb(workdir: pathlib.Path) -> LocalServer:
    """Start FerretDB with its PostgreSQL handler over a private cluster; stopping the
    returned server stops both."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = _run_ensure_script("ensure_ferretdb.sh", workdir)
    postgres = start_postgres(workdir)
    state_dir = workdir / "ferretdb"
    state_dir.mkdir(exist_ok=True)

    def args(port: int) -> list[str]:
        return [
            binary,
            "--handler=postgresql",
            f"--postgresql-url={postgres.url}",
            f"--listen-addr={HOST}:{port}",
            f"--state-dir={state_dir.resolve()}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]

    try:
        server = _start("ferretdb", workdir, args, lambda port: f"mongodb://{HOST}:{port}/")
    except BaseException:
        postgres.stop()
        raise
    server.companions.append(postgres)
    return server


def start_redis(workdir: pathlib.Path) -> LocalServer:
    """Start a non-persistent redis-server in the foreground, dir ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = _run_ensure_script("ensure_redis.sh", workdir)

    def args(port: int) -> list[str]:
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir.resolve()),
        ]

    return _start("redis", workdir, args, lambda port: f"redis://{HOST}:{port}/0")


__all__ = [
    "HOST",
    "REPO_ROOT",
    "LocalServer",
    "ServerError",
    "free_port",
    "start_ferretdb",
    "start_postgres",
    "start_redis",
    "wait_for_port",
]
