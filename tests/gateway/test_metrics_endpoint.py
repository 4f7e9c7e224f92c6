"""`GET /metrics` on a real gateway: the scrape agrees with the audit records exactly."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import anthropic
import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agentctl.config import MetricsSettings, Upstream
from agentctl.money import PICO
from agentctl.simulator import RunningSimulator
from tests.gateway.support import BODY, MESSAGES, eventually, post
from tests.harness import IDENTITY, GatewayHarness, sim_upstream

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(gateway: GatewayHarness, **headers: str) -> Series:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        resp = await client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Series = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by(series: Series, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for (sample, labelset), value in series.items():
        if sample == name:
            d = dict(labelset)
            out[tuple(d[label] for label in labels)] += value
    return dict(out)


async def test_scrape_matches_the_audit_records(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    _ = [c async for c in stream]
    await client.chat.completions.create(
        model="o3-mini", messages=MESSAGES, extra_headers={"x-sim-cached-tokens": "3"}
    )
    await client.embeddings.create(model="text-embedding-3-small", input="a b c")
    claude = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="k", default_headers={"X-Agent-Identity": IDENTITY}
    )
    await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MESSAGES)
    async with httpx.AsyncClient(base_url=gateway.url) as raw:
        anonymous = await raw.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert anonymous.status_code == 401

    records = await gateway.records()
    series = await scrape(gateway)
    cost: dict[tuple[str, ...], int] = defaultdict(int)
    tokens: dict[tuple[str, ...], int] = defaultdict(int)
    for rec in records:
        if rec["agent"]:
            cost[(rec["agent"], rec["model"])] += rec["cost_pico"] or 0
            tokens[(rec["agent"], rec["model"], "input")] += rec["prompt_tokens"]
            tokens[(rec["agent"], rec["model"], "output")] += rec["completion_tokens"]
            tokens[(rec["agent"], rec["model"], "cached")] += rec["cached_tokens"]
            tokens[(rec["agent"], rec["model"], "reasoning")] += rec["reasoning_tokens"]
    exported = by(series, "agentctl_cost_usd_total", "agent", "model")
    assert exported == {key: pico / PICO for key, pico in cost.items()}
    assert all(value > 0 for value in exported.values())
    exported_tokens = by(series, "agentctl_tokens_total", "agent", "model", "type")
    assert {k: v for k, v in exported_tokens.items() if k[2] != "cache_write"} == tokens
    assert by(series, "agentctl_requests_total", "agent", "status") == {
        ("bot-a", "2xx"): 5,
        ("_none", "4xx"): 1,
    }
    assert by(series, "agentctl_refusals_total", "rule") == {("missing_agent_identity",): 1}
    assert by(series, "agentctl_request_duration_seconds_count", "agent") == {("bot-a",): 5}
    assert by(series, "agentctl_time_to_first_byte_seconds_count", "agent") == {("bot-a",): 5}
    # the scrape itself is not an audited request
    assert len(await gateway.records()) == len(records)


async def test_disabled_agent_refusals_are_counted_by_rule(gateway: GatewayHarness) -> None:
    assert (await post(gateway)).status_code == 200
    await asyncio.to_thread(
        gateway.store.set_status, "bot-a", "disabled", actor="alice", reason="loop"
    )
    await gateway.gw.refresh()
    assert (await post(gateway)).status_code == 403
    refusals = by(await scrape(gateway), "agentctl_refusals_total", "agent", "owner", "rule")
    assert refusals == {("bot-a", "team-ml", "agent_disabled"): 1}


async def test_inflight_gauge_follows_a_request(gateway: GatewayHarness) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"id": "x", "object": "chat.completion", "choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", held)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        upstream = Upstream(name="held", base_url=f"http://{host}:{port}/v1")
        await gateway.restart(upstreams=(upstream,))

        async def inflight(wanted: float) -> bool:
            return by(await scrape(gateway), "agentctl_inflight_requests").get(()) == wanted

        task = asyncio.create_task(post(gateway))
        await eventually(lambda: inflight(1), within=10)
        release.set()
        assert (await task).status_code == 200
        await eventually(lambda: inflight(0), within=10)
    finally:
        release.set()
        await runner.cleanup()


async def test_two_gateways_in_one_process_keep_separate_counts(
    gateway: GatewayHarness, tmp_path: Path
) -> None:
    other = GatewayHarness(tmp_path / "other-home", gateway.sim)
    await other.start()
    try:
        await post(gateway)
        await post(gateway)
        await post(other)
        assert by(await scrape(gateway), "agentctl_requests_total", "agent") == {("bot-a",): 2}
        assert by(await scrape(other), "agentctl_requests_total", "agent") == {("bot-a",): 1}
    finally:
        await other.stop()


@pytest.mark.slow
async def test_a_thousand_declared_names_through_the_gateway(gateway: GatewayHarness) -> None:
    await gateway.restart(metrics=MetricsSettings(max_agents=5))
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:

        async def one(i: int) -> None:
            headers = {"X-Agent-Identity": f"name=flood-{i}; owner=team-{i}; purpose=test"}
            async with sem:
                resp = await client.post("/v1/chat/completions", json=BODY, headers=headers)
            assert resp.status_code == 200

        await asyncio.gather(*(one(i) for i in range(1000)))
    series = await scrape(gateway)
    for label in ("agent", "owner"):
        values = by(series, "agentctl_requests_total", label)
        assert len(values) <= 5 + 5 + 1 and ("_other",) in values  # live + frozen + _other
        assert sum(values.values()) == 1000
    total = sum(r["cost_pico"] for r in await gateway.records())
    assert sum(by(series, "agentctl_cost_usd_total", "agent").values()) == pytest.approx(
        total / PICO, rel=1e-12
    )


async def test_metrics_can_be_switched_off(gateway: GatewayHarness) -> None:
    await gateway.restart(metrics=MetricsSettings(enabled=False))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/metrics")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_endpoint"
    assert await gateway.records() == []


async def test_admin_token_guards_the_scrape(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCTL_ADMIN_TOKEN", "adm-secret")
    await gateway.restart()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        denied = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert denied.status_code == wrong.status_code == 401
    assert denied.json()["error"]["code"] == "admin_token_required"
    await scrape(gateway, Authorization="Bearer adm-secret")


async def test_openmetrics_when_asked(gateway: GatewayHarness) -> None:
    await post(gateway)
    accept = "application/openmetrics-text; version=1.0.0"
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/metrics", headers={"Accept": accept})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


async def test_upstream_slots_queue_and_health_are_scraped(
    home: Path, sim: RunningSimulator
) -> None:
    """One slot, one slow request holding it, one waiting: the scrape shows both."""
    gateway = GatewayHarness(home, sim)
    await gateway.start(upstreams=(sim_upstream(sim, max_concurrency=1),))
    try:
        slow = asyncio.create_task(post(gateway, **{"x-sim-latency-ms": "1500"}))

        async def holding() -> bool:
            return gateway.gw.pools.members["sim"].total == 1

        await eventually(holding)
        waiting = asyncio.create_task(post(gateway, **{"x-sim-latency-ms": "0"}))

        async def queued() -> bool:
            return sum(gateway.gw.pools.queued("sim")) == 1

        await eventually(queued)
        series = await scrape(gateway)
        in_flight = by(series, "agentctl_upstream_in_flight", "upstream", "lane")
        assert in_flight[("sim", "standard")] == 1
        assert sum(in_flight.values()) == 1
        depth = by(series, "agentctl_upstream_queue_depth", "pool", "lane")
        assert depth[("sim", "standard")] == 1 and sum(depth.values()) == 1
        assert by(series, "agentctl_upstream_healthy", "upstream") == {("sim",): 1.0}
        assert (await slow).status_code == 200 and (await waiting).status_code == 200
        after = await scrape(gateway)
        assert sum(by(after, "agentctl_upstream_queue_depth", "pool", "lane").values()) == 0
        assert sum(by(after, "agentctl_upstream_in_flight", "upstream", "lane").values()) == 0
    finally:
        await gateway.stop()
