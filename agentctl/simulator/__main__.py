"""`python -m agentctl.simulator`: a simulated upstream in its own process.

Prints exactly one line, the base URL (no `/v1`), once it is listening, then serves until
SIGTERM or SIGINT and exits 0. Request recording is off unless `--record` is given: a
benchmark process would otherwise keep every body it ever received.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from agentctl.simulator.behaviour import SimulatorConfig
from agentctl.simulator.server import start_simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agentctl.simulator",
        description="Simulated OpenAI/Anthropic-compatible upstream (never calls a provider).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--completion-tokens", type=int, default=16)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--api-key", default=None, help="require this upstream key")
    parser.add_argument(
        "--models", nargs="+", default=None, help="model ids for /v1/models (or comma-separated)"
    )
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> SimulatorConfig:
    config = SimulatorConfig(
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        completion_tokens=args.completion_tokens,
        max_concurrency=args.max_concurrency,
        api_key=args.api_key,
        record_requests=args.record,
    )
    if args.models:
        config.models = [m for arg in args.models for m in arg.split(",") if m]
    return config


async def serve(args: argparse.Namespace) -> None:
    simulator = await start_simulator(args.host, args.port, configure(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(simulator.url, flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.close()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
