"""Unary-call benchmark: CreateUser, InsertBlob and GetUser at a fixed concurrency (16) over
gRPC and over REST, side by side with a no-op grpc.aio server (the ceiling), in one run.

    python -m bench.unary                 # starts FerretDB, redis-server and the server itself
    python -m bench.unary --seconds 5     # shorter windows
    python -m bench.unary --grpc-target 127.0.0.1:50051 --http-url http://127.0.0.1:8019 \\
        --token memobase-local-root-token # an already-running server (loopback only)

Each case is a closed loop: exactly ``--concurrency`` requests in flight, spread over
``--client-procs`` client processes, a warm-up, then a measured window of ``--seconds``.
Prints a Markdown table and writes it to ``bench/results/unary-<date>.md``. Exits with 1 if
any request failed. Every process it starts is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import math
import os
import pathlib
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from urllib.parse import urlsplit

import grpc
from google.protobuf import struct_pb2

from bench import cpu
from bench.loadgen import (
    GRPC_CHANNEL_OPTIONS,
    RPCS,
    TARGETS,
    USER_DATA,
    Case,
    ClientPool,
    Rpc,
    Target,
    WorkerResult,
)
from memobase_server.gen.memobase.v1 import user_pb2, user_pb2_grpc
from tests import servers

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
UPSTREAM_INSERTS_PER_S = 21.0
UPSTREAM_INSERT_P50_MS = 445.0
TARGET_RATIO: dict[Target, float] = {"grpc": 2.0, "rest": 3.0}
SERVER_ENV = {"MEMOBASE_LOG_LEVEL": "WARNING"}
CLIENT_BOUND = 0.9
"""A client process using this many cores or more is probably the bottleneck."""
CLIENT_PROC = "client-proc-"
FOREIGN_LOAD = 0.1
"""Cores used by other programs above which a window counts as disturbed."""


@dataclass
class Endpoints:
    grpc_target: str | None
    http_url: str | None
    token: str
    server_pids: dict[str, list[int]] = field(default_factory=dict)
    """CPU groups on the server side (server, ferretdb, redis) when we started them."""
    server_log: pathlib.Path | None = None
    ferretdb_log: pathlib.Path | None = None


@dataclass
class CaseResult:
    target: Target
    rpc: Rpc
    seconds: float
    latencies_ms: list[float]
    errors: Counter[str]
    warmup_ok: int
    warmup_errors: Counter[str]
    late: int
    usage: cpu.Usage
    failures: list[str]

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def requests(self) -> int:
        return self.ok + self.errors.total()

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of successful calls' latency, in ms."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def clean(self) -> bool:
        return not self.errors and not self.warmup_errors and not self.failures


# ---------------------------------------------------------------- the stack


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the ExitStack, which stops every child


def _check_loopback(host: str | None, what: str) -> None:
    if host is None:
        raise SystemExit(f"{what}: no host")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"{what}: {host} is not a loopback address (this benchmark is local)")


def start_noop(
    workdir: pathlib.Path, stack: contextlib.ExitStack, http_port: int | None = None
) -> servers.LocalServer:
    """The no-op ceiling server as a child process on a free port (and, given ``http_port``,
    its REST ceiling on that port too)."""
    port = servers.free_port()
    log_path = workdir / "noop-server.log"
    rest = [] if http_port is None else ["--http-port", str(http_port)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.noop_server", "--port", str(port), *rest],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    server = servers.LocalServer("noop-server", process, f"{servers.HOST}:{port}", port, log_path)
    stack.callback(server.stop)
    try:
        servers.wait_for_port(servers.HOST, port, servers.START_TIMEOUT, process=process)
        if http_port is not None:
            servers.wait_for_port(servers.HOST, http_port, servers.START_TIMEOUT, process=process)
    except (servers.ServerError, TimeoutError) as exc:
        raise RuntimeError(f"no-op server did not start: {exc}\n{log_path.read_text()}") from exc
    return server


def start_local_stack(workdir: pathlib.Path, stack: contextlib.ExitStack) -> Endpoints:
    """FerretDB, redis-server and the memobase server, each a child process on free ports."""
    from tests.conftest import ROOT_TOKEN, start_server, stop_server  # noqa: PLC0415

    ferretdb = servers.start_ferretdb(workdir)
    stack.callback(ferretdb.stop)
    redis = servers.start_redis(workdir)
    stack.callback(redis.stop)
    database = f"memobase_bench_{uuid.uuid4().hex[:8]}"
    process, grpc_port, http_port, log_path = start_server(
        workdir, ferretdb.url, redis.url, database, **SERVER_ENV
    )
    stack.callback(stop_server, process)
    return Endpoints(
        grpc_target=f"127.0.0.1:{grpc_port}",
        http_url=f"http://127.0.0.1:{http_port}",
        token=ROOT_TOKEN,
        server_pids={"server": [process.pid], "ferretdb": [ferretdb.pid], "redis": [redis.pid]},
        server_log=log_path,
        ferretdb_log=ferretdb.log_path,
    )


async def _create_users(target: str, token: str, count: int) -> list[str]:
    metadata = (("authorization", f"Bearer {token}"),)
    created: list[str] = []
    async with grpc.aio.insecure_channel(target, options=GRPC_CHANNEL_OPTIONS) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        data = struct_pb2.Struct()
        data.update(USER_DATA)

        async def one() -> None:
            request = user_pb2.CreateUserRequest(id=str(uuid.uuid4()), data=data)
            reply = await users.CreateUser(request, metadata=metadata, timeout=30)
            created.append(reply.id)

        semaphore = asyncio.Semaphore(16)

        async def bounded() -> None:
            async with semaphore:
                await one()

        await asyncio.gather(*(bounded() for _ in range(count)))
    return created


# ---------------------------------------------------------------- running cases


def run_case(
    pool: ClientPool,
    target: Target,
    rpc: Rpc,
    address: str,
    token: str,
    user_ids: Sequence[str],
    cpu_groups: dict[str, list[int]],
    args: argparse.Namespace,
) -> CaseResult:
    lanes = [
        args.concurrency // pool.size + (1 if n < args.concurrency % pool.size else 0)
        for n in range(pool.size)
    ]
    start_at = time.time() + 0.5  # time for every worker to receive its case
    cases = [
        Case(
            target=target,
            rpc=rpc,
            address=address,
            token=token,
            lanes=lanes[n],
            lane_offset=sum(lanes[:n]),
            user_ids=tuple(user_ids),
            start_at=start_at,
            warmup_s=args.warmup,
            seconds=args.seconds,
            timeout_s=args.timeout,
        )
        for n in range(pool.size)
    ]
    pool.send(cases)
    window_start = start_at + args.warmup
    time.sleep(max(0.0, window_start - time.time()))
    before = cpu.snapshot(cpu_groups)
    time.sleep(max(0.0, window_start + args.seconds - time.time()))
    after = cpu.snapshot(cpu_groups)
    results = pool.receive(timeout_s=args.timeout + 60)
    return _merge(target, rpc, args.seconds, results, cpu.usage(before, after))


def _merge(
    target: Target, rpc: Rpc, seconds: float, results: list[WorkerResult], usage: cpu.Usage
) -> CaseResult:
    merged = CaseResult(target, rpc, seconds, [], Counter(), 0, Counter(), 0, usage, [])
    for r in results:
        merged.latencies_ms.extend(r.latencies_ms)
        merged.errors.update(r.errors)
        merged.warmup_ok += r.warmup_ok
        merged.warmup_errors.update(r.warmup_errors)
        merged.late += r.late
        if r.failure:
            merged.failures.append(r.failure)
    return merged


# ---------------------------------------------------------------- reporting


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def results_table(results: list[CaseResult]) -> str:
    ceiling = {r.rpc: r for r in results if r.target == "noop-grpc"}
    lines = [
        "| target | RPC | requests | errors | req/s | p50 ms | p99 ms "
        "| ceiling/ours req/s | ours/ceiling p50 | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        top = ceiling.get(r.rpc)
        ratio = p50_ratio = "-"
        goal = ""
        if r.target == "noop-grpc":
            ratio = "1.00 (ceiling)"
        elif top is not None and r.throughput > 0:
            value = top.throughput / r.throughput
            ratio = f"{value:.2f}"
            ours_p50, top_p50 = r.percentile(0.5), top.percentile(0.5)
            if ours_p50 is not None and top_p50:
                p50_ratio = f"{ours_p50 / top_p50:.2f}"
            limit = TARGET_RATIO[r.target]
            goal = f"≤{limit:g}x {'met' if value <= limit else 'MISSED'}"
        errors = str(r.errors.total()) if not r.errors else f"**{r.errors.total()}**"
        lines.append(
            f"| {r.target} | {r.rpc} | {r.requests} | {errors} | {r.throughput:.0f} "
            f"| {_ms(r.percentile(0.5))} | {_ms(r.percentile(0.99))} | {ratio} | {p50_ratio} "
            f"| {goal} |"
        )
    return "\n".join(lines)


def _per_request(cores: float | None, r: CaseResult) -> str:
    """CPU microseconds per completed request of one group."""
    if cores is None or not r.requests:
        return "-"
    return f"{cores * r.seconds * 1e6 / r.requests:.0f}"


def cpu_table(results: list[CaseResult], client_procs: int, external: bool) -> str:
    ncpu = os.cpu_count() or 1
    lines = [
        f"CPU during each measured window, in cores (this machine has {ncpu}; "
        f"{client_procs} client process(es); a Python process near 1.0 is saturated):",
        "",
        "| target | RPC | client (all) | busiest client proc | server | ferretdb | redis "
        "| kernel threads | foreign procs | machine busy | CPU µs/req client / server / ferretdb |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    disturbed: list[str] = []
    for r in results:
        u = r.usage
        c = u.cores
        per_proc = [v for k, v in c.items() if k.startswith(CLIENT_PROC) and v is not None]
        busiest = max(per_proc) if per_proc else None
        flag = " (client-bound?)" if busiest is not None and busiest >= CLIENT_BOUND else ""
        machine = u.machine_cores
        saturated = " (saturated)" if machine is not None and machine >= 0.95 * ncpu else ""
        if u.foreign_cores > FOREIGN_LOAD:
            top = ", ".join(f"`{name}` {cores:.2f}" for name, cores in u.foreign_top)
            disturbed.append(f"{r.target} {r.rpc} ({top})")
        lines.append(
            f"| {r.target} | {r.rpc} | {_cores(c.get('client'))} | {_cores(busiest)}{flag} "
            f"| {_cores(c.get('server'))} | {_cores(c.get('ferretdb'))} "
            f"| {_cores(c.get('redis'))} | {_cores(u.kernel_cores)} | {_cores(u.foreign_cores)} "
            f"| {_cores(machine)} / {ncpu}{saturated} "
            f"| {' / '.join(_per_request(c.get(g), r) for g in ('client', 'server', 'ferretdb'))} |"
        )
    if external:
        lines += ["", "The external server's processes count as foreign here."]
    elif disturbed:
        lines += [
            "",
            f"**Disturbed: other programs used more than {FOREIGN_LOAD:g} cores during "
            f"{'; '.join(disturbed)}. Those rows are not clean; rerun on a quiet machine.**",
        ]
    return "\n".join(lines)


def upstream_line(results: list[CaseResult]) -> str:
    line = (
        f"Upstream Memobase server, for scale: {UPSTREAM_INSERTS_PER_S:g} inserts/s "
        f"(p50 {UPSTREAM_INSERT_P50_MS:g} ms) at concurrency 16."
    )
    ours = [r for r in results if r.rpc == "InsertBlob" and r.target != "noop-grpc" and r.ok]
    if ours:
        line += " Here: " + ", ".join(
            f"{r.target} {r.throughput:.0f} inserts/s (p50 {_ms(r.percentile(0.5))} ms, "
            f"{r.throughput / UPSTREAM_INSERTS_PER_S:.0f}x upstream)"
            for r in ours
        )
        line += "."
    return line


def errors_section(results: list[CaseResult]) -> str:
    dirty = [r for r in results if not r.clean]
    if not dirty:
        return "No request failed (errors: non-OK gRPC status, HTTP status ≠ 200 or errno ≠ 0)."
    total = sum(r.errors.total() + r.warmup_errors.total() for r in dirty)
    lines = [
        f"**!!! THIS RUN HAD ERRORS: {total} failed requests"
        f"{' and client failures' if any(r.failures for r in dirty) else ''}"
        " — the numbers above are not clean. !!!**",
        "",
    ]
    for r in dirty:
        for label, count in (r.errors + r.warmup_errors).most_common(5):
            lines.append(f"- {r.target} {r.rpc}: {count} x `{label}`")
        for failure in r.failures:
            lines.append(f"- {r.target} {r.rpc}: client failed:\n\n```\n{failure}\n```")
    return "\n".join(lines)


_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+")
_ERRMSG = re.compile(r'"errmsg": "[^"]*"')


def _log_entries(text: str, json_lines: bool) -> list[str]:
    """One label per entry at warning level or above. JSON lines: level and message;
    plain logs: an entry starts with a timestamp, continuation lines are dropped."""
    labels: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if json_lines:
            try:
                entry = json.loads(raw)
                if entry.get("level") in ("DEBUG", "INFO"):
                    continue
                labels.append(f"{entry.get('level')}: {entry.get('message')}")
            except (ValueError, AttributeError):
                labels.append(f"(not JSON) {raw[:200]}")
        elif _LOG_TIMESTAMP.match(raw):
            labels.append(_LOG_TIMESTAMP.sub("", raw).replace("\t", " ")[:200])
        elif labels and (found := _ERRMSG.search(raw)):  # FerretDB dumps error responses
            labels[-1] += f" [{found.group(0)}]"
    return labels


def stack_log_sections(
    server_log: pathlib.Path | None, ferretdb_log: pathlib.Path | None, label: str = ""
) -> list[str]:
    """The server's and FerretDB's log summaries, those that have anything to say."""
    prefix = f"{label} " if label else ""
    found = (
        log_summary(server_log, f"{prefix}server", json_lines=True),
        log_summary(ferretdb_log, f"{prefix}FerretDB", json_lines=False),
    )
    return [summary for summary in found if summary]


def log_summary(path: pathlib.Path | None, name: str, json_lines: bool) -> str | None:
    """Warnings and errors a child wrote to its log, most frequent first (digits folded)."""
    if path is None or not path.exists():
        return None
    labels = _log_entries(path.read_text(errors="replace"), json_lines)
    if not labels:
        return f"{name} log: nothing at warning level or above."
    counts = Counter(re.sub(r"\d+", "N", label) for label in labels)
    lines = [f"{name} log: {len(labels)} entries at warning level or above:"]
    lines += [f"- {n} x `{label[:300]}`" for label, n in counts.most_common(8)]
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (modified)" if dirty else "")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _background_load(seconds: float = 1.0) -> float | None:
    """Cores busy on the machine before we start anything."""
    before = cpu.snapshot({})
    time.sleep(seconds)
    return cpu.usage(before, cpu.snapshot({})).machine_cores


def report(
    results: list[CaseResult], args: argparse.Namespace, endpoints: Endpoints, started: dt.datetime
) -> str:
    mode = "own stack (FerretDB + redis-server + server)" if endpoints.server_pids else "external"
    header = [
        f"# Unary benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"commit {_git_commit()}; {os.cpu_count()} x {_cpu_model()}; Python "
        f"{platform.python_version()}, grpcio {grpc.__version__}; server: {mode}; "
        f"machine busy before start: {_cores(args.idle_load)} cores.",
        f"Concurrency {args.concurrency} (closed loop, {args.client_procs} client process(es)), "
        f"warm-up {args.warmup:g} s, window {args.seconds:g} s per case; requests = calls "
        "completed in the window, req/s counts successful ones; latency of successful calls.",
    ]
    sections = [
        "\n".join(header),
        results_table(results),
        upstream_line(results),
        errors_section(results),
        cpu_table(results, args.client_procs, not endpoints.server_pids),
    ]
    sections += stack_log_sections(endpoints.server_log, endpoints.ferretdb_log)
    return "\n\n".join(sections) + "\n"


# ---------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.unary",
        description="Unary-call benchmark: gRPC, REST and a no-op grpc.aio ceiling.",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per case")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up per case (s)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--client-procs", type=int, default=2, help="client processes sharing the concurrency"
    )
    parser.add_argument("--users", type=int, default=256, help="pre-created users")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument("--grpc-target", help="a running server's gRPC host:port (loopback)")
    parser.add_argument("--http-url", help="a running server's REST base URL (loopback)")
    parser.add_argument("--token", help="root token for --grpc-target/--http-url")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"subset of {','.join(TARGETS)}"
    )
    parser.add_argument("--rpcs", default=",".join(RPCS), help=f"subset of {','.join(RPCS)}")
    parser.add_argument("--out", type=pathlib.Path, help="report file (default bench/results/)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    return parser


def _choose(raw: str, allowed: Sequence[str], what: str) -> list[str]:
    chosen = [x.strip() for x in raw.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"--{what}: choose from {', '.join(allowed)} (got {raw!r})")
    return [x for x in allowed if x in chosen]


def run_all(
    targets: list[Target],
    rpcs: list[Rpc],
    pool: ClientPool,
    noop: servers.LocalServer | None,
    endpoints: Endpoints,
    user_ids: list[str],
    args: argparse.Namespace,
) -> list[CaseResult]:
    """Every (target, RPC) case in turn, with progress on stderr."""
    assert endpoints.grpc_target is not None
    results: list[CaseResult] = []
    for target in targets:
        if target == "noop-grpc":
            assert noop is not None
            address, groups = noop.url, {"server": [noop.pid]}
        elif target == "grpc":
            address, groups = endpoints.grpc_target, dict(endpoints.server_pids)
        elif endpoints.http_url is not None:
            address, groups = endpoints.http_url, dict(endpoints.server_pids)
        else:
            print("bench: no --http-url, skipping REST", file=sys.stderr)
            continue
        groups["client"] = pool.pids
        groups.update({f"{CLIENT_PROC}{n}": [pid] for n, pid in enumerate(pool.pids)})
        for rpc in rpcs:
            print(f"bench: {target} {rpc} …", file=sys.stderr, flush=True)
            result = run_case(pool, target, rpc, address, endpoints.token, user_ids, groups, args)
            results.append(result)
            print(
                f"bench:   {result.throughput:.0f} req/s, p50 "
                f"{_ms(result.percentile(0.5))} ms, p99 {_ms(result.percentile(0.99))}"
                f" ms, errors {result.errors.total()}",
                file=sys.stderr,
                flush=True,
            )
    return results


def _validate(args: argparse.Namespace) -> tuple[list[Target], list[Rpc], bool]:
    """The chosen targets and RPCs, and whether the server is an external one."""
    targets: list[Target] = [t for t in TARGETS if t in _choose(args.targets, TARGETS, "targets")]
    rpcs: list[Rpc] = [r for r in RPCS if r in _choose(args.rpcs, RPCS, "rpcs")]
    if args.concurrency < 1 or args.client_procs < 1 or args.users < 1 or args.seconds <= 0:
        raise SystemExit("--concurrency, --client-procs, --users and --seconds must be positive")
    args.client_procs = min(args.client_procs, args.concurrency)
    external = bool(args.grpc_target or args.http_url)
    if external:
        if args.grpc_target:
            _check_loopback(args.grpc_target.rsplit(":", 1)[0], "--grpc-target")
        if args.http_url:
            _check_loopback(urlsplit(args.http_url).hostname, "--http-url")
        args.token = args.token or os.environ.get("ACCESS_TOKEN")
        if not args.token:
            raise SystemExit("--token (or ACCESS_TOKEN) is required with --grpc-target/--http-url")
        if not args.grpc_target:
            raise SystemExit("--grpc-target is required (users are pre-created over gRPC)")
    return targets, rpcs, external


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    targets, rpcs, external = _validate(args)
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    started = dt.datetime.now()
    args.idle_load = _background_load()
    if args.idle_load is not None and args.idle_load > 2 * FOREIGN_LOAD:
        print(
            f"bench: warning: the machine is already busy ({args.idle_load:.2f} cores) "
            "before the benchmark starts; results will be disturbed",
            file=sys.stderr,
        )
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="memobase-bench-"))
    keep_workdir = args.keep
    try:
        with contextlib.ExitStack() as stack:
            # Start every child before this process touches gRPC (forking after gRPC is
            # initialised is fragile); the client workers are spawned, not forked.
            print(f"bench: work dir {workdir}", file=sys.stderr)
            noop = start_noop(workdir, stack) if "noop-grpc" in targets else None
            pool = ClientPool(args.client_procs)
            stack.callback(pool.close)
            if external:
                endpoints = Endpoints(args.grpc_target, args.http_url, args.token)
            else:
                print("bench: starting FerretDB, redis-server and the server", file=sys.stderr)
                endpoints = start_local_stack(workdir, stack)
            assert endpoints.grpc_target is not None
            user_ids = asyncio.run(
                _create_users(endpoints.grpc_target, endpoints.token, args.users)
            )
            results = run_all(targets, rpcs, pool, noop, endpoints, user_ids, args)
            # Stop the server now so its log is complete before we summarise it.
            stack.close()
        text = report(results, args, endpoints, started)
        print(text)
        out = args.out or RESULTS_DIR / f"unary-{started:%Y-%m-%dT%H%M%S}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"bench: report written to {out}", file=sys.stderr)
        clean = all(r.clean for r in results)
        if not clean:
            keep_workdir = True
            print(
                "bench: !!! ERRORS DURING THE RUN: see the report; numbers are not clean !!!",
                file=sys.stderr,
            )
        return 0 if clean else 1
    except KeyboardInterrupt:
        print("bench: interrupted; every child process was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if keep_workdir:
            print(f"bench: logs and data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
