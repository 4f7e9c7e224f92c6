"""The headline incident through a real `agentctl serve`: a nightly bot loops at
19 calls/s with identical prompts beside three normal agents, with no static caps.
The loop is contained within seconds for cents, the others are untouched, the loop
that goes on after throttling is disabled, and `trust explain` plus the audit tell it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from agentctl.money import from_pico
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store
from tests.procs import GatewayProcess, agentctl

pytestmark = pytest.mark.slow

LOOP = "name=nightly-bot; owner=team-data; purpose=batch"
NORMAL = [
    "name=prod-recommender; owner=team-ml; purpose=production",
    "name=support-bot; owner=team-cx; purpose=production",
    "name=weekly-digest; owner=team-data; purpose=batch",
]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()  # noqa: SIM905


async def _post(client: httpx.AsyncClient, identity: str, content: str, tokens: int) -> int:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
    }
    headers = {"X-Agent-Identity": identity, "x-sim-completion-tokens": str(tokens)}
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    return resp.status_code


async def test_headline_loop_is_contained_without_static_caps(
    home: Path, sim: RunningSimulator
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "agentctl.yaml"
    # no policy at all; only the persistence window is compressed (120 s -> 3 s)
    config.write_text("trust:\n  params:\n    loop_persist_s: 3\n")
    gw = GatewayProcess(
        ["--upstream", sim.openai_url, "--upstream-key-env", "SIM_PROVIDER_KEY",
         "--config", str(config)],
        home,
    )  # fmt: skip
    statuses: dict[str, list[int]] = {"loop": [], **{n: [] for n in NORMAL}}
    try:
        await asyncio.to_thread(gw.wait_ready)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            stop = time.monotonic() + 9

            async def loop() -> None:
                while time.monotonic() < stop:  # ~19 calls/s, identical, ~$0.01 each
                    statuses["loop"].append(
                        await _post(client, LOOP, "compile the nightly report", 1000)
                    )
                    await asyncio.sleep(1 / 19)

            async def normal(identity: str) -> None:
                n = 0
                while time.monotonic() < stop:
                    n += 1
                    words = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(n % 5 + 2))
                    statuses[identity].append(await _post(client, identity, words, 50))
                    await asyncio.sleep(1.0)

            await asyncio.gather(loop(), *(normal(i) for i in NORMAL))
    finally:
        code = await asyncio.to_thread(gw.stop, signal.SIGTERM)
    assert code == 0, gw.output()

    loop_statuses = statuses["loop"]
    assert len(loop_statuses) > 100  # the loop really ran at ~19/s for 9 s
    served_loop = loop_statuses.count(200)
    assert served_loop <= 25, loop_statuses[:40]  # contained after ~20 identical prompts
    assert 429 in loop_statuses and 403 in loop_statuses  # throttled, then disabled
    for identity in NORMAL:
        assert set(statuses[identity]) == {200}, (identity, statuses[identity])

    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    records = store.records_after(0, limit=100_000, kinds=("request",), agent="nightly-bot")
    spent = from_pico(sum(r["cost_pico"] or 0 for r in records))
    assert spent < 2  # the headline target: about a dollar, not $4,700
    assert spent < from_pico(sum(1 for r in records) * 10**10)  # far below uncontained
    rules = {r["rule_id"] for r in records if r["outcome"] == "refused"}
    assert "trust-loop-blocked" in rules
    assert rules & {"agent_disabled", "trust-quarantined"}

    trust_events = [json.loads(e["detail"]) for e in store.records_after(
        0, limit=1000, kinds=("trust",), agent="nightly-bot")]  # fmt: skip
    kinds = [(e["kind"], e["detector"]) for e in trust_events]
    assert ("throttle", "loop") in kinds and ("disable", "loop") in kinds
    throttle = next(e for e in trust_events if e["kind"] == "throttle")
    assert throttle["value"] >= throttle["threshold"] and throttle["request_id"]
    agent = store.get_agent("nightly-bot")
    assert agent.status == "disabled" and agent.status_actor == "agentctl-trust"
    for name in ("prod-recommender", "support-bot", "weekly-digest"):
        assert not store.records_after(0, kinds=("trust",), agent=name) or all(
            json.loads(e["detail"])["kind"] not in ("throttle", "disable")
            for e in store.records_after(0, kinds=("trust",), agent=name)
        )

    env = {"AGENTCTL_HOME": str(home)}
    explained = await asyncio.to_thread(
        agentctl, "trust", "explain", "nightly-bot", "--json", env=env
    )
    assert explained.returncode == 0, explained.stderr
    view = json.loads(explained.stdout)
    assert view["tier"] == "quarantined"
    assert "loop" in view["summary"]
    assert view["status"]["by"] == "agentctl-trust"
    assert any(e["detector"] == "loop" for e in view["audit_events"])
    human = await asyncio.to_thread(agentctl, "trust", "explain", "nightly-bot", env=env)
    assert "agentctl agents enable nightly-bot" in human.stdout
    # Read by a person: rates and scores to 4 significant digits, not 0.30000000000000004
    assert human.stdout.count("detectors:") == 1
    detectors = human.stdout.split("detectors:")[1]
    for number in re.findall(r"\d+\.\d+", detectors):
        whole, decimals = number.split(".")
        if int(whole) >= 1000:  # a time in epoch seconds: to a tenth
            assert len(decimals) == 1, (number, detectors)
        else:
            assert len((whole + decimals).lstrip("0")) <= 4, (number, detectors)
