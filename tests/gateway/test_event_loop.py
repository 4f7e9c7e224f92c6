"""Nothing on the request path blocks the event loop (asyncio debug mode watches).

With debug mode on, asyncio logs `Executing <Handle ...> took N seconds` for every
callback or task step that holds the loop longer than `slow_callback_duration`: a
synchronous database call, a file read, a lock wait or a big computation in the
pipeline would show up here. Requests run under the benchmark's full-governance
policy (every check, reservation, detector and the audit journal) so every step of
the pipeline runs at least once, the first request (cold caches) included.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.test_policy import apply
from tests.harness import IDENTITY, GatewayHarness

BENCH_POLICY = Path(__file__).resolve().parents[2] / "bench" / "policy.yaml"
SLOW_S = 0.1


async def test_request_path_never_blocks_the_loop(
    gateway: GatewayHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await apply(gateway, BENCH_POLICY.read_text())
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.slow_callback_duration = SLOW_S
    loop.set_debug(True)
    try:
        async with aiohttp.ClientSession(headers={"X-Agent-Identity": IDENTITY}) as client:
            for n, stream in enumerate((False, True, False, True)):
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"request number {'abcd'[n]}"}],
                    "stream": stream,
                }
                async with client.post(gateway.base_url + "/chat/completions", json=body) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
            async with client.post(gateway.base_url + "/chat/completions", json={}) as r:
                assert r.status == 400  # a refusal takes the error path, also journaled
        records = await gateway.records()
    finally:
        loop.set_debug(False)
    assert len(records) == 5
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and " took " in r.msg]
    assert not slow, "the event loop was blocked:\n" + "\n".join(slow)
