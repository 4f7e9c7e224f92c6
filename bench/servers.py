"""Servers under test as subprocesses: start pinned, wait for health, read /proc, stop by PID.

Every process the benchmarks start goes through `Server`, so each is pinned to one
core from its first instruction (`sched_setaffinity` in the child before exec),
bound to 127.0.0.1, timed from `Popen` to its first successful health check, and
stopped by its own PID (SIGTERM, then SIGKILL after a grace period). CPU time and
resident memory are read from /proc and summed over the process tree, so a server
that forks workers (LiteLLM) is charged for all of them.
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> tuple[int | None, int | None]:
    """(server core, load core): the first two CPUs we may run on, or no pinning."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def pinned(core: int | None):  # type: ignore[no-untyped-def]
    """A preexec_fn that pins the child before it runs anything."""
    if core is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (through /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree (all threads), in seconds."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident memory of the process tree, MiB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def core_times(core: int | None) -> tuple[float, float]:
    """(busy, total) jiffies of one CPU (or all) from /proc/stat."""
    name = "cpu" if core is None else f"cpu{core}"
    with open("/proc/stat") as fh:
        for line in fh:
            parts = line.split()
            if parts[0] == name:
                values = [int(v) for v in parts[1:8]]
                idle = values[3] + values[4]
                return sum(values) - idle, sum(values)
    return 0.0, 0.0


PYCACHE = Path(tempfile.gettempdir()) / "agentctl-bench-pycache"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every benchmark child: bytecode cached as on an installed system.

    With PYTHONDONTWRITEBYTECODE (set on some hosts) a process recompiles every module
    whose .pyc is stale at each start, which no installed gateway does; a private
    PYTHONPYCACHEPREFIX keeps the source tree untouched.
    """
    env = {**os.environ, **(extra or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def warm_bytecode() -> None:
    """Compile (into PYCACHE) every module a benchmark server imports, before timing starts."""
    modules = "agentctl.cli, agentctl.gateway.server, agentctl.simulator, aiohttp, uvloop"
    subprocess.run(
        [sys.executable, "-c", f"import {modules}"],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )


def foreign_busy(core: int | None, seconds: float = 0.5) -> float:
    """Share of `core` busy over `seconds` while our servers are idle: someone else's load."""
    busy0, total0 = core_times(core)
    time.sleep(seconds)
    busy1, total1 = core_times(core)
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_quiet(core: int | None, threshold: float, max_wait: float) -> float:
    """Wait (at most `max_wait` s) until `core` is below `threshold` busy; return the last share."""
    deadline = time.monotonic() + max_wait
    share = foreign_busy(core)
    while share > threshold and time.monotonic() < deadline:
        share = foreign_busy(core)
    return share


def healthy(port: int, path: str, timeout: float = 0.5) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    health: str
    log: Path
    core: int | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "wb")  # noqa: SIM115 - the child owns it until stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(self.env),
            cwd=ROOT,
            preexec_fn=pinned(self.core),
        )
        fh.close()
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            if healthy(self.port, self.health, timeout=1.0):
                self.startup_s = time.perf_counter() - self.started
                return self
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy after {timeout}s:\n{self.output()}")

    def output(self, limit: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return rss_mb(self.pid)

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def simulator(port: int, latency_ms: float, log: Path, core: int | None) -> Server:
    cmd = [sys.executable, "-m", "agentctl.simulator", "--port", str(port)]
    cmd += ["--latency-ms", str(latency_ms)]
    return Server(f"simulator-{latency_ms:g}ms", cmd, port, "/_sim/stats", log, core)


def machine() -> dict[str, str]:
    model = "?"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"model name\s*:\s*(.+)", text)
        model = found.group(1).strip() if found else platform.machine()
    except OSError:
        pass
    import aiohttp

    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        wrk_version = (wrk.stdout or wrk.stderr).split("[")[0].strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        wrk_version = "not installed"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "agentctl"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.splitlines()
        if dirty:
            head += f" + {len(dirty)} uncommitted file(s) under agentctl/"
    except OSError:
        head = "?"
    return {
        "cpu": f"{model} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": wrk_version,
        "git": head or "?",
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
