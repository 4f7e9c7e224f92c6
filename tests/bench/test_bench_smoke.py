"""Smoke tests for the benchmark tools: they run, count and proxy. No throughput limits."""

from __future__ import annotations

from aiohttp import web

from agentctl.simulator import RunningSimulator
from bench import floor_proxy, load


async def test_load_generator_counts_json_requests(sim: RunningSimulator) -> None:
    result = await load.run(sim.openai_url + "/chat/completions", concurrency=4, duration=1.0)

    assert result.requests > 0
    assert result.ok == result.requests == sim.state.received
    assert result.errors == 0
    summary = result.summary()
    assert summary["p50_ms"] is not None and summary["p99_ms"] >= summary["p50_ms"]
    assert summary["ttfb_p50_ms"] is None  # only streams have a first byte to report


async def test_load_generator_measures_stream_ttfb(sim: RunningSimulator) -> None:
    result = await load.run(
        sim.openai_url + "/chat/completions", concurrency=2, duration=1.0, stream=True
    )

    assert result.ok > 0
    assert len(result.ttfbs) == result.ok
    assert all(t <= lat for t, lat in zip(result.ttfbs, result.latencies, strict=True))


async def test_load_generator_stops_at_max_requests(sim: RunningSimulator) -> None:
    result = await load.run(
        sim.openai_url + "/chat/completions", concurrency=3, duration=5.0, max_requests=7
    )

    assert result.requests == 7 == sim.state.received


async def test_floor_proxy_relays_to_the_upstream(sim: RunningSimulator) -> None:
    runner = web.AppRunner(floor_proxy.create_app(sim.url), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        url = f"http://{host}:{port}/v1/chat/completions"
        json_result = await load.run(url, concurrency=2, duration=0.5)
        sse_result = await load.run(url, concurrency=2, duration=0.5, stream=True)
    finally:
        await runner.cleanup()

    assert json_result.ok > 0 and sse_result.ok > 0
    assert json_result.errors == sse_result.errors == 0
    assert sim.state.received == json_result.requests + sse_result.requests
