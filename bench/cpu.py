"""CPU time of processes and of the whole machine, from /proc (Linux), to see where the time
of a measured window went, in cores used on average (1.0 = one core fully busy).

Besides the benchmark's own groups of processes, a snapshot reads every process on the
machine, so a window can tell kernel threads apart from foreign processes (anything that is
neither ours nor a kernel thread: another program competing for the CPU)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_KTHREADD = 2


@dataclass(frozen=True)
class ProcessTime:
    ppid: int
    seconds: float
    """User + system CPU seconds of all its threads so far."""
    name: str
    started: int
    """Start time in ticks since boot: tells a reused pid apart."""


def read_process(pid: int) -> ProcessTime | None:
    """CPU time of ``pid``, or None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    head, _, rest = stat.rpartition(")")
    fields = rest.split()
    utime, stime = int(fields[11]), int(fields[12])
    name = head.partition("(")[2]
    return ProcessTime(int(fields[1]), (utime + stime) / _TICKS, name, int(fields[19]))


def command_line(pid: int, limit: int = 60) -> str | None:
    """The start of ``pid``'s command line, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text[:limit] or None


def all_processes() -> dict[int, ProcessTime]:
    found: dict[int, ProcessTime] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := read_process(int(entry))) is not None:
            found[int(entry)] = info
    return found


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent doing anything but idling (or being stolen) since boot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            line = f.readline()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user/nice)
    values = [*(int(v) for v in line.split()[1:9]), 0, 0, 0, 0, 0, 0, 0, 0][:8]
    user, nice, system, _idle, _iowait, irq, softirq, _steal = values
    return (user + nice + system + irq + softirq) / _TICKS


@dataclass(frozen=True)
class Snapshot:
    at: float
    groups: dict[str, float | None]
    processes: dict[int, ProcessTime]
    machine: float | None


def snapshot(groups: Mapping[str, Sequence[int]]) -> Snapshot:
    """CPU seconds so far of each group of pids (None if any pid is unreadable)."""
    processes = all_processes()
    totals: dict[str, float | None] = {}
    for name, pids in groups.items():
        seconds = [processes[pid].seconds if pid in processes else None for pid in pids]
        totals[name] = None if not pids or None in seconds else sum(s or 0.0 for s in seconds)
    return Snapshot(time.monotonic(), totals, processes, machine_busy_seconds())


@dataclass(frozen=True)
class Usage:
    cores: dict[str, float | None]
    """Average cores used per group over the window."""
    machine_cores: float | None
    """Average busy cores of the whole machine over the window."""
    kernel_cores: float
    """Kernel threads (children of kthreadd)."""
    foreign_cores: float
    """Processes that are neither ours nor kernel threads (short-lived ones are missed)."""
    foreign_top: list[tuple[str, float]]
    """The busiest foreign processes (command line), in cores."""


def _ours(processes: Mapping[int, ProcessTime], roots: set[int]) -> set[int]:
    """``roots`` and all their descendants."""
    ours = set(roots)
    grew = True
    while grew:
        before = len(ours)
        ours |= {pid for pid, p in processes.items() if p.ppid in ours}
        grew = len(ours) > before
    return ours


def usage(before: Snapshot, after: Snapshot, ours: set[int] | None = None) -> Usage:
    """What each group, the kernel, foreign processes and the machine used in between.
    ``ours``: pids (with their descendants) that are not foreign; by default this process."""
    elapsed = max(after.at - before.at, 1e-9)
    cores: dict[str, float | None] = {}
    for name, start in before.groups.items():
        end = after.groups.get(name)
        cores[name] = None if start is None or end is None else (end - start) / elapsed
    machine = (
        None
        if before.machine is None or after.machine is None
        else (after.machine - before.machine) / elapsed
    )
    mine = _ours(after.processes, ours if ours is not None else {os.getpid()})
    kernel = 0.0
    foreign: dict[int, float] = defaultdict(float)
    for pid, proc in after.processes.items():
        if pid in mine:
            continue
        earlier = before.processes.get(pid)
        spent = proc.seconds - (
            earlier.seconds if earlier and earlier.started == proc.started else 0.0
        )
        if _KTHREADD in (pid, proc.ppid):
            kernel += spent
        else:
            foreign[pid] += spent
    return Usage(
        cores,
        machine,
        kernel / elapsed,
        sum(foreign.values()) / elapsed,
        [
            (command_line(pid) or after.processes[pid].name, s / elapsed)
            for pid, s in sorted(foreign.items(), key=lambda x: -x[1])[:3]
            if s / elapsed >= 0.01
        ],
    )


def tree_cores(before: Snapshot, after: Snapshot, roots: Iterable[int]) -> float | None:
    """Average cores used between two snapshots by ``roots`` and all their descendants alive
    at the end (e.g. PostgreSQL's backends under its postmaster; a descendant that ended in
    between is missed). None if no root is the same process in both snapshots."""
    alive = {
        pid
        for pid in roots
        if pid in before.processes
        and pid in after.processes
        and before.processes[pid].started == after.processes[pid].started
    }
    if not alive:
        return None
    spent = 0.0
    for pid in _ours(after.processes, alive):
        proc = after.processes[pid]
        earlier = before.processes.get(pid)
        spent += proc.seconds - (
            earlier.seconds if earlier and earlier.started == proc.started else 0.0
        )
    return spent / max(after.at - before.at, 1e-9)
