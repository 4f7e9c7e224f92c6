"""The governor end to end (in process): order of checks, refusals, reserve/settle."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from agentctl.counters.memory import MemoryCounters
from agentctl.errors import Refusal
from agentctl.identity import Identity
from agentctl.money import to_pico
from agentctl.policy.admission import ratelimit_headers
from agentctl.policy.governor import Governor
from agentctl.policy.loader import load_text
from tests.policy.policy_support import FakeClock, at, chat

IN, OUT = 150_000, 600_000  # gpt-4o-mini, pico-dollars per token
WORST = 1000 * IN + 1000 * OUT  # chat() defaults: 1000 in, max 1000 out
T0 = at("2024-03-10T12:00:00")
BOT = Identity("bot", "team-a", "production", verification="token")
PEER = Identity("peer", "team-a", "production", verification="token")
OTHER = Identity("solo", "team-b", "production", verification="token")


def governor(body: str, clock: FakeClock | None = None) -> Governor:
    ids = iter(range(1_000_000))
    return Governor(
        load_text("apiVersion: agentctl/v1\n" + body, "test.yaml"),
        MemoryCounters(),
        clock=clock or FakeClock(T0),
        new_id=lambda: f"r{next(ids)}",
    )


async def admit(gov: Governor, who: Identity = BOT, **kw: object):  # type: ignore[no-untyped-def]
    facts = kw.pop("facts", chat())
    return await gov.admit(
        who,
        facts,
        price_in_pico_per_token=IN,  # type: ignore[arg-type]
        price_out_pico_per_token=OUT,
        **kw,
    )  # type: ignore[arg-type]


async def refused(gov: Governor, who: Identity = BOT, **kw: object) -> Refusal:
    with pytest.raises(Refusal) as err:
        await admit(gov, who, **kw)
    return err.value


async def test_64_concurrent_admits_never_reserve_past_a_small_usd_budget() -> None:
    gov = governor("defaults:\n  budgets:\n    day: {usd: '0.01'}\n")
    results = await asyncio.gather(*(admit(gov) for _ in range(64)), return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    denied = [r for r in results if isinstance(r, Refusal)]
    assert len(admitted) == to_pico("0.01") // WORST == 13
    assert len(denied) == 51 and {d.rule_id for d in denied} == {"daily-budget-exceeded"}
    assert all(d.status == 429 and d.headers["x-should-retry"] == "false" for d in denied)
    for a in admitted:
        await gov.settle(a, total_tokens=2000, cost_pico=WORST)
    key = admitted[0].windows[1].spec.key  # agent day window
    usage = await gov.counters.usage([key], now=T0)
    assert usage[key].settled.pico == 13 * WORST <= to_pico("0.01")


async def test_concurrent_admit_and_settle_never_overspend() -> None:
    gov = governor("defaults:\n  budgets:\n    day: {usd: '0.05'}\n")

    async def one(i: int) -> int:
        try:
            a = await admit(gov)
        except Refusal:
            return 0
        await asyncio.sleep(0)
        cost = WORST * (i % 4 + 1) // 4  # actual at or below the reserved worst case
        await gov.settle(a, total_tokens=1500, cost_pico=cost)
        return cost

    spent = sum(await asyncio.gather(*(one(i) for i in range(64))))
    assert 0 < spent <= to_pico("0.05")


async def test_settle_refunds_the_unused_reservation() -> None:
    gov = governor("defaults:\n  budgets:\n    day: {usd: '0.001'}\n")  # one worst case fits
    first = await admit(gov)
    assert (await refused(gov)).rule_id == "daily-budget-exceeded"
    await gov.settle(first, total_tokens=100, cost_pico=WORST // 10)
    assert await gov.settle(first, total_tokens=100, cost_pico=WORST // 10) == []  # idempotent
    second = await admit(gov)  # 0.075 + 0.75 <= 1 milli-USD: the refund made room
    assert (await refused(gov)).rule_id == "daily-budget-exceeded"
    await gov.settle(second, total_tokens=100, cost_pico=WORST * 2)  # overshoot is recorded
    key = second.windows[1].spec.key
    assert (await gov.counters.usage([key], now=T0))[key].settled.pico == WORST * 21 // 10


async def test_release_gives_everything_back() -> None:
    gov = governor("defaults:\n  budgets:\n    day: {requests: 1}\n")
    first = await admit(gov)
    await gov.release(first)
    second = await admit(gov)
    await gov.settle(second, total_tokens=10, cost_pico=10)
    assert (await refused(gov)).rule_id == "daily-budget-exceeded-requests"


async def test_owner_aggregate_budget_is_shared_by_two_agents() -> None:
    gov = governor(
        "defaults:\n  budgets:\n    day: {usd: '1'}\n"
        "owners:\n  team-a:\n    team_budgets:\n      day: {usd: '0.002'}\n"
    )
    a = await admit(gov, BOT)
    b = await admit(gov, PEER)
    denied = await refused(gov, PEER)
    assert denied.rule_id == "team-daily-budget-exceeded" and denied.status == 429
    assert "team 'team-a'" in denied.message and "scope owners.team-a" in denied.message
    await admit(gov, OTHER)  # another team is unaffected
    await gov.settle(a, total_tokens=1, cost_pico=0)
    await gov.settle(b, total_tokens=1, cost_pico=0)
    await admit(gov, PEER)


async def test_budget_message_has_scope_window_used_limit_and_reset() -> None:
    gov = governor(
        "agents:\n  bot:\n    timezone: Europe/Berlin\n    budgets:\n      month: {tokens: 2500}\n"
    )
    await admit(gov)
    denied = await refused(gov)
    assert denied.rule_id == "monthly-budget-exceeded-tokens"
    assert denied.message == (
        "monthly tokens budget exceeded for agent 'bot' (owner 'team-a', purpose 'production'): "
        "scope agents.bot, window 2024-03 (Europe/Berlin), used 2000 tokens + this request "
        "2000 tokens > limit 2500 tokens; resets at 2024-04-01T00:00:00+02:00 (in 514h0m0s); "
        "this request reserves its worst case: up to 1000 input tokens + 1000 output tokens "
        "(the request's max_tokens); a smaller max_tokens reserves less"
    )


async def test_budget_refusal_says_an_unset_max_tokens_reserved_the_policy_default() -> None:
    gov = governor(
        "defaults:\n  default_max_output_tokens: 4096\n  budgets:\n    day: {tokens: 6000}\n"
    )
    denied = await refused(gov, facts=chat(max_tokens=None, n=2))
    assert denied.message.endswith(
        "this request reserves its worst case: up to 1000 input tokens + 4096 output tokens "
        "x 2 choices (max_tokens was not set, so the policy's default_max_output_tokens); "
        "set max_tokens (or lower default_max_output_tokens) to reserve less"
    )
    # An exhausted window: no request fits, so no hint about sizing.
    gov = governor("defaults:\n  budgets:\n    day: {tokens: 2000}\n")
    await admit(gov)
    assert "worst case" not in (await refused(gov)).message


async def test_a_reset_hours_away_is_said_in_whole_seconds() -> None:
    # Regression (operator trial): "(in 1h8m32.512s)".
    gov = governor("defaults:\n  budgets:\n    day: {requests: 1}\n", FakeClock(T0 + 0.488))
    await admit(gov)
    assert (await refused(gov)).message.endswith("(in 12h0m0s)")


async def test_window_resetting_within_a_minute_says_when_instead_of_stop() -> None:
    clock = FakeClock(at("2024-03-10T12:59:30"))
    gov = governor("defaults:\n  budgets:\n    hour: {requests: 1}\n", clock)
    await admit(gov)
    denied = await refused(gov)
    assert denied.rule_id == "hourly-budget-exceeded-requests"
    assert denied.retry_after == pytest.approx(30.0) and "x-should-retry" not in denied.headers
    clock.advance(30)
    await admit(gov)


@pytest.mark.parametrize(
    ("zone", "last", "first_of_next"),
    [
        ("America/New_York", "2024-03-09T23:59:59", "2024-03-10T00:00:00"),
        ("America/New_York", "2024-11-03T23:59:59", "2024-11-04T00:00:00"),
        ("Europe/Berlin", "2024-03-31T23:59:59", "2024-04-01T00:00:00"),
        ("Europe/Berlin", "2024-10-27T23:59:59", "2024-10-28T00:00:00"),
    ],
)
async def test_daily_budget_resets_at_local_midnight(
    zone: str, last: str, first_of_next: str
) -> None:
    clock = FakeClock(at(last, zone))
    gov = governor(f"defaults:\n  timezone: {zone}\n  budgets:\n    day: {{requests: 1}}\n", clock)
    await admit(gov)
    assert (await refused(gov)).rule_id == "daily-budget-exceeded-requests"
    clock.now = at(first_of_next, zone) - 0.001
    assert (await refused(gov)).rule_id == "daily-budget-exceeded-requests"
    clock.now = at(first_of_next, zone)
    await admit(gov)


@pytest.mark.parametrize(
    ("facts", "rule_id", "scope"),
    [
        (chat(max_tokens=5000), "request-token-cap", "defaults"),
        (chat(input_tokens=9000), "request-token-cap", "defaults"),
        (chat(max_tokens=2000, n=4), "request-cost-cap", "agents.bot"),
    ],
)
async def test_per_request_caps_are_403(facts: object, rule_id: str, scope: str) -> None:
    gov = governor(
        "defaults:\n  request: {max_tokens: 4096, max_input_tokens: 8000}\n"
        "agents:\n  bot:\n    request: {max_usd: '0.003'}\n"
    )
    denied = await refused(gov, facts=facts)
    assert (denied.status, denied.rule_id) == (403, rule_id)
    assert f"scope {scope}" in denied.message and denied.headers["x-should-retry"] == "false"


async def test_missing_max_tokens_assumes_the_documented_default_capped() -> None:
    gov = governor(
        "defaults:\n  default_max_output_tokens: 500\n"
        "agents:\n  peer:\n    request: {max_tokens: 200}\n"
    )
    a = await admit(gov, facts=chat(max_tokens=None, n=2))
    assert (a.output_tokens, a.estimate.tokens, a.estimate.pico) == (
        500,
        2000,
        1000 * IN + 1000 * OUT,
    )
    assert (await admit(gov, PEER, facts=chat(max_tokens=None))).output_tokens == 200


@pytest.mark.parametrize(
    "model", ["gpt-4o", "GPT-4O", "openai/gpt-4o", "gpt-4o-2024-08-06", "smart"]
)
async def test_model_access_bypass_attempts(model: str) -> None:
    gov = governor("aliases: {smart: gpt-4o}\ndefaults:\n  models: {allow: ['gpt-4o-mini*']}\n")
    denied = await refused(gov, facts=chat(model=model))
    assert (denied.status, denied.rule_id) == (403, "model-not-allowed")
    await admit(gov, facts=chat(model="openai/GPT-4o-mini-2024-07-18"))
    denied = await refused(gov, facts=chat(model="gpt-4o-mini"), upstream_model="gpt-4o")
    assert "'gpt-4o' is not in the allow list" in denied.message
    assert gov.model_allowed(BOT, "gpt-4o-mini") and not gov.model_allowed(BOT, "gpt-4o")


async def test_rate_limit_rpm_with_burst_and_trust_multiplier() -> None:
    clock = FakeClock(T0)
    gov = governor("defaults:\n  rate: {rpm: 60, burst: 2}\n", clock)
    await admit(gov)
    await admit(gov)
    denied = await refused(gov)
    assert (denied.status, denied.rule_id) == (429, "rate-limit-rpm")
    assert denied.retry_after == pytest.approx(1.0) and denied.headers["retry-after"] == "1"
    assert "60 requests per minute (burst 2)" in denied.message
    clock.advance(1)
    await admit(gov)
    # a trusted tier doubles rate and burst; a quiet second later 4 fit at once
    clock.advance(10)
    for _ in range(4):
        await admit(gov, PEER, rate_multiplier=2.0)
    denied = await refused(gov, PEER, rate_multiplier=2.0)
    assert denied.rule_id == "rate-limit-rpm"
    # the message says the limit in force, not only the configured one
    assert "60 requests per minute x 2 for its trust tier = 120 per minute (burst 4)" in (
        denied.message
    )


async def test_rate_limit_tpm_and_settle_refunds_tokens() -> None:
    clock = FakeClock(T0)
    gov = governor("defaults:\n  rate: {tpm: 3000}\n", clock)
    a = await admit(gov)
    assert (await refused(gov, facts=chat(max_tokens=1500))).rule_id == "rate-limit-tpm"
    await gov.settle(a, total_tokens=200, cost_pico=1)
    await admit(gov, facts=chat(max_tokens=1500))  # 1800 tokens given back by the settle


async def test_a_request_refused_after_the_rate_step_gives_its_rate_back() -> None:
    # chat() costs 2,000 tokens at worst: the tpm bucket holds two of them, rpm two requests.
    gov = governor("defaults:\n  rate: {rpm: 2, tpm: 4000}\n  budgets:\n    day: {usd: '0.001'}\n")
    assert WORST <= to_pico("0.001") < 2 * WORST
    first = await admit(gov)
    for _ in range(3):  # over budget: refused for the budget, never for the rate
        assert (await refused(gov)).rule_id == "daily-budget-exceeded"
    await gov.settle(first, total_tokens=2000, cost_pico=0)  # cost nothing after all
    await admit(gov)  # the rate buckets still hold this one's request and 2,000 tokens
    assert (await refused(gov)).rule_id == "rate-limit-rpm"


async def test_a_concurrency_refusal_gives_its_rate_back() -> None:
    gov = governor("defaults:\n  rate: {rpm: 2}\n  concurrency: {max: 1}\n")
    first = await admit(gov)
    assert (await refused(gov)).rule_id == "concurrency-limit"
    assert (await refused(gov)).rule_id == "concurrency-limit"
    await gov.settle(first, total_tokens=1, cost_pico=1)
    second = await admit(gov)  # the two refusals took no requests from rpm
    await gov.settle(second, total_tokens=1, cost_pico=1)
    assert (await refused(gov)).rule_id == "rate-limit-rpm"  # two admitted this minute


async def test_concurrency_limit_and_slot_freed_on_settle_and_on_budget_refusal() -> None:
    gov = governor("defaults:\n  concurrency: {max: 1}\n  budgets:\n    day: {requests: 2}\n")
    first = await admit(gov)
    denied = await refused(gov)
    assert (denied.status, denied.rule_id, denied.retry_after) == (429, "concurrency-limit", 1.0)
    await gov.settle(first, total_tokens=1, cost_pico=1)
    second = await admit(gov)
    await gov.settle(second, total_tokens=1, cost_pico=1)
    assert (await refused(gov)).rule_id == "daily-budget-exceeded-requests"
    assert (await refused(gov)).rule_id == "daily-budget-exceeded-requests"  # slot not leaked


async def test_shadow_rules_are_reported_not_enforced() -> None:
    gov = governor(
        "defaults:\n"
        "  models: {allow: [gpt-4o-mini], mode: shadow}\n"
        "  request: {max_tokens: 10, mode: shadow}\n"
        "  rate: {rpm: 1, mode: shadow}\n"
        "  concurrency: {max: 1, mode: shadow}\n"
        "  budgets:\n    day: {requests: 1, mode: shadow}\n    month: {requests: 100}\n"
    )
    first = await admit(gov, facts=chat(model="gpt-4o"))
    assert first.shadow_rule_ids == ["model-not-allowed", "request-token-cap"]
    second = await admit(gov, facts=chat(model="gpt-4o"))
    assert second.shadow_rule_ids == [
        "model-not-allowed",
        "request-token-cap",
        "rate-limit-rpm",
        "concurrency-limit",
        "daily-budget-exceeded-requests",
    ]
    assert second.shadow[-1].status == 429 and "limit 1 requests" in second.shadow[-1].message


async def test_breaker_trips_once_on_the_crossing_settle() -> None:
    gov = governor(
        "defaults:\n  breaker: {usd_per_hour: '0.002', usd_per_day: '1'}\n"
        "  alerts: {webhook: 'https://hooks.example.com/x'}\n"
    )
    a, b, c = await admit(gov), await admit(gov), await admit(gov)
    assert await gov.settle(a, total_tokens=10, cost_pico=to_pico("0.0015")) == []
    trips = await gov.settle(b, total_tokens=10, cost_pico=to_pico("0.0010"))
    assert [(t.rule_id, t.spent_pico, t.threshold_pico, t.enforced) for t in trips] == [
        ("cost-breaker-hourly", to_pico("0.0025"), to_pico("0.002"), True)
    ]
    assert trips[0].webhook == "https://hooks.example.com/x" and trips[0].window_id == (
        "2024-03-10T12+0000"
    )
    assert "agentctl agents enable bot" in trips[0].message
    assert await gov.settle(c, total_tokens=10, cost_pico=to_pico("0.001")) == []
    peer = await admit(gov, PEER)  # same team, own breaker: unaffected
    assert await gov.settle(peer, total_tokens=1, cost_pico=to_pico("0.001")) == []


async def test_shadow_breaker_trips_unenforced() -> None:
    gov = governor("defaults:\n  breaker: {usd_per_day: '0', mode: shadow}\n")
    trips = await gov.settle(await admit(gov), total_tokens=1, cost_pico=1)
    assert [(t.rule_id, t.enforced) for t in trips] == [("cost-breaker-daily", False)]


async def test_unverified_pool_is_shared_across_made_up_names() -> None:
    gov = governor("unverified:\n  lane: batch\n  pool_budgets:\n    day: {requests: 2}\n")
    names = [Identity(f"x{i}", "anon", "test") for i in range(3)]
    assert (await admit(gov, names[0])).lane == "batch"
    await admit(gov, names[1])
    assert (await refused(gov, names[2])).rule_id == "unverified-daily-budget-exceeded-requests"
    await admit(gov, BOT)  # verified traffic does not draw from the pool


async def test_seeding_from_audit_rows_restores_window_usage() -> None:
    clock = FakeClock(at("2024-03-10T12:00:00", "Europe/Berlin"))
    body = (
        "defaults:\n  timezone: Europe/Berlin\n"
        "  budgets:\n    day: {usd: '0.01', requests: 5}\n"
        "owners:\n  team-a:\n    team_budgets:\n      day: {requests: 6}\n"
    )
    rows = [
        SimpleNamespace(
            ts=at("2024-03-10T00:00:00", "Europe/Berlin"),
            agent="bot",
            owner="team-a",
            total_tokens=10,
            cost_pico=to_pico("0.0095"),
            counted_request=True,
        ),
        SimpleNamespace(
            ts=at("2024-03-09T23:59:59", "Europe/Berlin"),
            agent="bot",
            owner="team-a",
            total_tokens=10,
            cost_pico=to_pico("5"),
            counted_request=True,
        ),  # yesterday: counts for the month only
        *[
            SimpleNamespace(
                ts=clock.now - 60,
                agent="peer",
                owner="team-a",
                total_tokens=1,
                cost_pico=0,
                counted_request=i < 4,
            )
            for i in range(6)
        ],
    ]
    restarted = governor(body, clock)
    assert await restarted.seed(rows) == 8
    assert (await refused(restarted)).rule_id == "daily-budget-exceeded"
    await admit(restarted, facts=chat(max_tokens=1, input_tokens=1))
    assert (
        await refused(restarted, PEER, facts=chat(max_tokens=1, input_tokens=1))
    ).rule_id == "team-daily-budget-exceeded-requests"


async def test_ratelimit_headers_from_buckets_or_windows() -> None:
    clock = FakeClock(at("2024-03-10T23:54:00"))
    gov = governor(
        "defaults:\n  rate: {rpm: 60, tpm: 100000}\n"
        "agents:\n  peer:\n    rate: {rpm: null, tpm: null}\n"
        "    budgets:\n      day: {requests: 100, tokens: 50000}\n",
        clock,
    )
    assert ratelimit_headers(await admit(gov)) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "100000",
        "x-ratelimit-remaining-tokens": "98000",
        "x-ratelimit-reset-tokens": "1.2s",
    }
    assert ratelimit_headers(await admit(gov, PEER)) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-requests": "6m0s",
        "x-ratelimit-limit-tokens": "50000",
        "x-ratelimit-remaining-tokens": "48000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert (
        ratelimit_headers(await admit(gov, OTHER, rate_multiplier=0.5))[
            "x-ratelimit-limit-requests"
        ]
        == "30"
    )


async def test_lane_and_policy_apply() -> None:
    gov = governor("purposes:\n  production: {lane: priority}\n")
    assert (await admit(gov)).lane == "priority"
    gov.apply(load_text("apiVersion: agentctl/v1\ndefaults: {lane: batch}\n"))
    assert (await admit(gov)).lane == "batch"
    with pytest.raises(ValueError, match="rate_multiplier"):
        await admit(gov, rate_multiplier=0)


async def test_overshoot_without_max_tokens_is_bounded_by_the_assumed_output() -> None:
    gov = governor(
        "defaults:\n  default_max_output_tokens: 100\n  budgets:\n    day: {usd: '0.001'}\n"
    )
    facts = chat(max_tokens=None, input_tokens=100)
    assumed = 100 * IN + 100 * OUT
    results = await asyncio.gather(
        *(admit(gov, facts=facts) for _ in range(64)), return_exceptions=True
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    assert len(admitted) == to_pico("0.001") // assumed
    actual = 100 * IN + 300 * OUT  # each answer ran three times longer than assumed
    for a in admitted:
        await gov.settle(a, total_tokens=400, cost_pico=actual)
    key = admitted[0].windows[1].spec.key
    spent = (await gov.counters.usage([key], now=T0))[key].settled.pico
    assert spent - to_pico("0.001") <= len(admitted) * (actual - assumed)
    assert (await refused(gov, facts=facts)).rule_id == "daily-budget-exceeded"


async def test_embeddings_assume_no_output_tokens() -> None:
    from agentctl.facts import RequestFacts

    gov = governor("defaults:\n  rate: {tpm: 1000}\n")
    facts = RequestFacts(
        "embeddings",
        "/v1/embeddings",
        "text-embedding-3-small",
        input_tokens_estimate=100,
        input_tokens_bound=300,
    )
    admission = await admit(gov, facts=facts)
    assert (admission.output_tokens, admission.estimate.tokens) == (0, 300)
