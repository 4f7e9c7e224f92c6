"""A real gateway on a loopback port in front of the simulator, for integration tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
from aiohttp import web

from agentctl.config import SecretRef, Settings, Upstream, load_settings
from agentctl.gateway.app import create_app
from agentctl.gateway.keys import GATEWAY
from agentctl.gateway.listener import GatewayRunner
from agentctl.gateway.runtime import Gateway
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store

IDENTITY = "name=bot-a; owner=team-ml; purpose=production"


def sim_upstream(sim: RunningSimulator, **kw: Any) -> Upstream:
    fields: dict[str, Any] = {
        "name": "sim",
        "base_url": sim.openai_url,
        "api_key": SecretRef.model_validate({"$env": "SIM_PROVIDER_KEY"}),
        **kw,
    }
    return Upstream(**fields)


class GatewayHarness:
    def __init__(self, home: Path, sim: RunningSimulator | None) -> None:
        self.home = home
        self.sim = sim
        self.runner: web.AppRunner | None = None  # a GatewayRunner, as `serve` uses
        self.url = ""
        self.settings: Settings | None = None

    def make_settings(self, **overrides: Any) -> Settings:
        if "upstreams" not in overrides and self.sim is not None:
            overrides["upstreams"] = (
                sim_upstream(
                    self.sim,
                    name="sim-anthropic",
                    models=("claude-*",),
                    provider="anthropic",
                    api="anthropic",
                    auth="x-api-key",
                ),
                sim_upstream(self.sim),
            )
        return load_settings(home=self.home, overrides=overrides)

    async def start(self, settings: Settings | None = None, **overrides: Any) -> str:
        self.settings = settings or self.make_settings(**overrides)
        self.app = create_app(self.settings)
        self.runner = GatewayRunner(self.app, access_log=None, shutdown_timeout=2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def restart(self, **overrides: Any) -> str:
        await self.stop()
        return await self.start(**overrides)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def gw(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def store(self) -> Store:
        return self.gw.store

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(
        self, identity: str | None = IDENTITY, key: str = "sk-client", **kw: Any
    ) -> openai.OpenAI:
        headers = {"X-Agent-Identity": identity} if identity else {}
        return openai.OpenAI(base_url=self.base_url, api_key=key, default_headers=headers, **kw)

    def aclient(
        self, identity: str | None = IDENTITY, key: str = "sk-client", **kw: Any
    ) -> openai.AsyncOpenAI:
        headers = {"X-Agent-Identity": identity} if identity else {}
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key, default_headers=headers, **kw
        )

    async def flush(self) -> None:
        ok = await asyncio.to_thread(self.gw.recorder.wait_idle, 10)
        assert ok, "audit recorder did not drain"

    async def records(self, kinds: tuple[str, ...] | None = ("request",)) -> list[dict[str, Any]]:
        await self.flush()
        return await asyncio.to_thread(self.store.records_after, 0, limit=100000, kinds=kinds)
