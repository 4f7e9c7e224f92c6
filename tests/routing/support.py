"""Gateways with pools in front of simulators or a held upstream, and small waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from aiohttp import web

from agentctl.config import SecretRef, Upstream
from agentctl.policy import load_text
from agentctl.policy.loader import canonical_json
from agentctl.simulator import RunningSimulator
from tests.harness import GatewayHarness

PROD = "name=prod-a; owner=team-ml; purpose=production"
BATCH = "name=batch-a; owner=team-ml; purpose=batch"
STANDARD = "name=std-a; owner=team-ml; purpose=production"
LANES_POLICY = """
apiVersion: agentctl/v1
agents:
  prod-a: {lane: priority}
  batch-a: {lane: batch}
"""


def member(name: str, url: str, **kw: Any) -> Upstream:
    fields: dict[str, Any] = {
        "name": name,
        "base_url": url,
        "api_key": SecretRef.model_validate({"$env": "SIM_PROVIDER_KEY"}),
        "models": ("gpt-*",),
        **kw,
    }
    return Upstream(**fields)


def of(sim: RunningSimulator, name: str, **kw: Any) -> Upstream:
    return member(name, sim.openai_url, **kw)


async def apply_policy(gateway: GatewayHarness, text: str) -> None:
    policy = load_text(text)
    await asyncio.to_thread(
        gateway.store.apply_policy,
        policy.version,
        canonical_json(policy.document),
        ["test.yaml"],
        actor="test",
        reason="test",
    )
    await gateway.gw.refresh()


async def until(check: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait for a state change (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def chat(word: str, **extra: Any) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": word}], **extra}
    return json.dumps(body).encode()


async def post(
    gateway: GatewayHarness, word: str, identity: str = PROD, **extra: Any
) -> httpx.Response:
    headers = {"X-Agent-Identity": identity, "Content-Type": "application/json"}
    headers.update(extra.pop("headers", {}))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions", content=chat(word, **extra), headers=headers
        )


class HeldUpstream:
    """An OpenAI-shaped upstream that holds each request until the test lets it answer;
    `arrived` lists the prompts in the order the gateway sent them."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> HeldUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        word = body["messages"][0]["content"]
        gate = self.gates[word] = asyncio.Event()
        self.arrived.append(word)
        await gate.wait()
        return web.json_response(
            {
                "id": "chatcmpl-held",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        )

    def release(self, word: str) -> None:
        self.gates[word].set()

    async def close(self) -> None:
        for gate in self.gates.values():
            gate.set()
        if self.runner is not None:
            await self.runner.cleanup()
