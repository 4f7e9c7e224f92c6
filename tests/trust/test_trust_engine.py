"""The engine end to end on a fake clock: gates, actions, learning mode, claims, pins, explain."""

from __future__ import annotations

import json
from functools import cache

import pytest

from agentctl.identity import Identity
from agentctl.money import to_pico
from agentctl.trust import TrustConfig, TrustEngine

from .conftest import CENT, DAY, Clock, Driver

EVENT_FIELDS = {
    "agent",
    "kind",
    "detector",
    "severity",
    "at",
    "value",
    "threshold",
    "tier_before",
    "tier_after",
    "request_id",
    "evidence",
    "undo",
    "automatic",
    "reason",
}


@cache
def established_state() -> tuple[str, float]:
    """A nightly bot (0.5/s, 4 h a night) after nine nights: out of learning, standard."""
    clock = Clock()
    engine = TrustEngine(TrustConfig(), clock)
    for name in ("bot", "other"):
        identity = Identity(name, "team", "production", verification="token")
        engine.register(name, created_at=clock.now, identity=identity)
    drive = Driver(engine, clock)
    drive.nights("bot", 9, rate=0.5, hours=4)
    clock.now += 3600
    drive.steady("other", 0.2, 3600)
    return json.dumps(engine.snapshot()), clock.now


@pytest.fixture
def est() -> Driver:
    data, now = established_state()
    clock = Clock(now)
    engine = TrustEngine(TrustConfig(), clock)
    engine.restore(json.loads(data))
    return Driver(engine, clock)


def test_established_bot_is_standard_and_quiet(est: Driver) -> None:
    assert est.engine.tier("bot") == "standard"
    info = est.engine.explain("bot")
    assert info["learning"] is False and info["score"]["lower"] >= 0.6


def test_headline_loop_contained_then_disabled(est: Driver) -> None:
    start = est.clock.now
    gates = est.steady("bot", 19.0, 300, make=lambda: {"prompt": "LOOP"}, poisson=False)
    throttle = est.of("bot", "throttle")[0]
    assert throttle.detector == "loop" and throttle.at - start < 10
    assert (throttle.tier_before, throttle.tier_after) == ("standard", "probation")
    assert throttle.evidence["prompt_hash"] == "LOOP" and throttle.threshold == 20
    assert throttle.undo == 'agentctl trust pin bot --tier standard --ttl 24h --reason "..."'
    admitted = sum(g.allowed for g in gates)
    assert admitted * CENT < to_pico("2")
    rules = {g.rule_id for g in gates if not g.allowed}
    assert "trust-loop-blocked" in rules and "trust-quarantined" in rules
    disable = est.of("bot", "disable")[0]
    assert disable.detector == "loop" and 120 <= disable.at - throttle.at < 130
    assert disable.undo == 'agentctl agents enable bot --reason "..."'
    assert set(disable.as_dict()) == EVENT_FIELDS
    gate = est.call("bot")
    assert not gate.allowed and gate.status == 403 and gate.tier == "quarantined"


def test_contained_agent_keeps_other_prompts_at_the_throttle_rate(est: Driver) -> None:
    est.steady("bot", 19.0, 5, make=lambda: {"prompt": "LOOP"}, poisson=False)
    assert est.of("bot", "throttle")
    gates = est.steady("bot", 1.0, 120, poisson=False)  # distinct prompts, 60 a minute
    allowed = sum(g.allowed for g in gates)
    assert 10 <= allowed <= 20  # 0.1/s plus the initial burst of 3
    assert all(g.throttled and g.lane == "low" for g in gates if g.allowed)


def test_statistical_anomaly_throttles_established_agent(est: Driver) -> None:
    est.steady("bot", 19.0, 30)  # diverse prompts: the rate detector
    throttle = est.of("bot", "throttle")[0]
    assert throttle.detector == "request_rate"
    assert throttle.value > throttle.threshold and throttle.tier_after == "probation"


def test_learning_mode_only_alerts_on_statistics_but_loops_still_act(drive: Driver) -> None:
    drive.engine.register("new", created_at=drive.clock.now)
    drive.steady("new", 0.2, 3 * 3600)  # warmed up: one active hour and more
    drive.steady("new", 19.0, 120)
    assert drive.of("new", "throttle") == []
    assert drive.engine.explain("new")["learning"] is True
    drive.steady("new", 19.0, 10, make=lambda: {"prompt": "same"}, poisson=False)
    assert [e.detector for e in drive.of("new", "throttle")] == ["loop"]


def test_engine_own_limit_contains_without_static_caps(est: Driver) -> None:
    limit = est.engine.explain("bot")["limits"]["limit_rps"]
    gates = est.steady("bot", 50.0, 2, poisson=False)
    refused = [g for g in gates if not g.allowed]
    assert refused and refused[0].rule_id == "trust-rate-limited" and refused[0].status == 429
    assert refused[0].retry_after is not None and limit < 50


def test_error_storm_throttles_alone_but_not_in_a_fleet_outage(clock: Clock) -> None:
    engine = TrustEngine(TrustConfig(learning_s=3600, learning_min_active_hours=1), clock)
    drive = Driver(engine, clock)

    def minutes(n: int, failing: str, status: int) -> None:
        for _ in range(n * 6):  # every agent at its usual 0.1/s
            clock.now += 10
            for name in ("a", "b", "c", "d"):
                bad = name in failing
                drive.call(name, status=status if bad else 200, cost=CENT // 10)

    minutes(120, "", 200)
    assert not drive.events
    minutes(10, "abcd", 429)  # everyone fails together: the provider's fault
    assert not any(e.kind == "throttle" for e in drive.events)
    alerts = [e for e in drive.events if e.detector == "error_storm"]
    assert alerts and all(e.severity == "info" and e.evidence["fleet_exception"] for e in alerts)
    minutes(60, "", 200)
    minutes(10, "a", 400)  # now only "a" fails
    throttles = [e for e in drive.events if e.kind == "throttle"]
    assert [(e.agent, e.detector) for e in throttles] == [("a", "error_storm")]


def test_upstream_faults_are_never_the_agents_fault(est: Driver) -> None:
    for _ in range(300):
        est.clock.now += 1
        est.call("bot", status=503, upstream_fault=True)
    assert not any(e.detector == "error_storm" for e in est.events)


def test_identity_mismatch_strikes_the_token_owner_never_the_claimed(est: Driver) -> None:
    victim_before = est.engine.explain("bot")
    events = []
    for i in range(5):
        events += est.engine.record_identity_mismatch("other", "bot", est.clock.now + i)
    assert [e.kind for e in events] == ["alert", "disable"]
    assert all(e.agent == "other" for e in events)
    assert events[-1].evidence["claimed"] == "bot" and events[-1].detector == "identity_mismatch"
    assert est.engine.tier("other") == "quarantined"
    after = est.engine.explain("bot", est.clock.now + 5)
    assert after["score"] == victim_before["score"] and after["tier"] == victim_before["tier"]


def test_mismatches_spread_out_do_not_disable(est: Driver) -> None:
    for i in range(10):
        est.engine.record_identity_mismatch("other", "bot", est.clock.now + i * 200)
    assert est.engine.tier("other") != "quarantined"


def test_failed_claims_never_touch_the_claimed_agent(est: Driver) -> None:
    before = est.engine.explain("bot")
    events = []
    for i in range(6000):
        events += est.engine.record_failed_claim(
            "bot", est.clock.now + i * 0.1, source="1.2.3.0/24"
        )
    assert len(events) == 1 and events[0].severity == "info"
    after = est.engine.explain("bot", est.clock.now + 600)
    assert after["score"]["bad"] == before["score"]["bad"] and after["tier"] == before["tier"]
    assert est.engine.record_failed_claim("nobody") == []


def test_breaker_disables_and_enable_lands_in_probation(est: Driver) -> None:
    [event] = est.engine.record_breaker("bot", "hourly-spend", 120.0, 100.0)
    assert event.kind == "disable" and event.evidence["breaker"] == "hourly-spend"
    assert est.engine.tier("bot") == "quarantined"
    [enabled] = est.engine.on_enable("bot", reason="fixed the retry bug")
    assert (enabled.tier_before, enabled.tier_after) == ("quarantined", "probation")
    assert enabled.automatic is False and enabled.reason == "fixed the retry bug"
    assert est.call("bot").allowed


def test_explain_shows_a_breaker_in_dollars(est: Driver) -> None:
    # Regression: the summary printed the breaker's pico-dollars ("value 2.533e+11").
    est.engine.record_breaker("bot", "cost-breaker-hourly", 253_300_000_000, 200_000_000_000)
    summary = est.engine.explain("bot")["summary"]
    assert "by breaker (value $0.2533 vs threshold $0.2)" in summary


def test_figures_are_in_each_detectors_unit() -> None:
    from agentctl.trust.signals import figure

    assert figure("breaker", 1_500_000_000_000_000) == "$1,500"
    assert figure("cost_rate", 1e12 / 3600) == "$1/h"  # pico-dollars a second
    assert figure("request_rate", 12.345678) == "12.35/s"
    assert figure("loop", 7.0) == "7" and figure("loop", None) == "-"


def test_a_pin_carries_no_measurement_to_show(est: Driver) -> None:
    # Regression: "after a tier_change by pin (value 0 vs threshold 0)".
    est.engine.pin("bot", "trusted", reason="vetted", ttl=0)
    summary = est.engine.explain("bot")["summary"]
    assert "by pin" in summary and "value" not in summary


def test_pin_freezes_tier_expires_and_disable_overrides(est: Driver) -> None:
    [pin] = est.engine.pin("bot", "trusted", reason="launch week", ttl=3600)
    assert (pin.kind, pin.tier_after, pin.automatic) == ("tier_change", "trusted", False)
    est.steady("bot", 19.0, 30)  # a statistical anomaly: contained, but the tier holds
    assert est.engine.tier("bot") == "trusted"
    throttle = est.of("bot", "throttle")[0]
    assert throttle.evidence["pinned_tier_kept"] == "trusted"
    assert est.engine.explain("bot")["pin"]["reason"] == "launch week"
    est.clock.now += 3700
    expired = est.engine.tick()
    assert any(e.detector == "pin" and e.automatic for e in expired)
    assert est.engine.explain("bot")["pin"] is None
    est.engine.pin("bot", "trusted", reason="again", ttl=0)
    est.engine.record_breaker("bot", "daily-spend", 2.0, 1.0)
    assert est.engine.tier("bot") == "quarantined" and est.engine.explain("bot")["pin"] is None
    with pytest.raises(ValueError):
        est.engine.pin("bot", "standard", reason="no")


def test_unpin_and_rebaseline(est: Driver) -> None:
    est.engine.pin("bot", "probation", reason="investigating")
    [unpinned] = est.engine.unpin("bot", reason="done")
    assert unpinned.kind == "operator" and unpinned.reason == "done"
    [rebased] = est.engine.rebaseline("bot", reason="new workload")
    assert rebased.kind == "operator" and rebased.detector == "rebaseline"
    info = est.engine.explain("bot")
    assert (
        info["learning"] is True
        and info["detectors"]["cost_creep"]["reference_pico_per_call"] is None
    )
    est.steady("bot", 5.0, 120)  # relearning: statistical detectors only alert
    assert est.of("bot", "throttle") == []


def test_explain_tells_the_story(est: Driver) -> None:
    est.steady("bot", 19.0, 5, make=lambda: {"prompt": "LOOP"}, poisson=False)
    info = est.engine.explain("bot")
    assert "throttle by loop" in info["summary"] and "contained" in info["summary"]
    assert info["tier"] == "probation" and info["containment"]["detector"] == "loop"
    assert "contained after a throttle" in info["promotion_blocked_by"]
    assert set(info["detectors"]) == {
        "request_rate",
        "cost_rate",
        "loop",
        "error_storm",
        "model_jump",
        "cost_creep",
        "source",
        "identity_mismatch",
    }
    assert info["events"][0]["kind"] == "throttle" and info["events"][0]["evidence"]
    assert {"mean", "lower", "good", "bad"} <= set(info["score"])
    json.dumps(info)
    with pytest.raises(KeyError):
        est.engine.explain("ghost")


def test_snapshot_restore_round_trip_continues_identically(est: Driver) -> None:
    est.steady("bot", 19.0, 5, make=lambda: {"prompt": "LOOP"}, poisson=False)
    est.engine.pin("other", "standard", reason="x")
    data = json.loads(json.dumps(est.engine.snapshot()))
    twin = TrustEngine(TrustConfig(), Clock(est.clock.now))
    twin.restore(data)
    assert json.loads(json.dumps(twin.snapshot())) == data
    a = Driver(est.engine, est.clock)
    b = Driver(twin, Clock(est.clock.now))
    ga = a.steady("bot", 19.0, 200, make=lambda: {"prompt": "LOOP"}, poisson=False)
    gb = b.steady("bot", 19.0, 200, make=lambda: {"prompt": "LOOP"}, poisson=False)
    assert [(g.allowed, g.rule_id, g.tier) for g in ga] == [
        (g.allowed, g.rule_id, g.tier) for g in gb
    ]
    assert [(e.kind, e.at) for e in a.events] == [(e.kind, e.at) for e in b.events]
    with pytest.raises(ValueError):
        twin.restore({"version": 99})


def test_gate_shape_for_the_gateway(est: Driver) -> None:
    gate = est.call("bot")
    assert gate.allowed and gate.tier == "standard" and gate.rate_multiplier == 1.0
    assert gate.lane == "normal" and gate.verification == "token" and gate.limit_rps >= 1.0


def test_idle_agents_forget_through_tick(est: Driver) -> None:
    good = est.engine.explain("bot")["score"]["good"]
    est.engine.tick(est.clock.now + 7 * DAY)
    assert est.engine.explain("bot", est.clock.now + 7 * DAY)["score"]["good"] == pytest.approx(
        good / 2, rel=0.05
    )
