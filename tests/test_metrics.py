"""`agentctl.metrics` on its own: exact money, the cardinality guard, gauge providers."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agentctl.config import MetricsSettings
from agentctl.facts import RequestFacts
from agentctl.gateway.call import Call
from agentctl.identity import Identity
from agentctl.metrics import OTHER, BudgetReading, Metrics, TierReading, TopN
from agentctl.money import PICO
from agentctl.usage import Usage

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def make_call(
    agent: str = "bot-a",
    *,
    owner: str = "team-ml",
    model: str = "gpt-4o-mini",
    cost: int = 150_000,
    status: int = 200,
    outcome: str = "served",
    rule: str | None = None,
    tokens: tuple[int, int] = (10, 5),
) -> Call:
    call = Call(request_id="req_x", ts_us=0, started=1.0, path="/v1/chat/completions", client="")
    call.identity = Identity(agent, owner, "production")
    call.facts = RequestFacts(endpoint="chat", path=call.path, model=model)
    call.status, call.outcome, call.rule_id = status, outcome, rule
    if outcome == "served":
        call.usage = Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1], cached_tokens=2)
        call.cost_pico = cost
        call.forwarded, call.finished, call.ttfb = True, 1.25, 0.1
    else:
        call.cost_pico = 0
    return call


def scrape(metrics: Metrics) -> Samples:
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def values(samples: Samples, name: str, label: str) -> dict[str, float]:
    """Sum of `name` samples by one label."""
    out: dict[str, float] = {}
    for (sample, labels), value in samples.items():
        if sample == name:
            key = dict(labels)[label]
            out[key] = out.get(key, 0) + value
    return out


def test_money_is_summed_in_pico_dollars_and_exported_once() -> None:
    m = Metrics()
    costs = [150_000] * 9_999 + [1]  # 0.15 micro-dollars a token: floats would drift
    for cost in costs:
        m.observe(make_call(cost=cost))
    assert m.usage[("bot-a", "team-ml", "production", "gpt-4o-mini")][5] == sum(costs)
    samples = scrape(m)
    assert values(samples, "agentctl_cost_usd_total", "agent") == {"bot-a": sum(costs) / PICO}
    tokens = values(samples, "agentctl_tokens_total", "type")
    assert tokens == {
        "input": 10 * 10_000,
        "output": 5 * 10_000,
        "cached": 2 * 10_000,
        "cache_write": 0,
        "reasoning": 0,
    }


def test_requests_refusals_and_histograms() -> None:
    m = Metrics()
    m.observe(make_call())
    m.observe(make_call(status=403, outcome="refused", rule="agent_disabled"))
    m.observe(make_call(status=502, outcome="error", rule="upstream_unavailable"))
    anonymous = Call(request_id="r", ts_us=0, started=0.0, path="/v1/chat/completions", client="")
    anonymous.refuse(401, "missing_agent_identity", "no header", refused=True)
    m.observe(anonymous)
    samples = scrape(m)
    assert values(samples, "agentctl_requests_total", "status") == {"2xx": 1, "4xx": 2, "5xx": 1}
    assert values(samples, "agentctl_refusals_total", "rule") == {
        "agent_disabled": 1,
        "missing_agent_identity": 1,
    }
    assert values(samples, "agentctl_refusals_total", "agent") == {"bot-a": 1, "_none": 1}
    assert values(samples, "agentctl_request_duration_seconds_count", "agent") == {"bot-a": 1}
    bucket = ("agentctl_request_duration_seconds_bucket",)
    le = {dict(k[1])["le"]: v for k, v in samples.items() if k[0] == bucket[0]}
    assert le["0.25"] == 1 and le["0.1"] == 0 and le["+Inf"] == 1  # latency 0.25 s
    assert values(samples, "agentctl_time_to_first_byte_seconds_sum", "model") == {
        "gpt-4o-mini": pytest.approx(0.1)
    }


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe(make_call())
    assert values(scrape(a), "agentctl_requests_total", "agent") == {"bot-a": 1}
    assert values(scrape(b), "agentctl_requests_total", "agent") == {}
    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("agentctl")]


def test_a_thousand_declared_names_cannot_explode_the_series() -> None:
    m = Metrics(MetricsSettings(max_agents=50, max_models=5))
    for i in range(1000):
        m.observe(make_call(f"flood-{i}", owner=f"team-{i}", model=f"model-{i % 40}", cost=1))
    samples = scrape(m)
    requests = values(samples, "agentctl_requests_total", "agent")
    assert len(requests) == 51 and OTHER in requests
    assert sum(requests.values()) == 1000
    assert len(values(samples, "agentctl_requests_total", "owner")) == 51
    assert len(values(samples, "agentctl_requests_total", "model")) == 6
    assert sum(values(samples, "agentctl_cost_usd_total", "agent").values()) == pytest.approx(
        1000 / PICO
    )
    assert len(m.agents.candidates) <= m.agents.track  # bounded memory too
    folded = values(samples, "agentctl_metrics_folded_total", "dimension")
    assert folded["agent"] == 950 and folded["model"] > 0


def test_a_late_big_spender_gets_a_label_and_counters_never_go_back() -> None:
    m = Metrics(MetricsSettings(max_agents=3))
    for i in range(200):
        m.observe(make_call(f"flood-{i}", cost=1))
    before = scrape(m)
    for _ in range(5):
        m.observe(make_call("big-spender", cost=1_000_000))
    after = scrape(m)
    requests = values(after, "agentctl_requests_total", "agent")
    assert requests["big-spender"] >= 4  # its first call may stay in _other
    for key, value in before.items():
        if key[0].endswith(("_total", "_count", "_bucket", "_sum")):
            assert after.get(key, value) >= value, key
    # the demoted name's series is frozen, not moved
    demoted = set(values(before, "agentctl_requests_total", "agent")) - set(requests)
    assert not demoted


def test_guard_forgets_long_retired_names_and_stays_bounded() -> None:
    m = Metrics(MetricsSettings(max_agents=2))
    for i in range(50):  # each newcomer outspends everyone before it
        m.observe(make_call(f"rising-{i}", cost=2**i))
    agents = values(scrape(m), "agentctl_requests_total", "agent")
    assert set(agents) == {"rising-49", "rising-48", "rising-47", "rising-46"}  # 2 live, 2 frozen
    assert not m.agents.forgotten


def test_topn_needs_a_margin_to_swap() -> None:
    guard = TopN(1)
    assert guard.label("a", 100) == "a"
    assert guard.label("b", 110) == OTHER  # not 25 % more than a
    assert guard.label("b", 30) == "b"  # 140 > 125
    assert "a" in guard.retired and guard.label("a", 0) == OTHER


class Budgets:
    def __init__(self, readings: Iterable[BudgetReading]) -> None:
        self.readings = list(readings)

    def budget_readings(self) -> list[BudgetReading]:
        return self.readings


class Tiers:
    def tier_readings(self) -> list[TierReading]:
        return [TierReading("bot-a", "standard")]


def test_budget_and_tier_gauges_appear_only_with_a_provider() -> None:
    m = Metrics(MetricsSettings(max_agents=2))
    m.observe(make_call())
    names = {k[0] for k in scrape(m)}
    assert not {"agentctl_budget_remaining_usd", "agentctl_trust_tier"} & names
    m.budgets = Budgets(
        [BudgetReading("bot-a", "daily", 5 * PICO, 1_250_000_000_000)]
        + [BudgetReading(f"idle-{i}", "daily", PICO, PICO) for i in range(10)]
    )
    m.tiers = Tiers()
    samples = scrape(m)
    remaining = values(samples, "agentctl_budget_remaining_usd", "agent")
    assert remaining["bot-a"] == 1.25
    assert len(remaining) == 3  # the labelled agent plus max_agents unlabelled ones
    assert values(samples, "agentctl_budget_limit_usd", "agent")["bot-a"] == 5.0
    assert samples[("agentctl_trust_tier", frozenset({("agent", "bot-a"), ("tier", "standard")}))]


def test_a_failing_provider_or_observer_never_breaks_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def budget_readings(self) -> list[BudgetReading]:
            raise RuntimeError("policy store away")

    def observer(call: Call) -> None:
        raise RuntimeError("tracer bug")

    m = Metrics(observers=[observer])
    m.budgets = Broken()
    with caplog.at_level(logging.ERROR, logger="agentctl.metrics"):
        m.observe(make_call())
        samples = scrape(m)
    assert values(samples, "agentctl_requests_total", "agent") == {"bot-a": 1}
    assert "gauge provider failed" in caplog.text and "observer failed" in caplog.text
