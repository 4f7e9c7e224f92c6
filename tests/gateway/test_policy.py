"""Policies through the real gateway and the official SDK: budgets under concurrency,
restarts, model access, rate limits, refusals the SDK understands, breaker, shadow."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from agentctl.money import to_pico
from agentctl.policy import load_text
from agentctl.policy.loader import canonical_json
from tests.harness import GatewayHarness

MSG = [{"role": "user", "content": "one two three four five"}]
A = "name=bot-a; owner=team-ml; purpose=production"
B = "name=bot-b; owner=team-ml; purpose=production"
C = "name=bot-c; owner=team-ops; purpose=production"


async def apply(gateway: GatewayHarness, text: str) -> str:
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
    return policy.version


async def test_64_concurrent_requests_never_overspend(gateway: GatewayHarness) -> None:
    budget = "0.0002"
    await apply(
        gateway,
        f"""
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      day: {{usd: "{budget}"}}
""",
    )
    client = gateway.aclient(A, max_retries=0)
    counter = iter(range(10_000))

    async def one() -> str:
        # distinct prompts (same size): identical ones would be a loop for the trust engine
        # (which masks digits, so the distinguishing word is made of letters)
        n = next(counter)
        word = "".join(chr(97 + (n // 26**i) % 26) for i in range(3))
        messages = [{"role": "user", "content": f"one two three four {word}"}]
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, max_tokens=16
            )
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.code == "daily-budget-exceeded"
            assert exc.response.headers["x-should-retry"] == "false"
            return "refused"

    results = await asyncio.gather(*(one() for _ in range(64)))
    records = await gateway.records()
    served = [r for r in records if r["outcome"] == "served"]
    assert len(records) == 64
    assert results.count("ok") == len(served) > 0
    assert results.count("refused") > 0
    assert sum(r["cost_pico"] for r in served) <= to_pico(budget)
    # Refunds after the burst leave room: spend it sequentially until refused. The
    # ceiling is then tight: what is left is less than one worst-case reservation.
    while await one() == "ok":
        pass
    records = await gateway.records()
    served = [r for r in records if r["outcome"] == "served"]
    spent = sum(r["cost_pico"] for r in served)
    assert spent <= to_pico(budget)
    assert to_pico(budget) - spent < max(r["reserved_pico"] for r in served)
    refused = [r for r in records if r["outcome"] == "refused"]
    assert {r["rule_id"] for r in refused} == {"daily-budget-exceeded"}


async def test_prompts_that_tokenize_badly_cannot_overspend(gateway: GatewayHarness) -> None:
    """Regression (new-user trial): reservations used bytes/3 as the input estimate, and
    a prompt of one-letter words (one token per two bytes) overspent a daily budget by
    29% under concurrency. The reservation is now a bound no tokenizer exceeds."""
    budget = "0.05"
    await apply(
        gateway,
        f"""
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      day: {{usd: "{budget}"}}
""",
    )
    client = gateway.aclient(A, max_retries=0)

    async def one(i: int) -> str:
        word = "".join(chr(97 + (i // 26**k) % 26) for k in range(3))
        content = f"{word} " + "a " * 1500  # ~1,500 tokens in 3,000 bytes
        try:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": content}], max_tokens=16
            )
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.code == "daily-budget-exceeded"
            return "refused"

    results = await asyncio.gather(*(one(i) for i in range(40)))
    served = [r for r in await gateway.records() if r["outcome"] == "served"]
    assert results.count("ok") == len(served) > 0 and "refused" in results
    assert sum(r["cost_pico"] for r in served) <= to_pico(budget)


async def test_usage_survives_restart(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      day: {requests: 3}
""",
    )
    client = gateway.aclient(A, max_retries=0)
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await gateway.flush()
    await gateway.restart()
    client = gateway.aclient(A, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.code == "daily-budget-exceeded-requests"


@pytest.mark.parametrize("model", ["gpt-4o", "GPT-4O", "openai/gpt-4o", "gpt-4o-2024-08-06", "big"])
async def test_model_access_cannot_be_bypassed(gateway: GatewayHarness, model: str) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
aliases:
  big: gpt-4o
defaults:
  models:
    allow: ["gpt-4o-mini*", "text-embedding-*"]
""",
    )
    client = gateway.aclient(A, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as err:
        await client.chat.completions.create(model=model, messages=MSG)
    assert err.value.code == "model-not-allowed"
    assert gateway.sim.state.received == 0
    ok = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert ok.choices


async def test_models_list_only_shows_allowed(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
defaults:
  models:
    allow: ["gpt-4o-mini*"]
""",
    )
    models = await gateway.aclient(A).models.list()
    ids = [m.id for m in models.data]
    assert ids and all(i.startswith("gpt-4o-mini") for i in ids)
    # models.retrieve (GET /v1/models/{id}) agrees with the list (new-user trial finding)
    client = gateway.aclient(A, max_retries=0)
    assert (await client.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    # "gpt-4o-mini-bogus" is allowed by the glob and routed by the upstream's "*", but the
    # upstream does not have it: 404, as the list does not show it (it answered 200).
    for hidden in ("gpt-4o", "no-such-model", "gpt-4o-mini-bogus"):
        with pytest.raises(openai.NotFoundError) as err:
            await client.models.retrieve(hidden)
        assert err.value.code == "model_not_found"


async def test_sdk_backs_off_on_rate_limit_and_succeeds(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    rate: {rpm: 60, burst: 1}
""",
    )
    client = gateway.aclient(A, max_retries=3)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    started = time.monotonic()
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert resp.choices
    records = await gateway.records()
    refused = [r for r in records if r["outcome"] == "refused"]
    assert refused and {r["rule_id"] for r in refused} == {"rate-limit-rpm"}
    # the SDK waited for the gateway's retry-after (1 request per second) before succeeding
    assert time.monotonic() - started >= 0.5


async def test_sdk_stops_on_should_retry_false(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      month: {requests: 1}
""",
    )
    client = gateway.aclient(A, max_retries=5)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    records = await gateway.records()
    assert [r["outcome"] for r in records] == ["served", "refused"]  # no retries


async def test_ratelimit_headers_on_proxied_responses(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
defaults:
  rate: {rpm: 100, tpm: 100000}
""",
    )
    raw = await gateway.aclient(A).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    h = raw.headers
    # an unverified agent stays in probation, whose tier scales rate limits by 0.25
    assert h["x-agentctl-trust-tier"] == "probation"
    assert h["x-ratelimit-limit-requests"] == "25"
    assert h["x-ratelimit-remaining-requests"] == "24"
    assert h["x-ratelimit-limit-tokens"] == "25000"
    assert int(h["x-ratelimit-remaining-tokens"]) < 25000
    assert h["x-ratelimit-reset-requests"].endswith("s")


async def test_breaker_latches_agent_but_not_teammates(gateway: GatewayHarness) -> None:
    version = await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    breaker: {usd_per_hour: "0.00003"}
""",
    )
    a = gateway.aclient(A, max_retries=0)
    b = gateway.aclient(B, max_retries=0)
    served = 0
    with pytest.raises(openai.PermissionDeniedError) as err:
        for _ in range(20):
            await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            served += 1
    assert err.value.code == "agent_disabled"
    assert err.value.response.headers["x-should-retry"] == "false"
    # the breaker's reason names the fix once (it was said twice)
    assert err.value.message.count("agentctl agents enable bot-a") == 1
    # latched within one request of crossing: ~11.5e6 pico per call, threshold 30e6
    assert served == 3
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await gateway.flush()
    agent = await asyncio.to_thread(gateway.store.get_agent, "bot-a")
    assert agent.status == "disabled" and agent.status_actor == "agentctl-breaker"
    events = await gateway.records(kinds=("breaker",))
    assert len(events) == 1 and "cost-breaker-hourly" in events[0]["detail"]
    requests = await gateway.records()
    assert all(r["policy_version"] == version for r in requests)
    # stays latched (even after the hour would reset) until an operator enables it
    await asyncio.to_thread(gateway.store.set_status, "bot-a", "active", actor="op", reason="fixed")
    await gateway.gw.refresh()
    await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)


async def test_owner_aggregate_budget_is_shared(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
owners:
  team-ml:
    team_budgets:
      day: {requests: 3}
""",
    )
    a = gateway.aclient(A, max_retries=0)
    b = gateway.aclient(B, max_retries=0)
    c = gateway.aclient(C, max_retries=0)
    await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError) as err:
        await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.code == "team-daily-budget-exceeded-requests"
    await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # other team unaffected


async def test_shadow_rule_records_but_does_not_block(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
defaults:
  models:
    allow: ["gpt-4o-mini"]
    mode: shadow
""",
    )
    resp = await gateway.aclient(A).chat.completions.create(model="gpt-4o", messages=MSG)
    assert resp.choices
    [rec] = await gateway.records()
    assert rec["outcome"] == "served" and rec["shadow_rules"] == "model-not-allowed"


async def test_policy_apply_reaches_running_gateway_within_a_second(
    gateway: GatewayHarness,
) -> None:
    client = gateway.aclient(A, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MSG)
    policy = load_text(
        """
apiVersion: agentctl/v1
defaults:
  models:
    deny: ["gpt-4o"]
"""
    )
    await asyncio.to_thread(
        gateway.store.apply_policy,
        policy.version,
        canonical_json(policy.document),
        ["x.yaml"],
        actor="op",
        reason="lock down",
    )
    started = time.monotonic()
    while True:
        try:
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
        except openai.PermissionDeniedError:
            break
        assert time.monotonic() - started < 1.5, "new policy not in force after 1.5 s"
        await asyncio.sleep(0.05)


async def test_policy_aliases_reach_the_upstream_as_the_real_model(
    gateway: GatewayHarness,
) -> None:
    """Regression (new-user trial): `aliases: {fast: gpt-4o-mini}` only widened allow/deny
    matching; the upstream was sent `fast` (a 404 at a real provider) and the call was
    recorded unpriced."""
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
aliases: {fast: gpt-4o-mini, wide: "gpt-4o*"}
defaults:
  models: {allow: [fast]}
""",
    )
    client = gateway.aclient(A, max_retries=0)
    await client.chat.completions.create(model="FAST", messages=MSG)
    assert gateway.sim is not None
    assert gateway.sim.state.requests[-1].json["model"] == "gpt-4o-mini"
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="gpt-4o", messages=MSG)
    served, refused = await gateway.records()
    assert (served["model"], served["upstream_model"]) == ("FAST", "gpt-4o-mini")
    assert served["cost_pico"] > 0
    assert refused["outcome"] == "refused"


async def test_an_unpriced_model_is_refused_under_a_usd_limit(gateway: GatewayHarness) -> None:
    # Regression: an agent under a USD budget asked for a model genai-prices lacks; it was
    # served at $0 to every USD limit, so the budget could not stop it.
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      day: {usd: "0.001"}
owners:
  team-ops:
    team_budgets:
      month: {usd: "5"}
  team-ml:
    team_budgets:
      month: {requests: 100}
    breaker: {usd_per_day: "1", mode: shadow}
""",
    )
    for who, path, scope in (
        (A, "budgets.day.usd", "agents.bot-a"),
        (C, "team_budgets.month.usd", "owners.team-ops"),
    ):
        with pytest.raises(openai.PermissionDeniedError) as err:
            await gateway.aclient(who, max_retries=0).chat.completions.create(
                model="no-price-model", messages=MSG
            )
        assert err.value.code == "unpriced-model-usd-limit"
        assert f"under a USD limit ({path}, scope {scope})" in err.value.message
        assert "pricing.overrides" in err.value.message
    # bot-b has no enforced USD limit (a requests budget, a breaker in shadow): served.
    resp = await gateway.aclient(B).chat.completions.create(model="no-price-model", messages=MSG)
    assert resp.choices
    refused = [r for r in await gateway.records() if r["outcome"] == "refused"]
    assert [r["rule_id"] for r in refused] == ["unpriced-model-usd-limit"] * 2
