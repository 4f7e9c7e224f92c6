"""A bounded async HTTP load generator: fixed concurrency, a deadline, a request cap.

The fallback when `wrk` is not installed, and the only generator that sees *time to
first byte* of a stream (wrk only sees whole responses). Each of `concurrency`
workers sends POSTs back to back on its own keep-alive connection until the
deadline or `max_requests`; every request records its latency (send to last byte)
and, for streams, its time to the first body chunk. Percentiles are computed from
every sample, not from buckets.

    python bench/load.py http://127.0.0.1:8500/v1/chat/completions -c 32 -d 5 --stream

Each request carries its own prompt (a distinct word: the trust loop detector would
rightly block one agent repeating one prompt thousands of times) and the default
traffic rotates through 16 agent identities.

A Python client costs far more CPU per request than wrk, so on two cores it, not the
server, is the bottleneck at high request rates: use it for latency and TTFB at a
bounded rate (50 ms upstream latency), and wrk for throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

IDENTITY = "name=bench-bot; owner=perf; purpose=production"
AGENTS = 16  # identities the default traffic rotates through
PLACEHOLDER = "@@WORD@@"


def identity(k: int) -> str:
    return f"name=bench-bot-{k % AGENTS:02d}; owner=perf; purpose=production"


def word(n: int, letters: int = 5) -> str:
    """A distinct lowercase word per request number.

    The trust loop detector masks digits, so a counter in the prompt would still look
    like one agent repeating itself (and get `trust-loop-blocked`); letters do not.
    """
    out = []
    for _ in range(letters):
        out.append(chr(97 + n % 26))
        n //= 26
    return "".join(out)


def chat_template(stream: bool) -> str:
    """The request body with PLACEHOLDER where each request's word goes."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Say hello to the benchmark, {PLACEHOLDER}."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body)


def chat_body(stream: bool, n: int = 0) -> bytes:
    return chat_template(stream).replace(PLACEHOLDER, word(n)).encode()


def default_headers(identity: str | None = IDENTITY) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-client"}
    if identity:
        headers["X-Agent-Identity"] = identity
    return headers


def rotating_headers() -> list[dict[str, str]]:
    return [default_headers(identity(k)) for k in range(AGENTS)]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(round(q / 100 * len(sorted_values) + 0.5) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


@dataclass
class LoadResult:
    requests: int = 0  # completed, any status
    ok: int = 0  # 2xx with a fully read body
    errors: int = 0  # connection errors and timeouts
    elapsed: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, 2xx only
    ttfbs: list[float] = field(default_factory=list)  # seconds, streams, 2xx only

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ttfb = sorted(self.ttfbs)

        def ms(value: float | None) -> float | None:
            return round(value * 1000, 3) if value is not None else None

        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "non_2xx": sum(n for s, n in self.statuses.items() if not 200 <= s < 300),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            "p50_ms": ms(percentile(lat, 50)),
            "p90_ms": ms(percentile(lat, 90)),
            "p99_ms": ms(percentile(lat, 99)),
            "ttfb_p50_ms": ms(percentile(ttfb, 50)),
            "ttfb_p99_ms": ms(percentile(ttfb, 99)),
        }


Traffic = Callable[[int], tuple[bytes, dict[str, str]]]


def varied(stream: bool, headers_list: list[dict[str, str]] | None = None) -> Traffic:
    """Request n: its own prompt word, identities in rotation."""
    template = chat_template(stream)
    sets = headers_list or rotating_headers()
    offset = random.randrange(26**5)  # successive runs do not replay the same prompts

    def make(n: int) -> tuple[bytes, dict[str, str]]:
        return template.replace(PLACEHOLDER, word(offset + n)).encode(), sets[n % len(sets)]

    return make


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    traffic: Traffic,
    stream: bool,
    deadline: float,
    budget: list[int],
    result: LoadResult,
) -> None:
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        body, headers = traffic(budget[0])
        start = time.perf_counter()
        ttfb = None
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if stream:
                    first = await resp.content.readany()
                    ttfb = time.perf_counter() - start
                    while first:
                        first = await resp.content.readany()
                else:
                    await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            result.errors += 1
            continue
        end = time.perf_counter()
        result.requests += 1
        result.statuses[status] += 1
        if 200 <= status < 300:
            result.ok += 1
            result.latencies.append(end - start)
            if ttfb is not None:
                result.ttfbs.append(ttfb)


async def run(
    url: str,
    *,
    concurrency: int = 32,
    duration: float = 5.0,
    max_requests: int = 1_000_000,
    stream: bool = False,
    traffic: Traffic | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Drive `url` with `concurrency` workers for `duration` seconds (or `max_requests`).

    `traffic(n)` gives request n's body and headers; by default every request has its
    own prompt and the identities rotate (see `varied`)."""
    traffic = traffic or varied(stream)
    result = LoadResult()
    budget = [max_requests]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(
        connector=connector, timeout=client_timeout, auto_decompress=False
    ) as session:
        start = time.perf_counter()
        deadline = start + duration
        workers = [
            _worker(session, url, traffic, stream, deadline, budget, result)
            for _ in range(concurrency)
        ]
        # The hard bound: a worker stuck on a hung server cannot outlive this.
        try:
            async with asyncio.timeout(duration + timeout):
                await asyncio.gather(*workers)
        except TimeoutError:
            result.errors += 1
        result.elapsed = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-n", "--max-requests", type=int, default=1_000_000)
    parser.add_argument("--stream", action="store_true", help="send stream: true, measure TTFB")
    parser.add_argument(
        "--identity", default=None, help="one X-Agent-Identity ('' omits it; default: rotate)"
    )
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args(argv)
    if args.identity is None:
        headers_list = rotating_headers()
    else:
        headers_list = [default_headers(args.identity or None)]
    for line in args.header:
        name, _, value = line.partition(":")
        for headers in headers_list:
            headers[name.strip()] = value.strip()
    try:  # the client's own overhead is not what we measure
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            run(
                args.url,
                concurrency=args.concurrency,
                duration=args.duration,
                max_requests=args.max_requests,
                stream=args.stream,
                traffic=varied(args.stream, headers_list),
            )
        )
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
