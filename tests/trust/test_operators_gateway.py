"""Credentials and trust overrides through a running gateway: rotate, revoke, identity
mismatch strikes, pins, rebaseline, and enable landing in probation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import openai
import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from tests.harness import GatewayHarness

runner = CliRunner()
MSG = [{"role": "user", "content": "status report please"}]


async def cli(*args: str) -> object:
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    assert result.exit_code == 0, result.output
    return result


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.5) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "not in effect in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def register(name: str, owner: str = "team-ml") -> str:
    out = await cli(
        "agents", "register", name, "--owner", owner, "--purpose", "production", "--json"
    )
    return json.loads(out.output)["token"]


async def test_rotate_with_and_without_grace(gateway: GatewayHarness) -> None:
    old = await register("bot-r")
    await gateway.gw.refresh()
    await gateway.aclient(None, key=old).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    out = await cli("agents", "rotate", "bot-r", "--grace", "1h", "--json")
    new = json.loads(out.output)["token"]
    await gateway.gw.refresh()
    for token in (old, new):  # both work during the grace period
        await gateway.aclient(None, key=token).chat.completions.create(
            model="gpt-4o-mini", messages=MSG
        )
    await cli("agents", "rotate", "bot-r", "--grace", "0")
    await gateway.gw.refresh()
    for token in (old, new):
        with pytest.raises(openai.AuthenticationError) as err:
            await gateway.aclient(None, key=token, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MSG
            )
        assert err.value.code == "invalid_agent_token"


async def test_revoke_takes_effect_on_the_running_gateway(gateway: GatewayHarness) -> None:
    token = await register("bot-v")
    await gateway.gw.refresh()
    client = gateway.aclient(None, key=token, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await cli("agents", "revoke", "bot-v", "--reason", "leaked in a log")

    async def refused() -> bool:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except openai.AuthenticationError:
            return True
        return False

    await eventually(refused)


async def test_mismatch_strikes_revoke_the_token_not_the_victim(gateway: GatewayHarness) -> None:
    thief = await register("bot-thief", owner="team-x")
    await register("bot-victim")
    await gateway.gw.refresh()
    liar = gateway.aclient(
        "name=bot-victim; owner=team-ml; purpose=production", key=thief, max_retries=0
    )
    codes = []
    for _ in range(5):
        try:
            await liar.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except openai.APIStatusError as exc:
            codes.append(exc.code)
    assert codes == ["identity_mismatch"] * 5

    async def revoked() -> bool:  # the fifth strike revokes the credential
        try:
            await liar.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except openai.APIStatusError as exc:
            return exc.code == "invalid_agent_token"
        return False

    await eventually(revoked)
    records = await gateway.records()
    mismatches = [r for r in records if r["rule_id"] == "identity_mismatch"]
    assert len(mismatches) >= 5  # more may slip in before the revocation propagates
    assert {r["agent"] for r in mismatches} == {"bot-thief"}  # the token's agent, not the victim
    assert not [r for r in records if r["agent"] == "bot-victim"]
    events = await gateway.records(kinds=("trust",))
    assert {e["agent"] for e in events} == {"bot-thief"}
    assert gateway.gw.trust.engine.tier("bot-victim") == "probation"  # untouched
    revokes = await gateway.records(kinds=("revoke",))
    assert len(revokes) == 1 and revokes[0]["agent"] == "bot-thief"


async def test_pin_unpin_rebaseline_reach_the_gateway(gateway: GatewayHarness) -> None:
    token = await register("bot-p")
    await gateway.gw.refresh()
    client = gateway.aclient(None, key=token)

    async def tier() -> str:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG
        )
        return raw.headers["x-agentctl-trust-tier"]

    assert await tier() == "probation"
    await cli("trust", "pin", "bot-p", "--tier", "standard", "--reason", "vetted", "--ttl", "1h")

    async def pinned() -> bool:
        return await tier() == "standard"

    await eventually(pinned)
    await cli("trust", "unpin", "bot-p", "--reason", "done")
    await cli("trust", "rebaseline", "bot-p", "--reason", "new workload")
    await gateway.gw.refresh()
    assert gateway.gw.trust.engine.explain("bot-p")["pin"] is None
    events = await gateway.records(kinds=("trust_pin", "trust_unpin", "trust_rebaseline"))
    assert [(e["kind"], e["reason"]) for e in events] == [
        ("trust_pin", "vetted"),
        ("trust_unpin", "done"),
        ("trust_rebaseline", "new workload"),
    ]
    operator = [json.loads(e["detail"]) for e in await gateway.records(kinds=("trust",))]
    assert any(e["kind"] == "operator" for e in operator)


async def test_an_override_of_a_declared_agent_names_it_in_the_audit(
    gateway: GatewayHarness,
) -> None:
    # Regression: pin/unpin/rebaseline of an agent that was never registered (only
    # declared in its requests) were audited with agent "" (the name only in `detail`).
    client = gateway.aclient("name=looper; owner=team-x; purpose=batch")
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await gateway.flush()
    await cli("trust", "pin", "looper", "--tier", "standard", "--reason", "vetted")
    await cli("trust", "unpin", "ghost", "--reason", "never seen")
    events = await gateway.records(kinds=("trust_pin", "trust_unpin"))
    assert [(e["agent"], e["owner"], e["purpose"]) for e in events] == [
        ("looper", "team-x", "batch"),
        ("ghost", "", ""),
    ]


async def test_pin_rejects_unknown_tier(gateway: GatewayHarness) -> None:
    result = await asyncio.to_thread(
        runner.invoke, app, ["trust", "pin", "x", "--tier", "gold", "--reason", "r"]
    )
    assert result.exit_code == 2 and "unknown tier" in result.output


async def test_enable_after_disable_lands_in_probation(gateway: GatewayHarness) -> None:
    token = await register("bot-e")
    await gateway.gw.refresh()
    client = gateway.aclient(None, key=token)
    await cli("trust", "pin", "bot-e", "--tier", "standard", "--reason", "vetted")
    await gateway.gw.refresh()
    await cli("agents", "disable", "bot-e", "--reason", "incident")
    await gateway.gw.refresh()
    await cli("agents", "enable", "bot-e", "--reason", "fixed")
    await gateway.gw.refresh()
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-agentctl-trust-tier"] == "probation"
