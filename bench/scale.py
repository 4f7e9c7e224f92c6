"""Scale-out throughput: `agentctl serve --workers N` with Redis counters, against one
worker with memory counters.

    .venv/bin/python bench/scale.py                 # 5 s per cell, about a minute
    .venv/bin/python bench/scale.py --write         # also write its section of bench/RESULTS.md

Cells: memory x 1 worker, redis x 1, 2 and 4 workers. Each cell gets a fresh home
(SQLite store with bench/policy.yaml applied, so every check, reservation and
settlement runs and nothing is refused), a fresh simulator upstream in its own
process (0 ms latency), the gateway, a 1 s warm-up, then one bounded `wrk` run on
loopback (JSON chat completions, requests rotating over 16 agent identities). Redis
cells use the machine's Redis (`AGENTCTL_BENCH_REDIS`, default redis://127.0.0.1:6379/0)
under a unique key prefix, deleted afterwards. Every process started here is stopped
by its PID.

Nothing is pinned: workers need every core. On a small machine the load generator,
the simulator, Redis and the workers share the cores, so the table shows how the
whole box saturates; read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import wrk
from results import demote, write_section
from servers import ROOT, Server, child_env, cpu_seconds, free_port, simulator, warm_bytecode

REDIS = os.environ.get("AGENTCTL_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CELLS = [("memory", 1), ("redis", 1), ("redis", 2), ("redis", 4)]
AGENTS = 16


def identities() -> list[dict[str, str]]:
    return [
        load.default_headers(f"name=scale-bot-{i}; owner=perf; purpose=production")
        for i in range(AGENTS)
    ]


def apply_policy(env: dict[str, str]) -> None:
    import subprocess

    cmd = [sys.executable, "-m", "agentctl", "policy", "apply", str(ROOT / "bench/policy.yaml")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(env), timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"policy apply failed:\n{done.stderr}")


def drop_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def cell(counters: str, workers: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = f"{counters}-x{workers}"
    home = workdir / name
    env = {
        "AGENTCTL_HOME": str(home),
        "OPENAI_API_KEY": "sk-bench-upstream",
        "AGENTCTL_LOG_LEVEL": "warning",
    }
    apply_policy(env)
    prefix = f"bench-scale-{secrets.token_hex(4)}:"
    url = "memory://" if counters == "memory" else f"{REDIS}?prefix={prefix}"
    upstream = simulator(free_port(), 0, workdir / f"{name}-sim.log", None).start()
    port = free_port()
    cmd = [sys.executable, "-m", "agentctl", "serve", "--port", str(port), "--counters", url]
    cmd += ["--workers", str(workers), "--upstream", upstream.url + "/v1"]
    gateway = Server(name, cmd, port, "/healthz", workdir / f"{name}.log", None, env)
    try:
        gateway.start(timeout=120)
        target = gateway.url + "/v1/chat/completions"
        run = {"body": load.chat_body(False), "headers_list": identities(), "core": None}
        wrk.run(target, concurrency=args.concurrency, duration=1, workdir=workdir, **run)
        cpu0 = cpu_seconds(gateway.pid)
        result = wrk.run(
            target, concurrency=args.concurrency, duration=args.duration, workdir=workdir, **run
        )
        cpu = cpu_seconds(gateway.pid) - cpu0
        result["cpu_ms_per_req"] = 1000 * cpu / max(result["requests"], 1)
    finally:
        gateway.stop()
        upstream.stop()
        if counters == "redis":
            drop_prefix(prefix)
    return {"counters": counters, "workers": workers, **result}


def table(rows: list[dict[str, Any]]) -> str:
    base = next(r["rps"] for r in rows if r["counters"] == "memory")
    lines = [
        "| counters | workers | req/s | vs memory x1 | p50 ms | p99 ms | non-2xx | "
        "gateway CPU ms/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['counters']} | {r['workers']} | {r['rps']:.0f} | {r['rps'] / base:.2f}x | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['non_2xx']} | "
            f"{r['cpu_ms_per_req']:.2f} |"
        )
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, started: float) -> str:
    load1, load5, _ = os.getloadavg()
    return f"""# Scale-out benchmark (issue 7)

Command: `.venv/bin/python bench/scale.py --duration {args.duration:g} --concurrency \
{args.concurrency}{" --write" if args.write else ""}`

Machine: {os.cpu_count()} CPUs, load average {load1:.1f}/{load5:.1f} at the end of the run
({time.strftime("%Y-%m-%d %H:%M", time.localtime(started))}). Loopback only; upstream =
`agentctl.simulator` (0 ms latency) in its own process; SQLite store; bench/policy.yaml
applied (full governance, nothing refused); `wrk -t1 -c{args.concurrency}`, JSON chat
completions rotating over {AGENTS} agent identities; {args.duration:g} s measured after a
1 s warm-up per cell. Nothing is pinned: load generator, simulator, Redis and workers
share the machine's cores.

{table(rows)}

Reading it: with Redis each request makes 5-6 counters calls over loopback instead of
in-process dictionary updates (calls in flight together share a pipelined round trip),
which is the CPU difference per request between the first two rows. Extra workers add
throughput only while the machine has idle cores: here the load generator, the
simulator and Redis share the same {os.cpu_count()} CPUs with the workers (and with
whatever else ran at the time: see the load average). On a host with more cores, size
`--workers` to the cores left after Redis and the upstream.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument("--write", action="store_true", help="write into bench/RESULTS.md")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("bench/scale.py needs wrk on PATH")
    started = time.time()
    warm_bytecode()
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentctl-scale-") as tmp:
        for counters, workers in CELLS:
            rows.append(cell(counters, workers, args, Path(tmp)))
            r = rows[-1]
            print(f"{counters} x{workers}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms")
    text = report(rows, args, started)
    print(text)
    if args.write:
        write_section("scale", demote(text))


if __name__ == "__main__":
    main()
