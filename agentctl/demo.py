"""`agentctl demo`: the whole product in one offline command.

A temporary home, the built-in SIMULATED upstream (no real provider is called, no key
is needed), a real gateway on a free loopback port, and a few simulated agents: a
production recommender, a nightly report job, an experiment, and one agent stuck in a
runaway loop sending the same expensive prompt twenty times a second. The live tail
shows who is spending: the looping agent is contained by trust's loop detector within
about a second (no static cap involved), the other runaway crosses its policy cost
breaker and is latched off, and the rest keep going. The run ends with a report.
Nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from agentctl.config import SecretRef, Settings, Upstream, load_settings
from agentctl.gateway.server import bind_socket, serve
from agentctl.simulator import start_simulator


@dataclass(frozen=True)
class DemoAgent:
    name: str
    owner: str
    purpose: str
    model: str
    per_second: float
    stream: bool = False
    same_prompt: bool = False
    max_tokens: int = 64


AGENTS = (
    DemoAgent("prod-recommendation-bot", "team-ml", "production", "gpt-4o-mini", 4, stream=True),
    DemoAgent("nightly-report", "team-finance", "batch", "gpt-4o-mini", 1.5),
    DemoAgent("experiment-7", "team-research", "development", "gpt-4o-mini", 1),
    # Stuck in a loop: the same prompt twenty times a second. Trust's loop detector
    # contains it within about a second, with no static caps.
    DemoAgent(
        "runaway-loop", "team-growth", "batch", "gpt-4o", 20, same_prompt=True, max_tokens=400
    ),
    # Gone wild with different prompts each time: no loop to see, so the policy's cost
    # breaker latches it off once it crosses $0.25 in the hour.
    DemoAgent("scraper-gone-wild", "team-growth", "batch", "gpt-4o", 8, max_tokens=400),
)


DEMO_POLICY = """
apiVersion: agentctl/v1
description: agentctl demo policy
defaults:
  budgets:
    day: {usd: "5"}
  breaker:
    usd_per_hour: "0.25"      # a runaway crosses this within seconds and is latched off
purposes:
  production:
    lane: priority
    breaker:
      usd_per_hour: "20"
"""


def apply_demo_policy(settings: Settings) -> str:
    from agentctl.policy import load_text
    from agentctl.policy.loader import canonical_json
    from agentctl.store.sql import Store

    policy = load_text(DEMO_POLICY, "demo-policy.yaml")
    store = Store(settings.database)
    try:
        store.migrate()
        store.apply_policy(
            policy.version,
            canonical_json(policy.document),
            ["demo-policy.yaml"],
            actor="demo",
            reason="demo setup",
        )
    finally:
        store.close()
    return policy.version


def demo_settings(home: Path, sim_url: str) -> Settings:
    upstream = Upstream(
        name="simulator",
        base_url=sim_url + "/v1",
        api_key=SecretRef.model_validate({"$env": "AGENTCTL_DEMO_UNUSED_KEY"}),
        provider="openai",
    )
    return load_settings(
        home=home,
        overrides={"host": "127.0.0.1", "port": 0, "upstreams": (upstream,)},
    )


async def _agent_loop(
    session: aiohttp.ClientSession, url: str, agent: DemoAgent, stop: asyncio.Event
) -> None:
    headers = {
        "X-Agent-Identity": f"name={agent.name}; owner={agent.owner}; purpose={agent.purpose}",
        "Authorization": "Bearer demo-client",
    }
    n = 0
    interval = 1 / agent.per_second
    next_at = time.monotonic()
    while not stop.is_set():
        n += 1
        prompt = (
            "summarise the state of the world"
            if agent.same_prompt
            else f"{agent.name} task {n}: list ideas"
        )
        body = {
            "model": agent.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": agent.max_tokens,
            "stream": agent.stream,
        }
        sim = {"x-sim-completion-tokens": str(agent.max_tokens)}
        try:
            async with session.post(url, data=json.dumps(body), headers={**headers, **sim}) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        else:
            next_at = time.monotonic()


async def run_demo(
    seconds: float,
    *,
    on_ready: Callable[[Settings, str], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
    home: Path | None = None,
) -> Settings:
    """Run the scenario; returns the settings (its home holds the audit database)."""
    tmp = None
    if home is None:
        tmp = tempfile.mkdtemp(prefix="agentctl-demo-")
        home = Path(tmp)
    sim = await start_simulator()
    settings = demo_settings(home, sim.url)
    await asyncio.to_thread(apply_demo_policy, settings)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    gateway_stop = asyncio.Event()
    ready = asyncio.Event()
    server = asyncio.create_task(
        serve(settings, sock=sock, stop=gateway_stop, on_ready=lambda _url: ready.set())
    )
    try:
        await asyncio.wait_for(ready.wait(), 15)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        if on_ready is not None:
            on_ready(settings, url)
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(_agent_loop(session, url, a, stop)) for a in AGENTS]
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                if on_tick is not None:
                    await asyncio.to_thread(on_tick, elapsed)
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        gateway_stop.set()
        await asyncio.gather(server, return_exceptions=True)
        await sim.close()
    return settings


def summary(settings: Settings) -> dict[str, Any]:
    from agentctl.reports import ReportQuery, build_report
    from agentctl.store.sql import Store

    store = Store(settings.database)
    try:
        return build_report(store, ReportQuery())
    finally:
        store.close()
