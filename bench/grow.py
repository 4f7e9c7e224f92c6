"""How gateway cost grows with the size of the store and of the policy.

    python bench/grow.py [--quick] [--write]

Every gateway runs with full governance (bench/policy.yaml, or a generated variant,
applied to its store first; bench/agentctl.yaml as config) and is driven with wrk:
JSON chat completions, c=32, 0 ms upstream, requests rotating through 200 registered
agents, each presenting its own agent token and a matching X-Agent-Identity (a token
lookup and a verified identity per request). Reported per row: startup (wall and CPU),
RSS idle and after load, req/s and CPU µs/request. Agents are bulk-inserted with their credentials
(`Store.register_agent` is one audited transaction per agent: hours for 100,000).

1. registered agents: 10, 1,000, 100,000;
2. policy rules: 10,000 agents and a policy with 10, 1,000, 10,000 per-agent scopes,
   with the time `agentctl policy apply` takes for each (part 1 applies its policy to
   the empty store before inserting the agents, so its rows time only the gateway);
3. 10,000 agents and 1,000,000 audit records, chained through `Store.append_records`
   in batches as the recorder writes them, all inside the window the gateway seeds
   its quotas from (this month and the last day of the previous one): the worst case
   for start-up; and `agentctl report` time at 10k, 100k and 1M records.

Server pinned to the first CPU, simulator and wrk to the second, as in bench/run.py.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import load
import run as bench_run
import wrk
from results import fmt, header, plain, table, write_section
from servers import ROOT, Server, child_env, cores, free_port, simulator, warm_bytecode

from agentctl.store.models import Agent, Credential
from agentctl.store.sql import TOKEN_PREFIX, Store, hash_secret

ROTATE = 200  # distinct agents in the request mix
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-latest", "o3-mini")


def name_of(i: int) -> str:
    return f"agent-{i:06d}"


def secret_of(i: int) -> str:
    return f"benchsecret{i:08d}"


def key_of(i: int) -> str:
    return f"{i:016x}"


def token_of(i: int) -> str:
    return f"{TOKEN_PREFIX}{key_of(i)}_{secret_of(i)}"


def add_agents(store: Store, count: int, start: int = 0) -> None:
    now = time.time_ns() // 1000
    agents = Agent.__table__  # type: ignore[attr-defined]
    creds = Credential.__table__  # type: ignore[attr-defined]
    step = 20_000
    for lo in range(start, start + count, step):
        hi = min(lo + step, start + count)
        with store.engine.begin() as conn:
            conn.execute(
                agents.insert(),
                [
                    {
                        "name": name_of(i),
                        "owner": f"team-{i % 100:02d}",
                        "purpose": "production",
                        "status": "active",
                        "registered": True,
                        "created_at_us": now,
                        "updated_at_us": now,
                    }
                    for i in range(lo, hi)
                ],
            )
            conn.execute(
                creds.insert(),
                [
                    {
                        "agent": name_of(i),
                        "key_id": key_of(i),
                        "secret_hash": hash_secret(secret_of(i)),
                        "status": "active",
                        "created_at_us": now,
                    }
                    for i in range(lo, hi)
                ],
            )


def add_audit(store: Store, count: int, agents: int, batch: int = 20_000) -> float:
    """Append `count` chained request records; returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    seeded_from = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    base = int(seeded_from.timestamp() * 1e6) + 60_000_000
    span = int(now.timestamp() * 1e6) - 60_000_000 - base
    step_us = max(span // max(count, 1), 1)
    done = 0
    while done < count:
        n = min(batch, count - done)
        rows = []
        for k in range(done, done + n):
            i = k % agents
            rows.append(
                {
                    "kind": "request",
                    "request_id": "req_" + secrets.token_hex(12),
                    "ts_us": base + k * step_us,
                    "agent": name_of(i),
                    "owner": f"team-{i % 100:02d}",
                    "purpose": "production",
                    "verification": "token",
                    "key_id": key_of(i),
                    "endpoint": "/v1/chat/completions",
                    "model": MODELS[k % len(MODELS)],
                    "upstream_model": MODELS[k % len(MODELS)],
                    "upstream": "default",
                    "status": 200,
                    "outcome": "served",
                    "prompt_tokens": 100 + k % 900,
                    "completion_tokens": 16 + k % 300,
                    "usage_source": "reported",
                    "cost_pico": 1_000_000 + k % 5_000_000,
                    "latency_ms": 50.0 + k % 100,
                    "ttfb_ms": 20.0,
                    "client": "127.0.0.1",
                }
            )
        store.append_records(rows)
        done += n
    return time.perf_counter() - started


def fresh_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    return store


def apply_policy(db: Path, policy: Path, workdir: Path) -> float:
    """`agentctl policy apply` to this store; returns the seconds it took."""
    env = {"AGENTCTL_HOME": str(workdir / f"home-{db.stem}"), "AGENTCTL_DB": f"sqlite:///{db}"}
    started = time.perf_counter()
    bench_run.apply_policy(policy, env, timeout=600)
    return time.perf_counter() - started


def gateway(db: Path, upstream: str, workdir: Path, core: int | None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "agentctl", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--upstream", upstream + "/v1", "--db", f"sqlite:///{db}"]
    env = {
        "AGENTCTL_HOME": str(workdir / f"home-{db.stem}"),
        "OPENAI_API_KEY": "sk-bench-upstream",
        "AGENTCTL_LOG_LEVEL": "warning",
        "AGENTCTL_DB": f"sqlite:///{db}",
        "AGENTCTL_CONFIG": str(bench_run.DEFAULT_CONFIG),
    }
    return Server("agentctl", cmd, port, "/healthz", workdir / f"gw-{db.stem}.log", core, env)


def scoped_policy(scopes: int, agents: int, path: Path) -> Path:
    """bench/policy.yaml plus `scopes` per-agent overrides (limits still out of reach)."""
    stride = max(agents // scopes, 1)
    lines = [bench_run.DEFAULT_POLICY.read_text().rstrip(), "", "agents:"]
    for j in range(scopes):
        i = (j * stride) % agents
        lines += [
            f"  {name_of(i)}:",
            "    rate:",
            f"      rpm: {10_000_000 + j}",
            "    budgets:",
            "      day:",
            f'        usd: "{100_000 + j}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def request_mix(agents: int) -> list[dict[str, str]]:
    stride = max(agents // ROTATE, 1)
    picks = sorted({(j * stride) % agents for j in range(min(ROTATE, agents))})
    mix = []
    for i in picks:
        headers = load.default_headers(
            f"name={name_of(i)}; owner=team-{i % 100:02d}; purpose=production"
        )
        headers["Authorization"] = f"Bearer {token_of(i)}"
        mix.append(headers)
    return mix


def measure(
    db: Path,
    agents: int,
    upstream: str,
    args: argparse.Namespace,
    server_core: int | None,
    load_core: int | None,
) -> dict[str, Any]:
    server = gateway(db, upstream, args.workdir, server_core).start(timeout=600)
    startup_cpu = server.cpu()  # CPU to the first healthy /healthz: steadier than wall time
    try:
        time.sleep(0.5)
        idle = server.rss()
        url = server.url + "/v1/chat/completions"
        mix = request_mix(agents)
        template = load.chat_template(False)
        wrk.run(
            url,
            template=template,
            headers_list=mix,
            concurrency=32,
            duration=1,
            core=load_core,
            workdir=args.workdir,
        )
        time.sleep(0.4)
        cpu0 = server.cpu()
        res = wrk.run(
            url,
            template=template,
            headers_list=mix,
            concurrency=32,
            duration=args.duration,
            core=load_core,
            workdir=args.workdir,
        )
        time.sleep(0.4)
        used = server.cpu() - cpu0
        return {
            "startup_s": server.startup_s,
            "startup_cpu_s": startup_cpu,
            "rss_idle": idle,
            "rss_after": server.rss(),
            "rps": res["rps"],
            "cpu_us": used / res["requests"] * 1e6 if res["requests"] else None,
            "bad": res["non_2xx"] + res["errors"],
        }
    finally:
        server.stop()


def report_seconds(db: Path, workdir: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentctl",
            "report",
            "--db",
            f"sqlite:///{db}",
            "--json",
            "--since",
            "90d",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=child_env({"AGENTCTL_HOME": str(workdir / "home-report")}),
    )
    if done.returncode != 0:
        raise RuntimeError(f"agentctl report failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller stores, shorter runs")
    parser.add_argument("--write", action="store_true", help="write its section of RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args(argv)
    sizes = (10, 1_000, 10_000) if args.quick else (10, 1_000, 100_000)
    scope_counts = (10, 1_000) if args.quick else (10, 1_000, 10_000)
    audit_steps = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    big_agents = 10_000
    args.duration = 2.0 if args.quick else 4.0
    args.workdir = Path(tempfile.mkdtemp(prefix="agentctl-grow-"))
    server_core, load_core = cores()
    warm_bytecode()
    policy = bench_run.DEFAULT_POLICY
    up = simulator(free_port(), 0, args.workdir / "upstream.log", load_core).start()
    rows: list[list[str]] = []
    audit_rows: list[list[str]] = []
    apply_rows: list[list[str]] = []

    def row(agents: int, scopes: int, records: int, got: dict[str, Any]) -> None:
        log(f"{agents:>9,} agents, {scopes:,} policy scopes, {records:,} records: {got}")
        rows.append(
            [
                f"{agents:,}",
                f"{scopes:,}",
                f"{records:,}",
                fmt(got["startup_s"], 2),
                fmt(got["startup_cpu_s"], 2),
                fmt(got["rss_idle"], 1),
                fmt(got["rss_after"], 1),
                fmt(got["rps"], 0),
                fmt(got["cpu_us"], 0),
                str(got["bad"]),
            ]
        )

    try:
        for n in sizes:
            db = args.workdir / f"agents-{n}.db"
            store = fresh_store(db)
            apply_policy(db, policy, args.workdir)  # before the agents: see apply_rows
            add_agents(store, n)
            store.close()
            row(n, 0, 0, measure(db, n, up.url, args, server_core, load_core))
        for scopes in scope_counts:
            db = args.workdir / f"scopes-{scopes}.db"
            store = fresh_store(db)
            add_agents(store, big_agents)
            store.close()
            file = scoped_policy(scopes, big_agents, args.workdir / f"policy-{scopes}.yaml")
            took = apply_policy(db, file, args.workdir)
            apply_rows.append([f"{big_agents:,}", f"{scopes:,}", f"{took:.1f}"])
            got = measure(db, big_agents, up.url, args, server_core, load_core)
            row(big_agents, scopes, 0, got)
        db = args.workdir / "audit.db"
        store = fresh_store(db)
        apply_policy(db, policy, args.workdir)
        add_agents(store, big_agents)
        have = 0
        for target in audit_steps:
            took = add_audit(store, target - have, big_agents)
            have = target
            seconds = report_seconds(db, args.workdir)
            log(f"{have:>9,} audit rows (+{took:.0f} s to insert): report {seconds:.2f} s")
            audit_rows.append([f"{have:,}", f"{seconds:.2f}"])
        store.close()
        got = measure(db, big_agents, up.url, args, server_core, load_core)
        row(big_agents, 0, have, got)
    finally:
        up.stop()
        if args.keep:
            log(f"kept {args.workdir}")
        else:
            shutil.rmtree(args.workdir, ignore_errors=True)
    heads = (
        "agents",
        "per-agent policy scopes",
        "audit records",
        "startup s",
        "startup CPU s",
        "RSS idle MB",
        "RSS after load MB",
        "req/s",
        "CPU µs/req",
        "errors",
    )
    report_heads = ("audit records", "`agentctl report --since 90d --json` s")
    print(plain(heads, rows))
    print()
    print(plain(report_heads, audit_rows))
    apply_heads = ("registered agents", "per-agent policy scopes", "`agentctl policy apply` s")
    print()
    print(plain(apply_heads, apply_rows))
    if args.write:
        note = (
            f"JSON chat completions, c=32, 0 ms upstream, {args.duration:g} s after a 1 s "
            f"warm-up; requests rotate through {ROTATE} agents, each with its agent token "
            "and matching identity. Targets: per-request CPU flat in the number of agents; "
            "RSS < 150 MB with 10,000 agents and 1,000,000 audit records. `startup s` is wall "
            "time from process start to the first healthy /healthz, `startup CPU s` the "
            "server's CPU time by then (on a busy host the wall time also counts waiting for "
            "the core).\n\n"
        )
        body = header("Cost growth with registered agents and audit size (bench/grow.py)")
        write_section(
            "grow",
            body
            + "\n"
            + note
            + table(heads, rows)
            + "\n\n"
            + table(report_heads, audit_rows)
            + "\n\n"
            + table(apply_heads, apply_rows),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
