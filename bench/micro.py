"""Per-request CPU of the pure parts of the pipeline, without any network.

    python bench/micro.py [--quick] [--write]

Each part is a zero-argument call timed like `timeit`: garbage collection off, a
batch of calls sized to take about 2 ms of CPU, repeated; p50 and p99 are over the
batches, in CPU microseconds per call (thread CPU clock: robust to a busy host).
The inputs are what the benchmark sends: the identity header (repeated, so the
parse cache hits), a chat completion body, the simulator's own 50-event SSE stream
(fetched from an in-process simulator) fed to `StreamMeter` one event per network
chunk and in one chunk, and the usage it carries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from agentctl.codec import dumps_line
from agentctl.config import Upstream
from agentctl.counters.memory import MemoryCounters
from agentctl.facts import CHAT
from agentctl.gateway.call import Call
from agentctl.gateway.directory import Directory
from agentctl.gateway.metering import StreamMeter
from agentctl.gateway.reading import extract_facts, parse_body
from agentctl.gateway.routing import Router
from agentctl.gateway.upstream import response_headers, upstream_headers
from agentctl.identity import DEFAULT_PURPOSES, parse_identity
from agentctl.policy.governor import Governor
from agentctl.policy.loader import load_text
from agentctl.pricing import Pricer
from agentctl.simulator import start_simulator
from agentctl.store.chain import record_hash
from agentctl.store.sql import Registry, Store
from agentctl.usage import Usage

PATH = "/v1/chat/completions"
IDENTITY = "name=bench-bot; owner=perf; purpose=production"
STREAM_EVENTS = 50
BENCH_POLICY = Path(__file__).resolve().parent / "policy.yaml"


def _done(coro: Any) -> Any:
    """Run a coroutine that never suspends (memory counters) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)]


def time_it(fn: Callable[[], object], repeats: int, batch_s: float = 0.002) -> dict[str, float]:
    """CPU µs per call: p50/p99 over `repeats` batches (timeit-style, gc off).

    Batches are timed with this thread's CPU clock, not the wall clock, so time the
    process spends descheduled (a busy shared host) does not count.
    """
    clock = time.thread_time
    fn()
    number = 1
    while True:
        start = clock()
        for _ in range(number):
            fn()
        if clock() - start >= batch_s or number >= 1 << 20:
            break
        number *= 2
    samples = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = clock()
            for _ in range(number):
                fn()
            samples.append((clock() - start) / number * 1e6)
    finally:
        if enabled:
            gc.enable()
    return {"p50": percentile(samples, 50), "p99": percentile(samples, 99), "n": number}


async def _fetch_stream(events: int) -> tuple[bytes, dict[str, str]]:
    """A real chat stream from the simulator with exactly `events` SSE events."""
    tokens = events - 4  # role chunk + tokens + finish chunk + usage chunk + [DONE]
    async with await start_simulator() as sim:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
            "max_tokens": 256,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"x-sim-completion-tokens": str(tokens)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(sim.openai_url + "/chat/completions", json=body, headers=headers) as r,
        ):
            return await r.read(), dict(r.headers)


def parts(stream: bytes, upstream_resp_headers: dict[str, str]) -> dict[str, Callable[[], object]]:
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Host": "127.0.0.1:8787",
                "Content-Type": "application/json",
                "Authorization": "Bearer sk-bench-client",
                "X-Agent-Identity": IDENTITY,
                "User-Agent": "OpenAI/Python 1.40.0",
                "Accept": "application/json",
                "Content-Length": "120",
            }
        )
    )
    directory = Directory(
        Registry({}, {}), mode="verify", purposes=DEFAULT_PURPOSES, gateway_key=None
    )
    raw = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
            "max_tokens": 16,
        }
    ).encode()
    upstream = Upstream(name="default", base_url="http://127.0.0.1:8500/v1")
    router = Router((upstream,))
    route = router.resolve("gpt-4o-mini", CHAT, PATH)
    assert route is not None
    pricer = Pricer()
    usage = Usage(prompt_tokens=12, completion_tokens=16)
    events = [e + b"\n\n" for e in stream.split(b"\n\n") if e.strip()]
    assert len(events) == STREAM_EVENTS, len(events)
    back = CIMultiDictProxy(CIMultiDict(upstream_resp_headers))

    governor = Governor(load_text(BENCH_POLICY.read_text(), str(BENCH_POLICY)), MemoryCounters())
    body_facts_once = extract_facts(parse_body(raw), len(raw), CHAT, PATH)

    def govern() -> object:
        identity = directory.identify(headers)
        admission = _done(
            governor.admit(
                identity,
                body_facts_once,
                price_in_pico_per_token=150_000,
                price_out_pico_per_token=600_000,
            )
        )
        return _done(governor.settle(admission, total_tokens=28, cost_pico=11_400_000))

    def identify() -> object:
        return directory.identify(headers)

    def parse_uncached() -> object:
        return parse_identity([IDENTITY], DEFAULT_PURPOSES)

    def body_facts() -> object:
        return extract_facts(parse_body(raw), len(raw), CHAT, PATH)

    def price() -> object:
        return pricer.cost(usage, "gpt-4o-mini", "openai")

    def meter_events() -> object:
        meter = StreamMeter(CHAT, hide_usage_chunk=True)
        for event in events:
            meter.feed(event)
        meter.finish()
        return meter.usage

    def meter_whole() -> object:
        meter = StreamMeter(CHAT, hide_usage_chunk=True)
        meter.feed(stream)
        meter.finish()
        return meter.usage

    def headers_out() -> object:
        return upstream_headers(headers, route, "sk-upstream", True)

    def headers_back() -> object:
        return response_headers(back)

    call = Call("req_0123456789abcdef01234567", time.time_ns() // 1000, 0.0, PATH, "127.0.0.1")
    call.identity = directory.identify(headers)
    call.facts = body_facts()  # type: ignore[assignment]
    call.usage, call.cost_pico, call.status = usage, 1234, 200

    def audit_row() -> object:
        row = call.row()
        return dumps_line({"t": "e", **row})

    row = call.row()

    def chain_hash() -> object:
        return record_hash("0" * 64, row)

    store = Store("sqlite:///" + str(Path(tempfile.mkdtemp(prefix="agentctl-micro-")) / "a.db"))
    store.migrate()
    batch = 100
    seq = itertools.count()

    def append_batch() -> object:
        rows = [{**row, "request_id": f"req_{next(seq):024x}"} for _ in range(batch)]
        return store.append_records(rows)

    return {
        "identity (Directory.identify, cache hit)": identify,
        "identify + evaluate + reserve + settle (bench policy, memory counters)": govern,
        "identity parse, no cache": parse_uncached,
        "body parse + facts": body_facts,
        "route + headers to upstream": lambda: (
            router.resolve("gpt-4o-mini", CHAT, PATH),
            headers_out(),
        ),
        "response headers back": headers_back,
        "Pricer.cost (cached rate)": price,
        f"StreamMeter, {STREAM_EVENTS} events, 1 event/chunk": meter_events,
        f"StreamMeter, {STREAM_EVENTS} events, 1 chunk": meter_whole,
        "audit row + journal line (Call.row, json)": audit_row,
        "audit chain hash (writer thread)": chain_hash,
        f"Store.append_records, {batch}-row batch (writer thread)": append_batch,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true", help="write its section of RESULTS.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import header, plain, table, write_section
    from servers import cores

    core, _ = cores()
    if core is not None:
        os.sched_setaffinity(0, {core})
    stream, resp_headers = asyncio.run(_fetch_stream(STREAM_EVENTS))
    repeats = 60 if args.quick else 300
    rows = []
    for name, fn in parts(stream, resp_headers).items():
        got = time_it(fn, repeats)
        rows.append([name, f"{got['p50']:.2f}", f"{got['p99']:.2f}", f"{got['n']:,}"])
    heads = ("part", "p50 µs/call", "p99 µs/call", "calls/batch")
    print(plain(heads, rows))
    if args.write:
        note = (
            f"{repeats} batches of ~2 ms of thread CPU time per part, gc off, pinned to CPU "
            f"{core}; p50/p99 over batches, CPU µs per call.\n\n"
        )
        body = header("Pipeline parts, CPU per call (bench/micro.py)")
        write_section("micro", body + "\n" + note + table(heads, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
