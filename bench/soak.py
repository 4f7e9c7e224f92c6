"""Soak: a bounded run at moderate load, watching the gateway's memory and descriptors.

    .venv/bin/python bench/soak.py                  # 30 minutes (issue 10)
    .venv/bin/python bench/soak.py --minutes 2      # a quick check
    .venv/bin/python bench/soak.py --write          # also write its section of RESULTS.md

A simulator (`--latency-ms`, `--chunk-delay-ms`) and `agentctl serve` (one process,
journal and recorder on, bench/agentctl.yaml) run as subprocesses on loopback and are
stopped by PID. `--clients` paced workers mix JSON and streamed chat completions, each
with its own prompt, identities rotating through 16 agents. Injected faults, each
counted: a client that hangs up mid-stream (`--disconnect`), an upstream 429
(`x-sim-status`) and an upstream reset mid-stream (`x-sim-reset-after`).

Every 10 s the gateway's resident memory (VmRSS) and open descriptors (/proc/PID/fd)
are sampled. Verdicts: RSS after warm-up stays within 10% of its post-warm-up value;
descriptors with no request in flight are not more after the run than after warm-up;
no client-side error, unexpected status or gateway log error beyond the injected
faults; after a SIGTERM (exit 0) every answered request has exactly one audit record
(by `x-request-id`) with the outcome its fault implies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from load import chat_body, identity
from results import write_section
from servers import BENCH, Server, free_port, simulator

CHAT = "/v1/chat/completions"
SAMPLE_S = 10.0
# What each injected fault must look like in the audit.
EXPECTED_OUTCOME = {
    "json": "served",
    "stream": "served",
    "disconnect": "disconnected",
    "status429": "upstream_error",
    "reset": "upstream_error",
}


@dataclass
class Sample:
    t: float  # seconds since load started
    rss_mb: float
    fds: int
    requests: int
    audit_pending: int


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "kind:status"
    errors: Counter[str] = field(default_factory=Counter)  # unexpected, by kind and type
    ids: dict[str, str] = field(default_factory=dict)  # x-request-id -> kind


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_sockets(pid: int) -> dict[str, tuple[int, int, str]]:
    """socket inode -> (local port, remote port, TCP state) from /proc/PID/net/tcp*."""
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
            states = {"01": "established", "0A": "listen", "06": "time_wait", "08": "close_wait"}
            out[inode] = (
                int(local.rsplit(":", 1)[1], 16),
                int(remote.rsplit(":", 1)[1], 16),
                states.get(state, state),
            )
    return out


def fd_kinds(pid: int, own_port: int) -> dict[str, int]:
    """Open descriptors by kind: the file's name, or for TCP sockets `listen`,
    `client` (accepted) or `outbound` (upstream pool, store), with any odd state."""
    kinds: Counter[str] = Counter()
    sockets = tcp_sockets(pid)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            local, _, state = sockets.get(target[8:-1], (0, 0, "other"))
            role = "listen" if state == "listen" else "client" if local == own_port else "outbound"
            kind = f"socket/{role}" + ("" if state in ("listen", "established") else f"/{state}")
        else:
            kind = target.split(":", 1)[0] if ":" in target else Path(target).name
            kind = "journal segment" if kind.startswith("seg-") else kind
        kinds[kind] += 1
    return dict(sorted(kinds.items()))


def rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pick(rnd: random.Random, disconnect: float) -> str:
    roll = rnd.random()
    if roll < 0.02:
        return "status429"
    if roll < 0.03:
        return "reset"
    if roll < 0.03 + disconnect:
        return "disconnect"
    return "stream" if roll < 0.55 else "json"


async def one(session: aiohttp.ClientSession, url: str, kind: str, n: int, tally: Tally) -> None:
    stream = kind in ("stream", "disconnect", "reset")
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer sk-soak-client",
        "X-Agent-Identity": identity(n),
    }
    if kind == "status429":
        headers.update({"x-sim-status": "429", "x-sim-retry-after-ms": "10"})
    elif kind == "reset":
        headers["x-sim-reset-after"] = "3"
    tally.sent[kind] += 1
    try:
        async with session.post(url + CHAT, data=chat_body(stream, n), headers=headers) as resp:
            rid = resp.headers.get("x-request-id", "")
            tally.ids[rid] = kind
            tally.statuses[f"{kind}:{resp.status}"] += 1
            if kind == "disconnect":
                await resp.content.readany()  # first event, then hang up
                resp.close()
                return
            body = await resp.read()
            if kind == "reset" and b"upstream_reset" not in body:
                tally.errors["reset:no-error-event"] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.errors[f"{kind}:{type(exc).__name__}"] += 1


async def client(
    url: str, seed: int, deadline: float, pause: float, disconnect: float, tally: Tally
) -> None:
    rnd = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = seed * 10_000_000
        while time.monotonic() < deadline:
            n += 1
            await one(session, url, pick(rnd, disconnect), n, tally)
            await asyncio.sleep(rnd.uniform(0, 2 * pause))


async def sampler(
    gateway: Server, start: float, deadline: float, tally: Tally, samples: list[Sample]
) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            pending = -1
            try:
                async with session.get(gateway.url + "/healthz") as resp:
                    pending = (await resp.json())["audit_pending"]
            except aiohttp.ClientError:
                pass
            samples.append(
                Sample(
                    round(time.monotonic() - start, 1),
                    round(rss(gateway.pid), 2),
                    fds(gateway.pid),
                    sum(tally.sent.values()),
                    pending,
                )
            )
            print(f"soak: {samples[-1]}", file=sys.stderr, flush=True)
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(min(SAMPLE_S, max(deadline - time.monotonic(), 0.1)))


async def idle_fds(gateway: Server, wait: float) -> tuple[int, dict[str, int]]:
    """Descriptors with no client connected, the audit drained and, after `wait`
    seconds, the upstream keep-alive pool expired (aiohttp closes idle connections
    after 60 s)."""
    for _ in range(100):
        await asyncio.sleep(0.1)
        async with (
            aiohttp.ClientSession() as session,
            session.get(gateway.url + "/healthz") as resp,
        ):
            health = await resp.json()
        if health["inflight"] == 0 and health["audit_pending"] == 0:
            break
    await asyncio.sleep(wait)
    return fds(gateway.pid), fd_kinds(gateway.pid, gateway.port)


async def drive(args: argparse.Namespace, gateway: Server) -> dict[str, Any]:
    tally = Tally()
    warm = Tally()
    # Warm-up traffic reaches every code path once before the baseline is taken.
    await asyncio.gather(
        *(client(gateway.url, 900 + i, time.monotonic() + 5, 0.05, 0.1, warm) for i in range(4))
    )
    fds_before, kinds_before = await idle_fds(gateway, args.idle_wait)
    samples: list[Sample] = []
    start = time.monotonic()
    deadline = start + args.minutes * 60
    load = [
        client(gateway.url, i + 1, deadline, args.pause, args.disconnect, tally)
        for i in range(args.clients)
    ]
    await asyncio.gather(sampler(gateway, start, deadline, tally, samples), *load)
    elapsed = time.monotonic() - start
    fds_after, kinds_after = await idle_fds(gateway, args.idle_wait)
    for rid, kind in warm.ids.items():
        tally.ids[rid] = kind
    return {
        "tally": tally,
        "warm": warm,
        "samples": samples,
        "elapsed": elapsed,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "fd_kinds_before": kinds_before,
        "fd_kinds_after": kinds_after,
    }


def audit(db: Path, ids: dict[str, str]) -> dict[str, Any]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT request_id, outcome FROM audit WHERE kind = 'request'").fetchall()
    con.close()
    seen = Counter(rid for rid, _ in rows)
    outcome = dict(rows)
    missing = [rid for rid in ids if rid not in seen]
    duplicated = [rid for rid, k in seen.items() if k > 1]
    wrong = Counter(
        f"{kind}->{outcome[rid]}"
        for rid, kind in ids.items()
        if rid in outcome and outcome[rid] != EXPECTED_OUTCOME[kind]
    )
    return {
        "records": len(rows),
        "answered": len(ids),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "unexpected_outcomes": dict(wrong),
        "outcomes": dict(Counter(outcome.values())),
    }


def verdicts(result: dict[str, Any], warmup_s: float, log_errors: list[str]) -> dict[str, Any]:
    samples: list[Sample] = result["samples"]
    after = [s for s in samples if s.t >= warmup_s] or samples[-1:]
    base = after[0].rss_mb
    lo, hi = min(s.rss_mb for s in after), max(s.rss_mb for s in after)
    drift = max(hi - base, base - lo) / base
    tally: Tally = result["tally"]
    unexpected_status = {
        k: v
        for k, v in tally.statuses.items()
        if k.split(":")[1] != ("429" if k.startswith("status429") else "200")
    }
    checks = {
        "rss_flat_within_10pct": drift <= 0.10,
        "no_fd_growth": result["fds_after"] <= result["fds_before"],
        "no_unexpected_errors": not tally.errors and not unexpected_status and not log_errors,
        "every_answer_audited_once": (
            result["audit"]["missing"] == 0 and result["audit"]["duplicated"] == 0
        ),
        "outcomes_match_faults": not result["audit"]["unexpected_outcomes"],
        "sigterm_exit_0": result["exit_code"] == 0,
    }
    return {
        "rss_base_mb": base,
        "rss_min_mb": lo,
        "rss_max_mb": hi,
        "rss_drift_pct": round(drift * 100, 2),
        "unexpected_status": unexpected_status,
        "checks": checks,
        "pass": all(checks.values()),
    }


def render(args: argparse.Namespace, result: dict[str, Any], verdict: dict[str, Any]) -> str:
    tally: Tally = result["tally"]
    samples: list[Sample] = result["samples"]
    total = sum(tally.sent.values())
    lines = [
        "## Soak: 30 minutes at moderate load (bench/soak.py)",
        "",
        f"Command: `.venv/bin/python bench/soak.py {' '.join(args.argv)}`".replace("  ", " "),
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}.",
        f"Setup: simulator {args.latency_ms:g} ms latency, {args.chunk_delay_ms:g} ms between "
        f"SSE events; {args.clients} paced clients; warm-up {args.warmup_minutes:g} min "
        "excluded from the RSS verdict.",
        "",
        f"**{'PASS' if verdict['pass'] else 'FAIL'}**: "
        + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in verdict["checks"].items()),
        "",
        "| figure | value |",
        "|---|---|",
        f"| duration | {result['elapsed'] / 60:.1f} min |",
        f"| requests | {total:,} ({total / result['elapsed']:.1f}/s) |",
        f"| mix | {', '.join(f'{k} {v:,}' for k, v in sorted(tally.sent.items()))} |",
        f"| statuses | {', '.join(f'{k} {v:,}' for k, v in sorted(tally.statuses.items()))} |",
        f"| client errors beyond injected | {dict(tally.errors) or 'none'} |",
        f"| RSS after warm-up | {verdict['rss_base_mb']:.1f} MiB, range "
        f"{verdict['rss_min_mb']:.1f}-{verdict['rss_max_mb']:.1f} MiB "
        f"(max drift {verdict['rss_drift_pct']}%) |",
        f"| RSS first / last sample | {samples[0].rss_mb:.1f} / {samples[-1].rss_mb:.1f} MiB |",
        f"| open fds idle, after warm-up / after run | {result['fds_before']} / "
        f"{result['fds_after']} |",
        f"| idle fds by kind, before / after | {result['fd_kinds_before']} / "
        f"{result['fd_kinds_after']} |",
        f"| open fds under load, min-max | {min(s.fds for s in samples)}-"
        f"{max(s.fds for s in samples)} |",
        f"| audit | {result['audit']['records']:,} request records for "
        f"{result['audit']['answered']:,} answered requests; missing "
        f"{result['audit']['missing']}, duplicated {result['audit']['duplicated']}; "
        f"outcomes {result['audit']['outcomes']} |",
        f"| gateway log errors | {len(result['log_errors'])} |",
        f"| SIGTERM exit code | {result['exit_code']} |",
        "",
        "RSS (MiB) and open descriptors, one row per minute:",
        "",
        "| t (s) | RSS MiB | fds | requests so far | audit pending |",
        "|---|---|---|---|---|",
    ]
    step = max(1, round(60 / SAMPLE_S))
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        lines.append(
            f"| {s.t:.0f} | {s.rss_mb:.1f} | {s.fds} | {s.requests:,} | {s.audit_pending} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=None, help="default: min(5, 1/6)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pause", type=float, default=0.05, help="mean pause between requests")
    parser.add_argument("--disconnect", type=float, default=0.08, help="share hanging up")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0)
    parser.add_argument(
        "--idle-wait", type=float, default=65.0, help="s before an idle fd count (keep-alive)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write raw figures here")
    parser.add_argument("--write", action="store_true", help="write its section of RESULTS.md")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 6)
    work = Path(tempfile.mkdtemp(prefix="agentctl-soak-"))
    home = work / "home"
    home.mkdir()
    sim = simulator(free_port(), args.latency_ms, work / "sim.log", None)
    sim.command += ["--chunk-delay-ms", str(args.chunk_delay_ms)]
    port = free_port()
    gateway = Server(
        "agentctl",
        [sys.executable, "-m", "agentctl", "serve", "--port", str(port)],
        port,
        "/healthz",
        work / "gateway.log",
        env={"AGENTCTL_HOME": str(home), "SIM_PROVIDER_KEY": "sk-soak-upstream"},
    )
    sim.start()
    try:
        gateway.command += [
            "--upstream",
            sim.url + "/v1",
            "--upstream-key-env",
            "SIM_PROVIDER_KEY",
            "--config",
            str(BENCH / "agentctl.yaml"),
        ]
        gateway.start()
        print(f"soak: gateway pid {gateway.pid}, logs in {work}", file=sys.stderr)
        result = asyncio.run(drive(args, gateway))
        assert gateway.proc is not None
        gateway.stop(grace=60)
        result["exit_code"] = gateway.proc.returncode
    finally:
        gateway.stop()
        sim.stop()
    log_text = (work / "gateway.log").read_text(errors="replace")
    result["log_errors"] = [
        line for line in log_text.splitlines() if " ERROR " in line or "Traceback" in line
    ]
    result["audit"] = audit(home / "agentctl.db", result["tally"].ids)
    verdict = verdicts(result, args.warmup_minutes * 60, result["log_errors"])
    text = render(args, result, verdict)
    print(text)
    if args.json:
        raw = {k: v for k, v in result.items() if k not in ("tally", "warm", "samples")}
        raw["samples"] = [asdict(s) for s in result["samples"]]
        raw["verdict"] = verdict
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    if args.write:
        write_section("soak", text)
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
