"""Sizing one host (docs/scaling.md): what an idle agent, a turn and the daemon cost.

Real processes in a temp dir, the local backend, the real claude CLI against the API
stand-in (from tests/):

- idle harness: ``--harnesses`` real ``hive-ag3nt serve`` processes, each after one
  trivial turn, settled: RSS and PSS of each (PSS splits the pages they share, so it is
  what one more agent costs once several run);
- one turn: a harness plus the claude process tree it starts, sampled every 10 ms: the
  peak of the summed RSS and of the summed PSS, the sum of each process's own high-water
  mark (VmHWM, an upper bound), and the CPU seconds of the harness and its reaped
  children. Four kinds: one model step that "thinks" (the stand-in holds the stream open
  for ``--hang`` s); a working turn of ``--tools`` steps running a small Bash command; a
  heavy turn of ``--heavy-tools`` steps each putting ~34 KB of output into the context;
  and one thinking turn on each of the ``--harnesses`` agents at once;
- daemon CPU: ``--rate`` messages/s sent through the sockets of 50 agents for ``--seconds``
  s, each popped by a parked recv and acked: the daemon's CPU seconds over that window;
- daemon memory with N agents registered (sockets only, no harness), and with one parked
  recv connection per agent (what an idle harness holds open);
- on the nspawn backend (root and systemd-nspawn; skipped otherwise): the container's own
  process (systemd-nspawn) beside the harness it runs.

    HYPERHIVE_TEST_CLAUDE=<path to claude> python bench/sizing.py [--turns 5]
        [--parts harness nspawn daemon] [--rate 1000] [--seconds 10]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchlib import Conn, agent_names
from harness.support import HarnessProcess, spawn_quiet
from hivetest import DaemonProcess, call, running_hive
from hyperhive.agents.names import container_name, validate_name
from hyperhive.settings import BackendKind
from standin.api import Hang, StandIn, Step, Text, ToolCall

MIB = 1024.0  # the /proc figures are KiB
PARTS = ("harness", "nspawn", "daemon")


# -- reading /proc --------------------------------------------------------------------------


def status_kib(pid: int, field: str) -> int:
    """A KiB field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size (/proc/<pid>/smaps_rollup); 0 once the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (field 3 onwards), [] once gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return []


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process; with `children`, plus its reaped children's."""
    fields = stat_fields(pid)
    if not fields:
        return 0.0
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14]) if children else 0
    return (own + reaped) / TICK


def descendants(root: int) -> list[int]:
    """`root` and every process below it (one scan of /proc)."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))):
            parent[int(entry.name)] = int(fields[1])
    found = [root]
    for pid in found:
        found += [child for child, ppid in parent.items() if ppid == pid]
    return found


def cmdline(pid: int) -> bytes:
    """The NUL-separated command line, b"" once the process is gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def command(pid: int) -> str:
    """The program's file name, "?" once the process is gone."""
    if argv := cmdline(pid):
        return Path(argv.split(b"\0")[0].decode(errors="replace")).name
    return "?"


# -- harness and turn ---------------------------------------------------------------------


@dataclass
class TurnSample:
    rss_peak: int  # KiB, the largest sum of VmRSS over the tree at one instant
    pss_peak: int  # KiB, the same for PSS
    hwm_sum: int  # KiB, each process's own VmHWM, summed (an upper bound)
    processes: int  # how many distinct processes the turn's tree had
    cpu: float  # s, the harness and its reaped children, whole turn
    wall: float  # s, send -> turn_end
    claude_hwm: int  # KiB, the largest VmHWM of a process that is not the harness
    commands: frozenset[str]  # the programs in the turn's tree


def ends(agent: HarnessProcess) -> list[dict[str, Any]]:
    """The agent's turn_end events so far ([] while its events db is being created)."""
    try:
        return agent.turn_ends()
    except sqlite3.OperationalError:
        return []


async def wait_turns(agent: HarnessProcess, count: int, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while len(ends(agent)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{agent.name}: turn {count} did not end")
        await asyncio.sleep(0.05)


SMALL_COMMAND = "ls -la /usr/bin | sort | tail -n 3"
# About 34 KB of output per step: the context claude holds grows by that much each step.
LARGE_COMMAND = "seq {i} 7000 | tr '\\n' ' '"


def working_steps(tools: int, command: str) -> list[Step]:
    """A turn of `tools` model steps that each run a shell command, then an answer."""
    calls = (ToolCall("Bash", {"command": command.format(i=i)}) for i in range(tools))
    return [*calls, Text("done")]


async def turns_at_once(
    daemon: DaemonProcess, agents: list[HarnessProcess], standin: StandIn, steps: list[Step]
) -> TurnSample:
    """One turn of each of `agents`, all at once; the trees of all of them sampled together."""
    pids = []
    for agent in agents:
        assert agent.proc is not None
        pids.append(agent.proc.pid)
    done = [len(ends(agent)) for agent in agents]
    for agent in agents:
        standin.script(agent.key, *steps)
    cpu_before = sum(cpu_seconds(pid, children=True) for pid in pids)
    start = time.monotonic()
    for agent in agents:
        await call(daemon.host_socket, "send", to=agent.name, body="measure me")
    rss_peak = pss_peak = 0
    hwm: dict[int, int] = {}
    commands: set[str] = set()
    deadline = start + 120
    while any(len(ends(a)) <= d for a, d in zip(agents, done, strict=True)):
        if time.monotonic() > deadline:
            raise TimeoutError("the measured turns did not end")
        tree = [p for pid in pids for p in descendants(pid)]
        rss_peak = max(rss_peak, sum(status_kib(p, "VmRSS") for p in tree))
        pss_peak = max(pss_peak, sum(pss_kib(p) for p in tree))
        for p in tree:
            if p not in hwm and (name := command(p)) != "?":
                commands.add(name)
            hwm[p] = max(hwm.get(p, 0), status_kib(p, "VmHWM"))
        await asyncio.sleep(0.01)
    wall = time.monotonic() - start
    for agent in agents:
        if not ends(agent)[-1]["ok"]:
            raise RuntimeError(f"a measured turn failed: {ends(agent)[-1]}")
    await asyncio.sleep(0.5)  # let the harnesses reap claude, so its CPU is counted
    cpu = sum(cpu_seconds(pid, children=True) for pid in pids) - cpu_before
    others = [v for p, v in hwm.items() if p not in pids]
    return TurnSample(
        rss_peak,
        pss_peak,
        sum(hwm.values()),
        len(hwm),
        cpu,
        wall,
        max(others, default=0),
        frozenset(commands),
    )


def report(title: str, samples: list[TurnSample]) -> None:
    print(title)

    def line(label: str, values: list[float], unit: str, scale: float = 1.0) -> None:
        got = [v / scale for v in values]
        print(
            f"  {label}: median {statistics.median(got):7.1f} {unit}"
            f"   min {min(got):7.1f}   max {max(got):7.1f}"
        )

    line("peak RSS, summed at one instant", [s.rss_peak for s in samples], "MiB", MIB)
    line("peak PSS, summed at one instant", [s.pss_peak for s in samples], "MiB", MIB)
    line("sum of each process's VmHWM    ", [s.hwm_sum for s in samples], "MiB", MIB)
    line("largest claude-side VmHWM      ", [s.claude_hwm for s in samples], "MiB", MIB)
    line("CPU, harnesses + their children", [s.cpu for s in samples], "s  ")
    line("wall, send -> last turn_end    ", [s.wall for s in samples], "s  ")
    programs = sorted(set().union(*(s.commands for s in samples)))
    processes = sorted({s.processes for s in samples})
    print(f"  processes in the trees: {processes} ({', '.join(programs)})")


async def harnesses(
    root: Path, claude_bin: Path, standin: StandIn, args: argparse.Namespace
) -> None:
    daemon = DaemonProcess(root)
    daemon.start()
    agents: list[HarnessProcess] = []
    try:
        for name in agent_names(args.harnesses, "h"):
            await spawn_quiet(daemon.host_socket, daemon.socket_of(name), name)
            agent = HarnessProcess(daemon, name, standin, claude_bin)
            standin.script(agent.key, Text("warm-up"))
            agent.start()
            agents.append(agent)
            await call(daemon.host_socket, "send", to=name, body="warm up")
        for agent in agents:
            await wait_turns(agent, 1)
        await asyncio.sleep(2.0)  # settle: the warm-up turns' buffers go
        print(f"idle harness (hive-ag3nt serve after one turn), {len(agents)} running at once:")
        for agent in agents:
            assert agent.proc is not None
            rss, pss = status_kib(agent.proc.pid, "VmRSS"), pss_kib(agent.proc.pid)
            procs = len(descendants(agent.proc.pid))
            print(
                f"  {agent.name}: RSS {rss / MIB:5.1f} MiB   PSS {pss / MIB:5.1f} MiB"
                f"   processes in its tree: {procs}"
            )
        thinking: list[Step] = [Hang(max_seconds=args.hang)]
        working = working_steps(args.tools, SMALL_COMMAND)
        heavy = working_steps(args.heavy_tools, LARGE_COMMAND)
        one = agents[:1]
        samples = [await turns_at_once(daemon, one, standin, thinking) for _ in range(args.turns)]
        report(
            f"one turn, harness + claude tree ({args.turns} turns; one model step that thinks"
            f" {args.hang:.0f} s):",
            samples,
        )
        samples = [await turns_at_once(daemon, one, standin, working) for _ in range(args.turns)]
        report(
            f"one working turn ({args.turns} turns; {args.tools} model steps each running a"
            " Bash command, then the answer):",
            samples,
        )
        samples = [await turns_at_once(daemon, one, standin, heavy) for _ in range(args.turns)]
        report(
            f"one heavy turn ({args.turns} turns; {args.heavy_tools} model steps each reading"
            " ~34 KB of Bash output into the context, then the answer):",
            samples,
        )
        samples = [
            await turns_at_once(daemon, agents, standin, thinking) for _ in range(args.turns)
        ]
        report(
            f"{len(agents)} turns at once ({len(agents)} harnesses, each one step thinking"
            f" {args.hang:.0f} s; sums over all {len(agents)} trees):",
            samples,
        )
        assert agents[0].proc is not None
        after = status_kib(agents[0].proc.pid, "VmRSS")
        print(f"harness RSS after {4 * args.turns + 1} turns: {after / MIB:.1f} MiB")
    finally:
        for agent in agents:
            agent.stop()
        daemon.stop()


# -- the daemon -----------------------------------------------------------------------------


async def park_all(sockets: list[Path]) -> list[Conn]:
    """One connection per agent with a recv parked on it (what an idle harness holds)."""
    conns = [await Conn.open(s) for s in sockets]
    for c in conns:
        c.writer.write(b'{"cmd": "recv", "wait_seconds": 170}\n')
        await c.writer.drain()
    await asyncio.sleep(1.0)
    return conns


async def daemon_memory(daemon: DaemonProcess, counts: list[int]) -> list[str]:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    names = agent_names(max(counts), "a")
    rows = []
    spawned = 0
    for n in sorted(counts):
        for name in names[spawned:n]:
            await spawn_quiet(daemon.host_socket, daemon.socket_of(name), name)
        spawned = n
        await asyncio.sleep(1.0)
        registered = (status_kib(pid, "VmRSS"), pss_kib(pid))
        conns = await park_all([daemon.socket_of(name) for name in names[:n]])
        parked = (status_kib(pid, "VmRSS"), pss_kib(pid))
        for c in conns:
            c.close()
        rows.append(
            f"  {n:4d} agents: RSS {registered[0] / MIB:5.1f} MiB (PSS {registered[1] / MIB:5.1f})"
            f"   with a parked recv each: RSS {parked[0] / MIB:5.1f} MiB"
            f" (PSS {parked[1] / MIB:5.1f})"
        )
    return rows


async def load(daemon: DaemonProcess, names: list[str], rate: float, seconds: float) -> None:
    """`rate` msg/s in total for `seconds`, each sent, popped by a parked recv and acked."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    per_agent = rate / len(names)
    sent = received = 0
    errors: list[str] = []
    stop = asyncio.Event()

    async def sender(i: int, conn: Conn) -> None:
        nonlocal sent
        to = names[(i + 1) % len(names)]
        start = time.monotonic() + i / rate  # spread the senders over one period
        k = 0
        while not stop.is_set():
            delay = start + k / per_agent - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            reply = await conn.call({"cmd": "send", "to": to, "body": f"m{k}"})
            if reply["kind"] != "ok":
                errors.append(str(reply))
            sent += 1
            k += 1

    async def receiver(conn: Conn) -> None:
        nonlocal received
        while not stop.is_set():
            reply = await conn.call({"cmd": "recv", "wait_seconds": 1, "max": 32})
            if reply["kind"] == "messages":
                items = reply["items"]
                assert isinstance(items, list)
                received += len(items)
                await conn.call({"cmd": "ack", "ids": [m["id"] for m in items]})

    senders = [await Conn.open(daemon.socket_of(n)) for n in names]
    receivers = [await Conn.open(daemon.socket_of(n)) for n in names]
    tasks = [asyncio.create_task(sender(i, c)) for i, c in enumerate(senders)]
    tasks += [asyncio.create_task(receiver(c)) for c in receivers]
    await asyncio.sleep(2.0)  # warm up
    sent0, received0 = sent, received
    cpu0, mine0, t0 = cpu_seconds(pid), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = cpu_seconds(pid) - cpu0
    mine = time.process_time() - mine0
    elapsed = time.monotonic() - t0
    got_sent, got_received = sent - sent0, received - received0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in senders + receivers:
        c.close()
    achieved = got_sent / elapsed
    print(
        f"daemon under load: {len(names)} agents, target {rate:,.0f} msg/s for {elapsed:.1f} s"
        f" (send + parked recv + ack through the sockets):"
    )
    print(
        f"  sent {got_sent:,} ({achieved:,.0f}/s), received {got_received:,}"
        f" ({got_received / elapsed:,.0f}/s), errors {len(errors)}"
    )
    print(
        f"  daemon CPU {cpu:.2f} s in {elapsed:.1f} s = {cpu / elapsed:.0%} of one core;"
        f" {cpu / elapsed / achieved * 1000:.2f} CPU-s per s per 1,000 msg/s"
        f" ({cpu / got_sent * 1e6:.0f} µs per message)"
    )
    print(f"  (this client's own CPU: {mine / elapsed:.0%} of one core)")
    print(f"  daemon RSS after the load: {status_kib(pid, 'VmRSS') / MIB:.1f} MiB")
    if errors:
        print(f"  first error: {errors[0]}")


async def daemon_part(root: Path, counts: list[int], rates: list[float], seconds: float) -> None:
    daemon = DaemonProcess(root)
    daemon.start()
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        await asyncio.sleep(1.0)
        print(
            f"hive-c0re serve (with its dashboard), no agent but the manager: RSS"
            f" {status_kib(pid, 'VmRSS') / MIB:.1f} MiB (PSS {pss_kib(pid) / MIB:.1f})"
        )
        print("daemon memory with N agents registered (sockets only, no harnesses):")
        for row in await daemon_memory(daemon, counts):
            print(row)
        names = agent_names(max(counts), "a")[:50]
        for rate in rates:
            await load(daemon, names, rate, seconds)
    finally:
        daemon.stop()


async def nspawn_part(root: Path) -> None:
    """What an agent's container adds on the nspawn backend: the systemd-nspawn process."""
    if shutil.which("systemd-nspawn") is None or os.geteuid() != 0:
        print("nspawn container: not measured (needs root and systemd-nspawn)")
        return
    saved = {k: os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "HYPERHIVE_CLAUDE_BIN")}
    os.environ.update(ANTHROPIC_API_KEY="bench-not-a-key", HYPERHIVE_CLAUDE_BIN="/bin/true")
    try:
        settings = {"backend": BackendKind.NSPAWN, "crash_watch_seconds": 3600}
        async with running_hive(root, **settings) as hive:
            await hive.lifecycle.spawn("sizing")
            machine = f"--machine={container_name(validate_name('sizing'))}"
            deadline = time.monotonic() + 30
            while not any(
                r.sender == "system" and r.delivered for r in hive.broker.recent("sizing", 10)
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("the nspawn agent did not come online")
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            nspawn = [
                int(e.name)
                for e in os.scandir("/proc")
                if e.name.isdigit() and machine.encode() in cmdline(int(e.name))
            ]
            print("nspawn container of one idle agent (harness inside, claude = /bin/true):")
            for pid in nspawn:
                for p in descendants(pid):
                    print(
                        f"  {command(p):16s} RSS {status_kib(p, 'VmRSS') / MIB:5.1f} MiB"
                        f"   PSS {pss_kib(p) / MIB:5.1f} MiB"
                    )
            await hive.lifecycle.destroy("sizing", purge=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def bench(args: argparse.Namespace, claude_bin: Path, standin: StandIn, root: Path) -> None:
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    if "harness" in args.parts:
        await harnesses(root / "harness", claude_bin, standin, args)
    if "nspawn" in args.parts:
        await nspawn_part(root / "nspawn")
    if "daemon" in args.parts:
        counts = sorted({*args.agents, 50})
        await daemon_part(root / "daemon", counts, args.rate, args.seconds)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--harnesses", type=int, default=3, help="idle harnesses at once")
    parser.add_argument("--turns", type=int, default=5, help="measured turns")
    parser.add_argument("--hang", type=float, default=3.0, help="seconds the model thinks")
    parser.add_argument("--tools", type=int, default=5, help="tool steps of a working turn")
    parser.add_argument("--heavy-tools", type=int, default=30, help="steps of a heavy turn")
    parser.add_argument(
        "--agents", type=int, nargs="+", default=[0, 10, 50, 100, 200], help="N for daemon RSS"
    )
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[1000.0], help="msg/s for the CPU measure"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure (default: all)",
    )
    args = parser.parse_args()
    found = os.environ.get("HYPERHIVE_TEST_CLAUDE") or shutil.which("claude")
    if not found:
        sys.exit("claude CLI not found: set HYPERHIVE_TEST_CLAUDE or put claude on PATH")
    with StandIn() as standin, tempfile.TemporaryDirectory(prefix="hh-sizing-") as tmp:
        asyncio.run(bench(args, Path(found), standin, Path(tmp)))


if __name__ == "__main__":
    main()
