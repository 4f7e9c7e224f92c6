"""Containment is shared: when one gateway's detectors throttle an agent, every other
gateway on the same store contains it too, so a runaway spread by a load balancer over
N gateways is let through at the throttle rate once, not N times."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from agentctl.simulator import RunningSimulator
from agentctl.trust import TrustEngine
from tests.harness import GatewayHarness

LOOPER = "name=looper; owner=team-data; purpose=batch"


async def _chat(url: str, content: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
            headers={"X-Agent-Identity": LOOPER},
        )


async def test_a_peer_contains_what_one_gateway_throttled(
    home: Path, tmp_path: Path, sim: RunningSimulator
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = GatewayHarness(tmp_path / "a", sim), GatewayHarness(tmp_path / "b", sim)
    await a.start(database=database, policy_poll_ms=50)
    await b.start(database=database, policy_poll_ms=50)
    try:
        # B has seen the agent behave: one ordinary request.
        assert (await _chat(b.url, "hello there")).status_code == 200
        # A sees the loop: one prompt over and over, until its loop detector throttles.
        statuses = [(await _chat(a.url, "run the nightly job")).status_code for _ in range(30)]
        assert 429 in statuses, statuses

        engine_b = b.gw.trust.engine
        deadline = time.monotonic() + 10
        while "contained" not in str(engine_b.explain("looper")):
            assert time.monotonic() < deadline, "B never contained the agent A throttled"
            await asyncio.sleep(0.05)

        # On B the agent now gets the containment's few tokens, then refusals, even with
        # prompts B never saw repeated. Without sharing, probation alone would serve all.
        answers = [await _chat(b.url, f"distinct task number {i}") for i in range(12)]
        served = sum(r.status_code == 200 for r in answers)
        assert served <= 3, [r.status_code for r in answers]
        refused = [r.json()["error"]["code"] for r in answers if r.status_code == 429]
        assert refused and all(code.startswith("trust-") for code in refused), refused

        # One store: A's throttle by its loop detector, B's by its peer; A does not
        # contain the agent a second time from its own shared row.
        events = [r for r in await b.records(kinds=("trust",)) if r["agent"] == "looper"]
        throttles = sorted(e["rule_id"] for e in events if e["rule_id"].startswith("throttle:"))
        assert throttles == ["throttle:loop", "throttle:peer"], events
    finally:
        await b.stop()
        await a.stop()


def test_contain_from_peer_is_idempotent_and_never_lifts_quarantine() -> None:
    now = [1_000_000.0]
    engine = TrustEngine(clock=lambda: now[0])
    first = engine.contain_from_peer("bot", "loop", origin="agentctl-trust@x")
    assert [e.kind for e in first] == ["throttle"]
    assert engine.contain_from_peer("bot", "loop", origin="agentctl-trust@y") == []
    engine.on_disable("quiet", "operator")
    assert engine.tier("quiet") == "quarantined"
    assert engine.contain_from_peer("quiet", "loop", origin="agentctl-trust@x") == []
    assert engine.tier("quiet") == "quarantined"
