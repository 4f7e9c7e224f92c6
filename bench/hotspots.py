"""Where the gateway spends its CPU under load: py-spy samples, summed by function.

    python bench/hotspots.py [--kind json|sse] [--seconds 10] [--write]

Starts the simulator (0 ms) and `agentctl serve` with bench/policy.yaml and
bench/agentctl.yaml exactly as bench/run.py does, drives it with wrk at c=32, and
samples the gateway with `py-spy record --nonblocking` (py-spy and wrk on the load
core, the gateway alone on the server core). Idle samples (the event loop waiting in
epoll) are not recorded, so shares are shares of the CPU the gateway burns. Reported:

- by layer: the innermost frame's package (agentctl, aiohttp, asyncio, json, ...);
- agentctl functions by inclusive share (time in the function and what it calls);
- the hottest innermost functions overall (self time).

Needs py-spy: `.venv/bin/pip install py-spy`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import load
import run as bench_run
import wrk
from results import header, plain, table, write_section
from servers import cores, free_port, pinned, simulator, warm_bytecode

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
LAYERS = (
    ("agentctl/", "agentctl"),
    ("aiohttp/", "aiohttp"),
    ("multidict/", "multidict/yarl"),
    ("yarl/", "multidict/yarl"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
    ("sqlalchemy/", "sqlalchemy/sqlite"),
    ("sqlite3/", "sqlalchemy/sqlite"),
    ("sqlmodel/", "sqlalchemy/sqlite"),
    ("pydantic", "pydantic"),
    ("logging/", "logging"),
)


def layer(path: str) -> str:
    for marker, name in LAYERS:
        if marker in path:
            return name
    return "other (stdlib, C, ...)"


def parse(raw: str) -> list[tuple[str, list[tuple[str, str]], int]]:
    """py-spy raw lines -> (thread name, [(function, file)] outermost first, samples)."""
    stacks = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        thread = parts[0].split(": ", 1)[-1] if parts[0].startswith("thread") else "?"
        frames = []
        for part in parts[1:]:
            match = FRAME.match(part)
            if match:
                frames.append((match["func"], match["file"]))
        stacks.append((thread, frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[str, list[tuple[str, str]], int]], top: int) -> dict[str, str]:
    total = sum(n for _, _, n in stacks) or 1
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    for thread, frames, n in stacks:
        threads[thread] += n
        if not frames:
            continue
        func, path = frames[-1]
        layers[layer(path)] += n
        selfs[f"{path}:{func}"] += n
        seen = {f"{p}:{f}" for f, p in frames if p.startswith("agentctl/")}
        for name in seen:
            inclusive[name] += n

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}%"

    def rows(counter: Counter[str], limit: int) -> list[list[str]]:
        return [[name, pct(n)] for name, n in counter.most_common(limit)]

    plain_only = ("agentctl/__main__.py", "agentctl/cli/")
    agentctl = Counter(
        {k: v for k, v in inclusive.items() if not k.startswith(plain_only) and "serve" not in k}
    )
    return {
        "samples": str(total),
        "threads": table(("thread", "share"), rows(threads, 5)),
        "layers": table(("innermost frame in", "share"), rows(layers, 12)),
        "agentctl": table(("agentctl function (inclusive)", "share"), rows(agentctl, top)),
        "self": table(("function (self time)", "share"), rows(selfs, top)),
        "plain": "\n\n".join(
            plain(h, r)
            for h, r in (
                (("thread", "share"), rows(threads, 5)),
                (("innermost frame in", "share"), rows(layers, 12)),
                (("agentctl function (inclusive)", "share"), rows(agentctl, top)),
                (("function (self time)", "share"), rows(selfs, top)),
            )
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("json", "sse"), default="json")
    parser.add_argument("--target", choices=("agentctl", "floor"), default="agentctl")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", help="also keep py-spy's collapsed stacks in this file")
    parser.add_argument("--policy", default=str(bench_run.DEFAULT_POLICY))
    parser.add_argument("--write", action="store_true", help="write its section of RESULTS.md")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        parser.error("py-spy not found: .venv/bin/pip install py-spy")
    server_core, load_core = cores()
    warm_bytecode()
    workdir = Path(tempfile.mkdtemp(prefix="agentctl-hotspots-"))
    opts = argparse.Namespace(
        config=str(bench_run.DEFAULT_CONFIG),
        policy=None if args.policy == "none" else Path(args.policy).resolve(),
    )
    up = simulator(free_port(), 0, workdir / "upstream.log", load_core).start()
    try:
        gw = bench_run.make_server(args.target, up.url, 0, opts, workdir, server_core)
        gw.start(timeout=120)
        try:
            url = gw.url + bench_run.CHAT
            template = load.chat_template(args.kind == "sse")
            heads = load.rotating_headers()
            common = {"template": template, "headers_list": heads, "core": load_core}
            wrk.run(url, concurrency=args.concurrency, duration=1, workdir=workdir, **common)
            out = workdir / "pyspy.txt"
            (workdir / "profile.lua").write_text(wrk.script(template, heads))
            loader = subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.concurrency}",
                    f"-d{args.seconds + 2}s",
                    "-s",
                    str(workdir / "profile.lua"),
                    url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=pinned(load_core),
            )
            time.sleep(1)
            cmd = [spy, "record", "-p", str(gw.pid), "-d", str(args.seconds), "-r"]
            cmd += [str(args.rate), "--format", "raw", "-o", str(out), "--threads"]
            cmd += ["--nonblocking"]
            subprocess.run(
                cmd, capture_output=True, timeout=args.seconds + 60, preexec_fn=pinned(load_core)
            )
            loader.wait(args.seconds + 30)
            raw = out.read_text()
            if args.raw:
                Path(args.raw).write_text(raw)
        finally:
            gw.stop()
    finally:
        up.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarise(parse(raw), args.top)
    print(f"{summary['samples']} samples\n")
    print(summary["plain"])
    if args.write:
        note = (
            f"py-spy {args.rate} Hz for {args.seconds} s, non-blocking, idle excluded; "
            f"wrk c={args.concurrency}, {args.kind.upper()}, 0 ms upstream, "
            f"policy {Path(args.policy).name}; {summary['samples']} samples.\n\n"
        )
        title = f"{args.target} profile under {args.kind.upper()} load (bench/hotspots.py)"
        tables = "\n\n".join(summary[k] for k in ("threads", "layers", "agentctl", "self"))
        name = f"profile-{args.target}-{args.kind}"
        write_section(name, header(title) + "\n" + note + tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
