"""The gateway keeps no cookies: one upstream session carries every agent's requests,
so a cookie the provider sets on one answer (its edge's `__cf_bm`) must not ride along
on the next agent's request, nor reach the client."""

from __future__ import annotations

from pathlib import Path

import httpx

from agentctl.simulator import RunningSimulator
from tests.harness import GatewayHarness, sim_upstream

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_upstream_cookies_are_neither_kept_nor_relayed(
    home: Path, sim: RunningSimulator
) -> None:
    # A host name, not an IP: cookie jars refuse to store cookies for IP addresses.
    by_name = sim.openai_url.replace("127.0.0.1", "localhost")
    gateway = GatewayHarness(home, sim)
    await gateway.start(upstreams=(sim_upstream(sim, base_url=by_name),))
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            for name in ("bot-a", "bot-b", "bot-c"):
                identity = f"name={name}; owner=team-ml; purpose=production"
                r = await client.post(
                    "/v1/chat/completions", json=BODY, headers={"X-Agent-Identity": identity}
                )
                assert r.status_code == 200, r.text
                assert "set-cookie" not in r.headers
                assert not client.cookies
    finally:
        await gateway.stop()
    sent = [r for r in sim.state.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 3
    assert [r.headers.get("Cookie") for r in sent] == [None, None, None]
