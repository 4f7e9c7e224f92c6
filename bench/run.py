"""The benchmark: direct vs the bare floor vs agentctl (vs LiteLLM), in one run.

    python bench/run.py [--quick] [--write] [--config agentctl.yaml]

For each upstream latency (0 ms, 50 ms) one simulator serves as the upstream, pinned
to the *load core* beside the load generator. Each server under test runs alone on the
*server core*: `direct` (a second simulator, the upstream itself), `floor`
(bench/floor_proxy.py), `agentctl` (`agentctl serve` with full governance: the
identity header on every request, bench/policy.yaml applied to its store first and
bench/agentctl.yaml as its config, so every policy check, reservation and trust
detector runs without ever refusing, audit on; `--policy` and `--config` pick other
files) and `litellm` (only when bench/.venv-litellm exists). Each request carries its
own prompt and the traffic rotates through 16 agents (see bench/load.py). Every server
is started fresh, timed to its first healthy answer, then driven with JSON and SSE
chat completions at each concurrency: a warm-up, then a bounded measured run (wrk when
installed, else bench/load.py). CPU per request is the server's utime+stime delta over
the window divided by the requests served; the TTFB of streams comes from
bench/load.py (wrk cannot see it) at concurrency 32.

Numbers are only comparable within one run: everything shares a machine, and the
"other %" column shows CPU that something else used on the server core meanwhile.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import load
import wrk
from results import fmt, header, plain, signed, table, write_section
from servers import (
    BENCH,
    CLK_TCK,
    ROOT,
    Server,
    child_env,
    core_times,
    cores,
    free_port,
    pinned,
    simulator,
    wait_quiet,
    warm_bytecode,
)

TARGETS = ("direct", "floor", "agentctl", "litellm")
EXTRA_TARGETS = ("floor-uvloop",)  # only when asked for: what uvloop buys the floor
KINDS = ("json", "sse")
LITELLM_VENV = BENCH / ".venv-litellm"
DEFAULT_POLICY = BENCH / "policy.yaml"
DEFAULT_CONFIG = BENCH / "agentctl.yaml"
CHAT = "/v1/chat/completions"
SETTLE_S = 0.4  # lets batched audit writes land inside the measured CPU window
QUIET = 0.10  # a window starts once other processes use less than this of the server core
CLEAN = 10.0  # other % above this makes a cell's req/s and latency unreliable
SLOW_WARMUP_S, SLOW_WINDOW_S = 3.0, 10.0  # LiteLLM


@dataclass
class Cell:
    latency: int
    kind: str
    concurrency: int
    target: str
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    non_2xx: int
    errors: int
    cpu_us: float | None
    server_pct: float
    other_pct: float
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None


@dataclass
class Instance:
    target: str
    latency: int
    startup_s: float | None
    rss_idle_mb: float
    rss_after_mb: float = 0.0


@dataclass
class Run:
    cells: list[Cell] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def cell(self, latency: int, kind: str, c: int, target: str) -> Cell | None:
        for cell in self.cells:
            if (cell.latency, cell.kind, cell.concurrency, cell.target) == (
                latency,
                kind,
                c,
                target,
            ):
                return cell
        return None


def litellm_config(upstream: str, path: Path) -> Path:
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-bench-upstream\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    return path


def apply_policy(policy: Path, env: dict[str, str], timeout: float = 120) -> None:
    """`agentctl policy apply` into the gateway's store, before the gateway starts."""
    cmd = [sys.executable, "-m", "agentctl", "policy", "apply", str(policy)]
    cmd += ["--actor", "bench", "--reason", "bench/run.py"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=child_env(env), cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"policy apply failed:\n{done.stdout}\n{done.stderr}")


def floor_command(upstream: str, port: int, *, uvloop: bool) -> list[str]:
    floor = str(BENCH / "floor_proxy.py")
    return [sys.executable, floor, "--upstream", upstream, "--port", str(port)] + (
        ["--uvloop"] if uvloop else []
    )


def agentctl_command(
    upstream: str, port: int, config: str | None, policy: Path | None, home: Path
) -> tuple[list[str], dict[str, str]]:
    """`agentctl serve` with full governance as every benchmark runs it: command and
    environment, with `policy` applied to its store (in `home`) first."""
    cmd = [sys.executable, "-m", "agentctl", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--upstream", upstream + "/v1"]
    env = {
        "AGENTCTL_HOME": str(home),
        "OPENAI_API_KEY": "sk-bench-upstream",
        "AGENTCTL_LOG_LEVEL": "warning",
    }
    if config:
        cmd += ["--config", str(Path(config).resolve())]
        env["AGENTCTL_CONFIG"] = str(Path(config).resolve())
    if policy:
        apply_policy(policy, env)
    return cmd, env


def make_server(
    target: str,
    upstream: str,
    latency: int,
    args: argparse.Namespace,
    workdir: Path,
    core: int | None,
) -> Server:
    port = free_port()
    log = workdir / f"{target}-{latency}ms.log"
    if target == "direct":
        server = simulator(port, latency, log, core)
        server.name = "direct"
        return server
    if target in ("floor", "floor-uvloop"):
        cmd = floor_command(upstream, port, uvloop=target == "floor-uvloop")
        return Server(target, cmd, port, "/healthz", log, core)
    if target == "agentctl":
        home = workdir / f"agentctl-{latency}ms"
        cmd, env = agentctl_command(upstream, port, args.config, args.policy, home)
        return Server("agentctl", cmd, port, "/healthz", log, core, env)
    config = litellm_config(upstream, workdir / f"litellm-{latency}ms.yaml")
    cmd = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch at start
        "LITELLM_LOG": "ERROR",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",  # loopback only
    }
    return Server("litellm", cmd, port, "/health/liveliness", log, core, env)


def drive(
    url: str, stream: bool, c: int, seconds: float, args: argparse.Namespace, load_core: int | None
) -> dict[str, Any]:
    if args.loader == "wrk":
        return wrk.run(
            url,
            template=load.chat_template(stream),
            headers_list=load.rotating_headers(),
            concurrency=c,
            duration=seconds,
            core=load_core,
            workdir=args.workdir,
        )
    return python_load(url, stream, c, seconds, load_core)


def python_load(
    url: str, stream: bool, c: int, seconds: float, load_core: int | None
) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "load.py"), url, "-c", str(c), "-d", str(seconds)]
    if stream:
        cmd.append("--stream")
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=pinned(load_core)
    )
    if done.returncode != 0:
        raise RuntimeError(f"load.py failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def preflight(server: Server) -> None:
    """One request of each kind must succeed, or the run would measure refusals."""
    for stream in (False, True):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            headers = load.default_headers(load.identity(0))
            conn.request("POST", CHAT, body=load.chat_body(stream, 0), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(
                f"{server.name} answered {resp.status} to a benchmark request: "
                f"{body[:300].decode(errors='replace')}"
            )


def refused_share(cell: Cell | None) -> float:
    if cell is None or not cell.requests:
        return 0.0
    return (cell.non_2xx + cell.errors) / cell.requests


def measure(
    server: Server,
    latency: int,
    kind: str,
    c: int,
    args: argparse.Namespace,
    server_core: int | None,
    load_core: int | None,
) -> Cell:
    url = server.url + CHAT
    stream = kind == "sse"
    slow = server.name == "litellm"  # seconds per request: short windows see nothing
    warmup = max(args.warmup, SLOW_WARMUP_S) if slow else args.warmup
    duration = max(args.duration, SLOW_WINDOW_S) if slow else args.duration
    drive(url, stream, c, warmup, args, load_core)
    samples = []
    for _ in range(args.repeat):
        time.sleep(SETTLE_S)
        if server_core is not None and args.quiet_wait:
            wait_quiet(server_core, QUIET, args.quiet_wait)
        cpu0, (busy0, _) = server.cpu(), core_times(server_core)
        t0 = time.perf_counter()
        res = drive(url, stream, c, duration, args, load_core)
        time.sleep(SETTLE_S)
        wall = time.perf_counter() - t0
        cpu1, (busy1, _) = server.cpu(), core_times(server_core)
        used = cpu1 - cpu0
        busy = (busy1 - busy0) / CLK_TCK
        samples.append((res, used, wall, busy))
    # The window least disturbed by other processes on the server core.
    res, used, wall, busy = min(samples, key=lambda s: s[3] - s[1])
    requests = int(res["requests"])
    cell = Cell(
        latency=latency,
        kind=kind,
        concurrency=c,
        target=server.name,
        rps=float(res["rps"]),
        p50_ms=res.get("p50_ms"),
        p99_ms=res.get("p99_ms"),
        requests=requests,
        non_2xx=int(res.get("non_2xx", 0)),
        errors=int(res.get("errors", 0)),
        cpu_us=used / requests * 1e6 if requests else None,
        server_pct=100 * used / wall,
        other_pct=max(100 * (busy - used) / wall, 0.0) if server_core is not None else 0.0,
        ttfb_p50_ms=res.get("ttfb_p50_ms"),
        ttfb_p99_ms=res.get("ttfb_p99_ms"),
    )
    if stream and c == 32 and args.loader == "wrk":
        ttfb = python_load(url, True, c, args.ttfb_duration, load_core)
        cell.ttfb_p50_ms, cell.ttfb_p99_ms = ttfb["ttfb_p50_ms"], ttfb["ttfb_p99_ms"]
    return cell


def bench(args: argparse.Namespace) -> Run:
    server_core, load_core = cores()
    warm_bytecode()
    run = Run()
    targets = [t for t in args.targets if t != "litellm" or LITELLM_VENV.exists()]
    if "litellm" in args.targets and "litellm" not in targets:
        run.skipped["litellm"] = (
            "not installed: python3 -m venv bench/.venv-litellm && "
            "bench/.venv-litellm/bin/pip install 'litellm[proxy]'"
        )
    for latency in args.latencies:
        up = simulator(free_port(), latency, args.workdir / f"upstream-{latency}ms.log", load_core)
        up.start()
        try:
            for target in targets:
                if target == "litellm" and latency != min(args.latencies):
                    continue  # its ratio target is a throughput one; one latency is enough
                server = make_server(target, up.url, latency, args, args.workdir, server_core)
                log(f"[{latency} ms] starting {target}")
                server.start(timeout=120)
                try:
                    preflight(server)
                    time.sleep(0.5)
                    inst = Instance(target, latency, server.startup_s, server.rss())
                    for kind in KINDS:
                        for c in args.concurrency:
                            cell = measure(server, latency, kind, c, args, server_core, load_core)
                            run.cells.append(cell)
                            log(
                                f"  {kind:4} c={c:<3} {cell.rps:9.1f} req/s  p50 "
                                f"{fmt(cell.p50_ms, 2)} ms  p99 {fmt(cell.p99_ms, 2)} ms  "
                                f"cpu {fmt(cell.cpu_us, 0)} us/req  "
                                f"errors {cell.errors + cell.non_2xx}"
                            )
                    inst.rss_after_mb = server.rss()
                    run.instances.append(inst)
                finally:
                    server.stop()
        finally:
            up.stop()
    return run


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- report ---------------------------------------------------------------------


def delta(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def ratio(a: Cell | None, b: Cell | None) -> float | None:
    return a.rps / b.rps if a is not None and b is not None and b.rps else None


def cpu_ratio(a: Cell | None, b: Cell | None) -> float | None:
    """Capacity of `a` over capacity of `b` on one core: b's CPU/request over a's."""
    if a is None or b is None or not a.cpu_us or not b.cpu_us:
        return None
    return b.cpu_us / a.cpu_us


def capacity_ratio(a: Cell | None, b: Cell | None) -> tuple[float | None, str]:
    """req/s ratio when both windows ran undisturbed, else the CPU-per-request ratio.

    Both servers are CPU-bound on their core at 0 ms upstream latency, so on a quiet
    machine req/s = 1 / (CPU s per request); the CPU ratio survives other processes
    stealing the core, the req/s ratio does not.
    """
    if a is not None and b is not None and max(a.other_pct, b.other_pct) <= CLEAN:
        return ratio(a, b), "req/s"
    return cpu_ratio(a, b), "CPU/req"


CELL_HEADERS = (
    "upstream",
    "kind",
    "c",
    "server",
    "req/s",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "+p99 ms",
    "TTFB p50 ms",
    "+TTFB ms",
    "CPU µs/req",
    "req/s per core",
    "server CPU %",
    "other %",
    "errors",
)


def cell_rows(run: Run) -> list[list[str]]:
    rows = []
    for cell in run.cells:
        direct = run.cell(cell.latency, cell.kind, cell.concurrency, "direct")
        is_direct = cell.target == "direct"
        rows.append(
            [
                f"{cell.latency} ms",
                cell.kind,
                str(cell.concurrency),
                cell.target,
                fmt(cell.rps, 0),
                fmt(cell.p50_ms, 2),
                fmt(cell.p99_ms, 2),
                "" if is_direct else signed(delta(cell.p50_ms, direct and direct.p50_ms)),
                "" if is_direct else signed(delta(cell.p99_ms, direct and direct.p99_ms)),
                fmt(cell.ttfb_p50_ms, 2),
                "" if is_direct else signed(delta(cell.ttfb_p50_ms, direct and direct.ttfb_p50_ms)),
                fmt(cell.cpu_us, 0),
                fmt(cell.cpu_us and 1e6 / cell.cpu_us, 0),
                fmt(cell.server_pct, 0),
                fmt(cell.other_pct, 0),
                str(cell.errors + cell.non_2xx),
            ]
        )
    return rows


def instance_rows(run: Run) -> list[list[str]]:
    return [
        [
            i.target,
            f"{i.latency} ms",
            fmt(i.startup_s, 2),
            fmt(i.rss_idle_mb, 1),
            fmt(i.rss_after_mb, 1),
        ]
        for i in run.instances
    ]


def ratio_rows(run: Run, latencies: list[int], conc: list[int]) -> list[list[str]]:
    rows = []
    for latency in latencies:
        for kind in KINDS:
            for c in conc:
                gw = run.cell(latency, kind, c, "agentctl")
                floor = run.cell(latency, kind, c, "floor")
                litellm = run.cell(latency, kind, c, "litellm")
                rows.append(
                    [
                        f"{latency} ms",
                        kind,
                        str(c),
                        fmt(ratio(gw, floor), 2),
                        fmt(cpu_ratio(gw, floor), 2),
                        fmt(ratio(gw, litellm), 1),
                        fmt(cpu_ratio(gw, litellm), 1),
                    ]
                )
    return rows


RATIO_HEADERS = (
    "upstream",
    "kind",
    "c",
    "agentctl/floor req/s",
    "agentctl/floor by CPU",
    "agentctl/LiteLLM req/s",
    "agentctl/LiteLLM by CPU",
)


def targets(run: Run) -> list[list[str]]:
    """The issue's targets, each as (target, required, measured, verdict)."""
    out: list[list[str]] = []

    def verdict(value: float | None, ok: bool, *cells: Cell | None) -> str:
        worst = max((refused_share(c) for c in cells), default=0.0)
        if worst > 0.01:
            return f"INVALID ({worst:.0%} of requests not 2xx)"
        return "n/a" if value is None else ("PASS" if ok else "FAIL")

    for kind, floor_share in (("json", 0.70), ("sse", 0.85)):
        conc = sorted({cell.concurrency for cell in run.cells})
        pairs = [(run.cell(0, kind, c, "agentctl"), run.cell(0, kind, c, "floor")) for c in conc]
        values = [capacity_ratio(a, b) for a, b in pairs]
        got, basis = min(((v, b) for v, b in values if v is not None), default=(None, ""))
        out.append(
            [
                f"{kind.upper()} throughput vs floor (0 ms, worst c)",
                f">= {floor_share:.0%}",
                f"{got:.0%} ({basis})" if got else "-",
                verdict(got, got is not None and got >= floor_share, *(a for a, _ in pairs)),
            ]
        )
    mine = [
        (run.cell(0, c.kind, c.concurrency, "agentctl"), c)
        for c in run.cells
        if c.target == "litellm" and c.latency == 0
    ]
    vs_litellm = [capacity_ratio(a, b) for a, b in mine]
    got, basis = min(((v, b) for v, b in vs_litellm if v is not None), default=(None, ""))
    out.append(
        [
            "throughput vs LiteLLM (0 ms, worst cell)",
            ">= 30x",
            f"{got:.1f}x ({basis})" if got else "-",
            verdict(got, got is not None and got >= 30, *(a for a, _ in mine)),
        ]
    )

    def disturbed(*cells: Cell | None) -> str:
        worst = max((c.other_pct for c in cells if c is not None), default=0.0)
        return f" (disturbed: other {worst:.0f}%)" if worst > CLEAN else ""

    for label, attr, limit in (("p50", "p50_ms", 1.0), ("p99", "p99_ms", 3.0)):
        values, cells = [], []
        for kind in KINDS:
            gw, direct = run.cell(50, kind, 32, "agentctl"), run.cell(50, kind, 32, "direct")
            if gw and direct:
                values.append(delta(getattr(gw, attr), getattr(direct, attr)))
                cells += [gw, direct]
        got = max((v for v in values if v is not None), default=None)
        out.append(
            [
                f"added {label} latency (50 ms, c=32, worst of JSON/SSE)",
                f"<= +{limit:g} ms",
                signed(got),
                verdict(got, got is not None and got <= limit, *cells) + disturbed(*cells),
            ]
        )
    gw, direct = run.cell(50, "sse", 32, "agentctl"), run.cell(50, "sse", 32, "direct")
    got = delta(gw and gw.ttfb_p50_ms, direct and direct.ttfb_p50_ms)
    out.append(
        [
            "time to first streamed byte vs direct (50 ms, c=32, p50)",
            "<= +2 ms",
            signed(got),
            verdict(got, got is not None and got <= 2, gw, direct) + disturbed(gw, direct),
        ]
    )
    mine = [i for i in run.instances if i.target == "agentctl"]
    startup = max((i.startup_s for i in mine if i.startup_s is not None), default=None)
    out.append(
        [
            "startup (process start to first healthy /healthz, worst)",
            "< 1 s",
            fmt(startup, 2) + " s" if startup else "-",
            verdict(startup, startup is not None and startup < 1),
        ]
    )
    rss = max((i.rss_idle_mb for i in mine), default=None)
    out.append(
        [
            "resident memory, idle (worst)",
            "< 80 MB",
            fmt(rss, 1) + " MB" if rss else "-",
            verdict(rss, rss is not None and rss < 80),
        ]
    )
    return out


def render(run: Run, args: argparse.Namespace, markdown: bool) -> str:
    tab = table if markdown else plain
    parts = [
        tab(CELL_HEADERS, cell_rows(run)),
        tab(
            ("server", "upstream", "startup s", "RSS idle MB", "RSS after load MB"),
            instance_rows(run),
        ),
        tab(RATIO_HEADERS, ratio_rows(run, args.latencies, args.concurrency)),
        tab(("target", "required", "measured", "verdict"), targets(run)),
    ]
    for name, why in run.skipped.items():
        parts.append(f"{name} skipped: {why}")
    return "\n\n".join(parts)


NOTES = """\
Server under test pinned to CPU {server}, upstream simulator and load generator to CPU
{load}. Load: {loader}, {duration:g} s per cell after a {warmup:g} s warm-up; each window
starts once the server core is idle (up to {quiet:g} s), best of {repeat} window(s). `+`
columns are against `direct` at the same upstream latency, kind and concurrency. TTFB
comes from bench/load.py at c=32 ({ttfb:g} s). CPU µs/req is the server process tree's
utime+stime over the window / requests; `req/s per core` = 1e6 / that, the throughput
of a CPU-bound server given a whole core. `other %` is CPU that processes outside this
benchmark used on the server core during the window: above {clean:g}% the cell's req/s
and latencies are disturbed, and throughput targets are judged by CPU per request.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short cells (about 2 minutes)")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG.relative_to(ROOT)),
        help="agentctl.yaml for the gateway ('none': its defaults, trust limits included)",
    )
    parser.add_argument(
        "--policy",
        default=str(DEFAULT_POLICY.relative_to(ROOT)),
        help="policy file applied to agentctl's store first ('none': no policy)",
    )
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--latencies", default="0,50", help="upstream latencies, ms")
    parser.add_argument("--concurrency", default="32,128")
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell")
    parser.add_argument(
        "--repeat", type=int, default=1, help="N windows per cell; keep the least disturbed"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=2.0,
        help="wait up to S s for the server core to be idle before each window (0: never)",
    )
    parser.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--json", help="also dump raw results to this file")
    args = parser.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - set(TARGETS) - set(EXTRA_TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {TARGETS + EXTRA_TARGETS}")
    args.config = None if args.config == "none" else args.config
    if args.config and not Path(args.config).exists():
        parser.error(f"--config {args.config} does not exist")
    args.policy = None if args.policy == "none" else Path(args.policy).resolve()
    if args.policy and not args.policy.exists():
        parser.error(f"--policy {args.policy} does not exist")
    args.latencies = [int(v) for v in args.latencies.split(",")]
    args.concurrency = [int(v) for v in args.concurrency.split(",")]
    args.duration = args.duration or (2.0 if args.quick else 4.0)
    args.warmup = 1.0
    args.ttfb_duration = 1.0 if args.quick else 3.0
    if args.loader == "auto":
        args.loader = "wrk" if wrk.available() else "python"
    args.workdir = Path(tempfile.mkdtemp(prefix="agentctl-bench-"))
    started = time.perf_counter()
    try:
        run = bench(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {args.workdir}")
    elapsed = time.perf_counter() - started
    print(render(run, args, markdown=False))
    print(f"\n(total {elapsed:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(c) for c in run.cells], indent=1))
    if args.write:
        server, load_core = cores()
        notes = NOTES.format(
            server=server,
            load=load_core,
            loader=args.loader,
            duration=args.duration,
            warmup=args.warmup,
            ttfb=args.ttfb_duration,
            quiet=args.quiet_wait,
            repeat=args.repeat,
            clean=CLEAN,
        )
        body = header("Gateway throughput, latency, CPU and memory (bench/run.py)")
        write_section("run", body + "\n" + notes + "\n" + render(run, args, markdown=True))
        log(f"wrote {BENCH / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
