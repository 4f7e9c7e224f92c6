"""Priority lanes under a saturated upstream: production latency vs batch queueing.

    python bench/lanes.py [--n 8] [--latency-ms 200] [--oversubscribe 4] [--rate 5]
                          [--duration 30] [--quick] [--write]

One simulator is the upstream: fixed latency (`--latency-ms`) and at most N requests at
once (`--max-concurrency N`, the provider's limit). `agentctl serve` fronts it with the
same limit (`max_concurrency: N` on the upstream), so the *gateway* queues the excess
rather than the simulator, and with default lane reserves (10% priority, 15% standard:
batch may hold at most N - floor(N/4) slots). Phases, each `--duration` seconds:

1. `unloaded`: the production agent alone, steady open-loop traffic at `--rate` req/s
   (fixed intervals; each request its own prompt), lane `priority` by policy;
2. `lanes`: the same production traffic while 4N batch agents (closed loop, purpose
   `batch` -> lane `batch` by policy) keep the upstream oversubscribed 4x;
3. `fifo` (skip with `--no-fifo`): the same load with every agent in the `standard`
   lane, i.e. what a single FIFO queue gives production.

Reported: production p50/p99 per phase and the loaded/unloaded p99 ratio (target
<= 1.2); batch throughput, and batch queue times as the gateway itself recorded them
(`queued_ms` on each request's first attempt in the audit trail); the deepest batch
queue seen on `/admin/upstreams`. The simulator and the load generator share the load
core, the gateway has the server core (bench/servers.py). `--write` replaces the
`lanes` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import load
from results import fmt, header, plain, table, write_section
from run import apply_policy
from servers import Server, cores, free_port, warm_bytecode

from agentctl.config import Upstream
from agentctl.gateway.pools import lane_ceilings
from agentctl.store.sql import Store

PROD = {
    True: "name=prod-lane; owner=app; purpose=production",
    False: "name=prod-fifo; owner=app; purpose=production",
}
POLICY = """apiVersion: agentctl/v1
description: bench/lanes.py (no limits; lanes only)
purposes:
  batch: {lane: batch}
agents:
  prod-lane: {lane: priority}
"""


def batch_identity(k: int, lanes: bool) -> str:
    if lanes:
        return f"name=batch-{k:02d}; owner=etl; purpose=batch"
    return f"name=fifo-{k:02d}; owner=etl; purpose=production"  # standard, like prod-fifo


def gateway_config(upstream: str, n: int, path: Path) -> Path:
    path.write_text(
        "upstreams:\n"
        "  - name: limited\n"
        f"    base_url: {upstream}/v1\n"
        '    api_key: {"$env": "OPENAI_API_KEY"}\n'
        '    models: ["*"]\n'
        f"    max_concurrency: {n}\n"
        "routing:\n"
        "  queue_timeout: 300\n"
        "  max_queue: 100000\n"
        "trust:\n"
        "  params: {default_base_rps: 1000000}\n"
    )
    return path


def start_servers(args: argparse.Namespace, workdir: Path) -> tuple[Server, Server, Path]:
    server_core, load_core = cores()
    sim_port, gw_port = free_port(), free_port()
    sim_cmd = [sys.executable, "-m", "agentctl.simulator", "--port", str(sim_port)]
    sim_cmd += ["--latency-ms", str(args.latency_ms), "--max-concurrency", str(args.n)]
    sim = Server("simulator", sim_cmd, sim_port, "/_sim/stats", workdir / "sim.log", load_core)
    sim.start()
    home = workdir / "agentctl-home"
    config = gateway_config(sim.url, args.n, workdir / "agentctl.yaml")
    env = {
        "AGENTCTL_HOME": str(home),
        "AGENTCTL_CONFIG": str(config),
        "OPENAI_API_KEY": "sk-bench-upstream",
        "AGENTCTL_LOG_LEVEL": "warning",
    }
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    apply_policy(policy, env)
    cmd = [sys.executable, "-m", "agentctl", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(gw_port), "--config", str(config)]
    gw = Server("agentctl", cmd, gw_port, "/healthz", workdir / "gateway.log", server_core, env)
    gw.start()
    return sim, gw, home


async def steady(url: str, identity: str, rate: float, duration: float, tag: str) -> dict[str, Any]:
    """Open loop: one request every 1/rate s whatever the answers do; latency of each."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    headers = load.default_headers(identity)
    template = load.chat_template(False)

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        body = template.replace(load.PLACEHOLDER, f"{tag} {load.word(n)}").encode()
        start = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            statuses[resp.status] += 1
        if resp.status == 200:
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start, tasks, n = time.perf_counter(), [], 0
        while (due := start + n / rate) < start + duration:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session, n)))
            n += 1
        await asyncio.gather(*tasks)
    lat = sorted(latencies)
    return {
        "requests": n,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": ms(load.percentile(lat, 50)),
        "p99_ms": ms(load.percentile(lat, 99)),
        "max_ms": ms(lat[-1] if lat else None),
    }


async def watch_queue(admin: str, stop: asyncio.Event, seen: list[int]) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(admin) as resp:
                view = await resp.json()
            seen.append(sum(p["queued"]["batch"] + p["queued"]["standard"] for p in view["pools"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


async def phase(gw: Server, args: argparse.Namespace, name: str) -> dict[str, Any]:
    url = gw.url + "/v1/chat/completions"
    lanes = name != "fifo"
    prod = PROD[lanes]
    begun = time.time()
    if name == "unloaded":
        started = time.time()
        prod_result = await steady(url, prod, args.rate, args.duration, name)
        return {"name": name, "begun": begun, "started": started, "prod": prod_result}
    batch_headers = [
        load.default_headers(batch_identity(k, lanes)) for k in range(args.oversubscribe * args.n)
    ]
    warm = max(2.0, 4 * args.latency_ms / 1000)  # until every batch worker is queued
    batch = asyncio.create_task(
        load.run(
            url,
            concurrency=args.oversubscribe * args.n,
            duration=args.duration + warm,
            traffic=load.varied(False, batch_headers),
            timeout=600,
        )
    )
    await asyncio.sleep(warm)
    stop, depth = asyncio.Event(), []
    watcher = asyncio.create_task(watch_queue(gw.url + "/admin/upstreams", stop, depth))
    started = time.time()
    prod_result = await steady(url, prod, args.rate, args.duration, name)
    stop.set()
    await watcher
    batch_result = (await batch).summary()
    return {
        "name": name,
        "begun": begun,
        "started": started,
        "prod": prod_result,
        "batch": batch_result,
        "queued_max": max(depth, default=0),
        "queued_mean": round(sum(depth) / len(depth), 1) if depth else 0,
    }


def queue_times(home: Path, phases: list[dict[str, Any]]) -> None:
    """Batch and production queue times per phase, from the gateway's own audit trail."""
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    rows = store.records_after(0, limit=10_000_000, kinds=("request",))
    store.close()
    ends = [p["begun"] for p in phases[1:]] + [float("inf")]
    for p, end in zip(phases, ends, strict=True):
        batch, prod = [], []
        for row in rows:
            ts = row["ts_us"] / 1e6
            if not (p["begun"] <= ts < end and row["attempts"]):
                continue
            waited = float(json.loads(row["attempts"])[0].get("queued_ms", 0.0))
            if row["agent"].startswith(("batch-", "fifo-")):
                batch.append(waited)
            elif row["agent"].startswith("prod-") and ts >= p["started"]:
                prod.append(waited)
        batch.sort()
        prod.sort()
        p["batch_queue_ms"] = {
            50: load.percentile(batch, 50),
            99: load.percentile(batch, 99),
            "max": batch[-1] if batch else None,
        }
        p["prod_queue_ms_max"] = prod[-1] if prod else None


async def warm_up(gw: Server, n: int = 10) -> None:
    """A few requests first, so no phase pays for a cold gateway (first-use caches)."""
    url = gw.url + "/v1/chat/completions"
    for lanes in (True, False):
        await steady(url, PROD[lanes], 20.0, n / 20.0, "warm-up")


def ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def render(phases: list[dict[str, Any]], args: argparse.Namespace, markdown: bool) -> str:
    base = phases[0]["prod"]["p99_ms"]
    rows = []
    for p in phases:
        prod, batch, bq = p["prod"], p.get("batch"), p.get("batch_queue_ms", {})
        ratio = prod["p99_ms"] / base if base and prod["p99_ms"] else None
        rows.append(
            [
                p["name"],
                prod["requests"],
                fmt(prod["p50_ms"]),
                fmt(prod["p99_ms"]),
                fmt(ratio, 2) if ratio else "-",
                fmt(p.get("prod_queue_ms_max")),
                fmt(batch["rps"]) if batch else "-",
                f"{fmt(bq.get(50))} / {fmt(bq.get(99))} / {fmt(bq.get('max'))}" if batch else "-",
                f"{p['queued_max']} (mean {p['queued_mean']})" if batch else "-",
                batch["non_2xx"] + batch["errors"] if batch else "-",
            ]
        )
    heads = [
        "phase",
        "prod req",
        "prod p50 ms",
        "prod p99 ms",
        "p99 / unloaded",
        "prod max queue ms",
        "batch req/s",
        "batch queue p50 / p99 / max ms",
        "max queued",
        "batch non-2xx",
    ]
    lanes = next(p for p in phases if p["name"] == "lanes")
    ratio = lanes["prod"]["p99_ms"] / base
    verdict = "PASS" if ratio <= 1.2 else "FAIL"
    ceilings = lane_ceilings(Upstream(name="u", base_url="http://u", max_concurrency=args.n))
    setup = (
        f"Upstream: simulator, {args.latency_ms:g} ms fixed latency, max {args.n} concurrent; "
        f"gateway `max_concurrency: {args.n}` (lane ceilings priority/standard/batch "
        f"{'/'.join(str(c) for c in ceilings)}). "
        f"Production: one agent, {args.rate:g} req/s open loop, lane priority. Batch: "
        f"{args.oversubscribe * args.n} closed-loop workers ({args.oversubscribe}x N), lane batch. "
        f"{args.duration:g} s per phase."
    )
    target = f"Target: production p99 under load <= 1.2x unloaded: {ratio:.2f}x -> **{verdict}**"
    if markdown:
        return "\n".join(
            [
                header("Priority lanes under a saturated upstream"),
                setup,
                "",
                table(heads, rows),
                "",
                target,
                "",
            ]
        )
    return "\n".join([setup, "", plain(heads, rows), "", target.replace("**", "")])


async def bench(args: argparse.Namespace, gw: Server) -> list[dict[str, Any]]:
    names = ["unloaded", "lanes"] + ([] if args.no_fifo else ["fifo"])
    await warm_up(gw)
    phases = []
    for name in names:
        print(f"phase {name} ...", file=sys.stderr, flush=True)
        phases.append(await phase(gw, args, name))
        await asyncio.sleep(1 + 2 * args.latency_ms / 1000)  # drain before the next
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="upstream concurrency limit")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--oversubscribe", type=int, default=4)
    parser.add_argument("--rate", type=float, default=5.0, help="production req/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--quick", action="store_true", help="5 s phases")
    parser.add_argument("--no-fifo", action="store_true", help="skip the FIFO comparison")
    parser.add_argument(
        "--write", action="store_true", help="write its section of bench/RESULTS.md"
    )
    parser.add_argument("--json", type=Path, default=None, help="raw phases to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 5.0
    warm_bytecode()
    with tempfile.TemporaryDirectory(prefix="agentctl-lanes-") as tmp:
        sim, gw, home = start_servers(args, Path(tmp))
        try:
            phases = asyncio.run(bench(args, gw))
        finally:
            gw.stop()
            sim.stop()
        queue_times(home, phases)
    if args.json:
        args.json.write_text(json.dumps(phases, indent=2))
    print(render(phases, args, markdown=False))
    if args.write:
        write_section("lanes", render(phases, args, markdown=True))
    lanes = next(p for p in phases if p["name"] == "lanes")
    return 0 if lanes["prod"]["p99_ms"] <= 1.2 * phases[0]["prod"]["p99_ms"] else 1


if __name__ == "__main__":
    sys.exit(main())
