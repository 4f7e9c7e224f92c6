"""Instructions per request under callgrind: a deterministic yardstick for CPU work.

Wall-clock CPU per request on a shared 2-core machine moves by 10% from run to run;
instruction counts move by about 0.1%, so one change at a time can be judged. The
server runs under `valgrind --tool=callgrind` with instrumentation off while it starts
and warms up, on for exactly N requests (a fixed count from a client in this process),
off again; instructions / N is the cost of one request in every thread of the server.
Kernel time (system calls) is not counted: see bench/run.py for wall-clock figures.

    python bench/instructions.py                       # agentctl, JSON and SSE
    python bench/instructions.py --targets floor,agentctl --requests 400 --write

Needs valgrind (`apt-get install -y valgrind`). Runs in about a minute per target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import load
import results
from run import agentctl_command, floor_command
from servers import BENCH, ROOT, Server, free_port, simulator, warm_bytecode


def server_cmd(
    target: str, upstream: str, port: int, workdir: Path, out: Path, args: argparse.Namespace
) -> Server:
    grind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        *args.valgrind,
        f"--callgrind-out-file={out}",
    ]
    env: dict[str, str] = {}
    if target == "floor":
        cmd = floor_command(upstream, port, uvloop=True)
    else:
        config = None if args.config == "none" else args.config
        policy = None if args.policy == "none" else Path(args.policy).resolve()
        cmd, env = agentctl_command(upstream, port, config, policy, workdir / "agentctl")
    return Server(target, grind + cmd, port, "/healthz", workdir / f"{target}.log", None, env)


async def send(url: str, stream: bool, count: int, concurrency: int, offset: int) -> int:
    """Exactly `count` chat completions; returns how many answered 200 in full."""
    headers = load.rotating_headers()
    ok = 0
    todo = iter(range(offset, offset + count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal ok
            for n in todo:
                async with session.post(
                    url + "/v1/chat/completions",
                    data=load.chat_body(stream, n),
                    headers=headers[n % len(headers)],
                ) as resp:
                    await resp.read()
                    ok += resp.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def total_instructions(out_dir: Path, stem: str) -> int:
    total = 0
    for path in out_dir.glob(stem + "*"):
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"totals:\s+(\d+)", line)
            if m:
                total += int(m.group(1))
                if path.name != stem:  # --threads: one file per thread
                    print(f"  {path.name}: {int(m.group(1)):,} instructions", file=sys.stderr)
                break
    return total


def measure(
    target: str, kind: str, upstream: str, workdir: Path, args: argparse.Namespace
) -> tuple[float, int]:
    out = workdir / f"cg-{target}-{kind}.out"
    port = free_port()
    server = server_cmd(target, upstream, port, workdir, out, args)
    server.start(timeout=300)
    try:
        stream = kind == "sse"
        asyncio.run(send(server.url, stream, args.warmup, args.concurrency, 0))
        control(server.pid, "-i", "on")
        ok = asyncio.run(send(server.url, stream, args.requests, args.concurrency, 10_000))
        time.sleep(0.5)  # let the audit writer's batch (100 ms) land inside the window
        control(server.pid, "-i", "off")
        control(server.pid, "-d")
    finally:
        server.stop()
    return total_instructions(workdir, out.name) / args.requests, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="agentctl", help="floor,agentctl")
    parser.add_argument("--kinds", default="json,sse")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--config", default=str(BENCH / "agentctl.yaml"))
    parser.add_argument("--policy", default=str(BENCH / "policy.yaml"))
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument(
        "--threads", action="store_true", help="one count per thread (--separate-threads=yes)"
    )
    args = parser.parse_args()
    args.valgrind = ["--separate-threads=yes"] if args.threads else []
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    warm_bytecode()
    workdir = Path(tempfile.mkdtemp(prefix="agentctl-instr-"))
    up = simulator(free_port(), 0, workdir / "upstream.log", None)
    up.start()
    rows = []
    try:
        for target in args.targets.split(","):
            for kind in args.kinds.split(","):
                per_request, ok = measure(target, kind, up.url, workdir, args)
                rows.append((target, kind, per_request, ok))
                print(
                    f"{target:9} {kind:4} {per_request / 1000:10,.0f} k instr/request  "
                    f"({ok}/{args.requests} ok)",
                    flush=True,
                )
    finally:
        up.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    table = [
        "| server | kind | k instructions / request | 200 OK |",
        "|---|---|---|---|",
        *(f"| {t} | {k} | {p / 1000:,.0f} | {ok}/{args.requests} |" for t, k, p, ok in rows),
    ]
    print("\n".join(table))
    if args.write:
        intro = (
            f"callgrind, all threads of the server, {args.requests} requests at concurrency "
            f"{args.concurrency} after {args.warmup} warm-up requests; 0 ms upstream "
            "(agentctl.simulator, not measured); policy "
            f"{Path(args.policy).name if args.policy != 'none' else 'none'}, config "
            f"{Path(args.config).name if args.config != 'none' else 'defaults'}. Kernel time "
            "is not counted."
        )
        title = "Instructions per request under callgrind (bench/instructions.py)"
        body = results.header(title) + intro + "\n\n" + "\n".join(table)
        results.write_section("instructions", body)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
