"""Three gateway processes on one PostgreSQL and one Redis act as one gateway: one rate
limit (not three), one budget, one kill switch, one audit trail."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentctl.money import to_pico
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store
from tests.procs import GatewayProcess, agentctl

pytestmark = pytest.mark.slow
BUDGET = "0.0002"
POLICY = f"""
apiVersion: agentctl/v1
agents:
  probe-bot:
    models: {{allow: ["no-such-model"]}}
  rpm-bot:
    rate: {{rpm: 60}}
  usd-bot:
    budgets:
      day: {{usd: "{BUDGET}"}}
"""


_prompts = iter(range(10**9))


async def chat(client: httpx.AsyncClient, url: str, agent: str) -> tuple[int, dict[str, Any]]:
    # A distinct prompt each time: one prompt repeated 180 times is a loop, and trust
    # would (rightly) block it before the rate limit had its say.
    prompt = f"one two three {next(_prompts)}"
    resp = await client.post(
        url + "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 16,
        },
        headers={
            "Authorization": "Bearer sk-client",
            "X-Agent-Identity": f"name={agent}; owner=team-scale; purpose=production",
        },
    )
    return resp.status_code, resp.json()


def error_codes(results: list[tuple[int, dict[str, Any]]]) -> set[str]:
    return {body["error"]["code"] for status, body in results if status != 200}


async def audit_rows(store: Store, agent: str, expected: int) -> list[dict[str, Any]]:
    """Every gateway's recorder writes to the one store; wait for them to catch up."""
    for _ in range(200):
        rows = await asyncio.to_thread(store.records_after, 0, limit=10_000, agent=agent)
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} audit records for {agent}, expected {expected}")


async def test_three_gateways_enforce_one_set_of_limits(
    tmp_path: Path, sim: RunningSimulator, migrated_pg: str, redis_url: str
) -> None:
    policy = tmp_path / "scale.yaml"
    policy.write_text(POLICY)
    # These agents are unregistered (unverified): trust would run them at probation,
    # a quarter of the policy's rates. This test is about shared counters: trust off.
    config = tmp_path / "agentctl.yaml"
    config.write_text("trust: {enabled: false}\n")
    env = {"AGENTCTL_COUNTERS": redis_url}  # the CLI announces changes on the Redis feed
    args = ["--config", str(config), "--db", migrated_pg, "--counters", redis_url,
            "--upstream", sim.openai_url,
            "--upstream-key-env", "SIM_PROVIDER_KEY"]  # fmt: skip
    gateways = [GatewayProcess(args, tmp_path / f"home-{i}") for i in range(3)]
    store = Store(migrated_pg)
    try:
        applied, *_ = await asyncio.gather(
            asyncio.to_thread(
                agentctl, "policy", "apply", str(policy), "--db", migrated_pg, env=env
            ),
            *(asyncio.to_thread(g.wait_ready, 90) for g in gateways),
        )
        assert applied.returncode == 0, applied.stderr
        urls = [g.url for g in gateways]
        limits = httpx.Limits(max_connections=240, max_keepalive_connections=240)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def policy_in_force(url: str) -> None:  # probe-bot is refused under it
                while (await chat(client, url, "probe-bot"))[0] != 403:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(asyncio.gather(*map(policy_in_force, urls)), 30)
            warm = await asyncio.gather(*(chat(client, url, "kill-bot") for url in urls))
            assert [status for status, _ in warm] == [200, 200, 200]

            # 60 requests per minute, 180 requests spread over three gateways at once.
            started = time.monotonic()
            burst = await asyncio.gather(
                *(chat(client, urls[i % 3], "rpm-bot") for i in range(180))
            )
            elapsed = time.monotonic() - started
            admitted = sum(status == 200 for status, _ in burst)
            assert error_codes(burst) == {"rate-limit-rpm"}
            # The bucket refills one request per second: a burst lasting `elapsed` seconds
            # may see that many more; a per-process limit would have admitted 180.
            assert 60 <= admitted <= 60 + int(elapsed), (admitted, elapsed)

            # A USD budget with max_tokens set: reservations are shared, spend never exceeds.
            spend = await asyncio.gather(*(chat(client, urls[i % 3], "usd-bot") for i in range(90)))
            assert error_codes(spend) == {"daily-budget-exceeded"}
            served = [r for r in await audit_rows(store, "usd-bot", 90) if r["outcome"] == "served"]
            assert len(served) == sum(status == 200 for status, _ in spend) > 0
            assert sum(r["cost_pico"] for r in served) <= to_pico(BUDGET)

            # One kill switch: every gateway refuses the agent within a second.
            done = await asyncio.to_thread(
                agentctl, "agents", "disable", "kill-bot", "--reason", "scale test",
                "--db", migrated_pg, env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            switched = time.monotonic()

            async def refused_after(url: str) -> float:
                while time.monotonic() - switched < 5:
                    status, body = await chat(client, url, "kill-bot")
                    if status == 403:
                        assert body["error"]["code"] == "agent_disabled"
                        return time.monotonic() - switched
                    await asyncio.sleep(0.02)
                raise AssertionError(f"{url} still serves a disabled agent")

            delays = await asyncio.gather(*(refused_after(url) for url in urls))
            assert max(delays) < 1.5, delays

        # One audit trail: every request from every gateway, on one contiguous chain.
        rows = await audit_rows(store, "rpm-bot", 180)
        assert len(rows) == 180 and sum(r["outcome"] == "served" for r in rows) == admitted
        everything = await asyncio.to_thread(store.records_after, 0, limit=100_000, kinds=None)
        assert [r["id"] for r in everything] == list(range(1, len(everything) + 1))
    finally:
        codes = await asyncio.gather(*(asyncio.to_thread(g.stop, signal.SIGTERM) for g in gateways))
        store.close()
    assert codes == [0, 0, 0], [g.output()[-2000:] for g in gateways]
