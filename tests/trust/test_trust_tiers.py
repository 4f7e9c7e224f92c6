"""The score, the tier machine and its damping: hysteresis, dwell, promotion gap, flap lock."""

from __future__ import annotations

import math

import pytest

from agentctl.identity import Identity
from agentctl.trust import Tier, TrustConfig, TrustEngine
from agentctl.trust.score import BetaScore
from agentctl.trust.tiers import TierState

from .conftest import DAY, T0, Clock, Driver

CFG = TrustConfig()
H = 3600.0


def test_beta_mean_lower_bound_and_forgetting() -> None:
    s = BetaScore()
    assert s.mean == 0.5
    s.good = 20.0
    assert s.mean == pytest.approx(21 / 22)
    assert s.lower == pytest.approx(21 / 22 - 1.645 * math.sqrt((21 / 22) * (1 / 22) / 23))
    s.bad = 10.0
    s.forget(168, 168.0)
    assert (s.good, s.bad) == pytest.approx((10.0, 5.0))


def state_at(tier: Tier) -> TierState:
    return TierState(tier=tier, since=T0)


def test_demotion_uses_the_mean_with_a_gap_below_promotion() -> None:
    trusted = state_at(Tier.TRUSTED)
    assert trusted.demotion(BetaScore(good=7.0, bad=2.0), CFG, Tier.TRUSTED) is None  # E=0.73
    assert trusted.demotion(BetaScore(good=6.0, bad=3.0), CFG, Tier.TRUSTED) is Tier.STANDARD
    standard = state_at(Tier.STANDARD)
    assert standard.demotion(BetaScore(good=3.0, bad=3.0), CFG, Tier.TRUSTED) is None  # E=0.5
    assert standard.demotion(BetaScore(good=2.0, bad=4.0), CFG, Tier.TRUSTED) is Tier.PROBATION
    assert trusted.demotion(BetaScore(good=50.0), CFG, Tier.PROBATION) is Tier.PROBATION  # ceiling


def test_promotion_needs_the_lower_bound_for_the_whole_dwell() -> None:
    st = state_at(Tier.PROBATION)
    good = BetaScore(good=30.0)
    results = [st.promotion(good, T0 + h * H, CFG, Tier.TRUSTED, blocked=False) for h in range(30)]
    first = next(h for h, r in enumerate(results) if r is not None)
    assert results[first] is Tier.STANDARD and first == 24
    st2 = state_at(Tier.PROBATION)
    for h in range(20):
        st2.promotion(good, T0 + h * H, CFG, Tier.TRUSTED, blocked=False)
    st2.promotion(BetaScore(good=1.0), T0 + 20 * H, CFG, Tier.TRUSTED, blocked=False)  # L dips
    assert st2.streak_since is None


def test_promotion_gap_and_quiet_period() -> None:
    st = state_at(Tier.STANDARD)
    st.last_promotion_at = T0
    st.since = T0
    good = BetaScore(good=60.0)
    r = [st.promotion(good, T0 + h * H, CFG, Tier.TRUSTED, blocked=False) for h in range(80)]
    assert next(h for h, x in enumerate(r) if x is Tier.TRUSTED) == 72
    st = state_at(Tier.PROBATION)
    st.last_medium_at = T0 + 20 * H
    r = [st.promotion(good, T0 + h * H, CFG, Tier.TRUSTED, blocked=False) for h in range(50)]
    assert next(h for h, x in enumerate(r) if x is not None) == 44


def test_ceiling_and_blocks_stop_promotion() -> None:
    good = BetaScore(good=60.0)
    st = state_at(Tier.PROBATION)
    assert all(
        st.promotion(good, T0 + h * H, CFG, Tier.PROBATION, blocked=False) is None
        for h in range(100)
    )
    st = state_at(Tier.PROBATION)
    assert all(
        st.promotion(good, T0 + h * H, CFG, Tier.TRUSTED, blocked=True) is None for h in range(100)
    )


def test_flap_lock_after_more_than_three_changes_in_a_week() -> None:
    st = state_at(Tier.STANDARD)
    locks = [
        st.move(t, T0 + i * DAY, CFG, automatic=True)
        for i, t in enumerate([Tier.PROBATION, Tier.STANDARD, Tier.PROBATION, Tier.STANDARD])
    ]
    assert locks == [False, False, False, True] and st.flap_locked(T0 + 4 * DAY)
    assert (
        st.promotion(BetaScore(good=60.0), T0 + 5 * DAY, CFG, Tier.TRUSTED, blocked=False) is None
    )
    assert not st.flap_locked(T0 + 3 * DAY + CFG.flap_lock_s + 1)
    manual = state_at(Tier.STANDARD)
    assert not any(manual.move(Tier.PROBATION, T0 + i, CFG, automatic=False) for i in range(10))


def test_new_agents_start_in_probation_and_earn_tiers_slowly(drive: Driver) -> None:
    drive.engine.register(
        "bot",
        created_at=drive.clock.now,
        identity=Identity("bot", "team", "production", verification="token"),
    )
    assert drive.engine.tier("bot") == "probation"
    drive.nights("bot", 6, rate=0.2, hours=5)
    assert drive.engine.tier("bot") == "probation"  # learning mode: 7 days
    drive.nights("bot", 3, rate=0.2, hours=5)
    assert drive.engine.tier("bot") == "standard"
    drive.nights("bot", 4, rate=0.2, hours=5)
    assert drive.engine.tier("bot") == "standard"  # trusted needs 14 days of age
    drive.nights("bot", 3, rate=0.2, hours=5)
    assert drive.engine.tier("bot") == "trusted"
    changes = [e for e in drive.of("bot") if e.tier_before != e.tier_after]
    assert [(e.tier_before, e.tier_after) for e in changes] == [
        ("probation", "standard"),
        ("standard", "trusted"),
    ]


def test_unverified_agents_never_rise_above_probation(clock: Clock) -> None:
    engine = TrustEngine(TrustConfig(), clock)
    engine.register("anon", identity=Identity("anon", "team", "production"))
    drive = Driver(engine, clock)
    drive.nights("anon", 20, rate=0.2, hours=5)
    assert engine.tier("anon") == "probation"
    assert engine.explain("anon")["ceiling"] == "probation"


def test_development_agents_stop_at_standard(clock: Clock) -> None:
    engine = TrustEngine(TrustConfig(), clock)
    engine.register("dev", identity=Identity("dev", "team", "development", verification="token"))
    drive = Driver(engine, clock)
    drive.nights("dev", 18, rate=0.2, hours=5)
    assert engine.tier("dev") == "standard"


def test_expected_agents_match_registered_ones_once_they_call() -> None:
    """A gateway `expect`s every registered agent (no detector state until its first
    request, for 100,000 agents that mostly never call); it must end up where an agent
    `register`ed at start would, idle days of hourly ticks included."""
    identity = Identity("bot", "team", "production", verification="token")
    drivers = []
    for eager in (True, False):
        clock = Clock()
        engine = TrustEngine(TrustConfig(), clock)
        if eager:
            engine.register("bot", created_at=T0 - 2 * DAY, identity=identity)
        else:
            engine.expect("bot", created_at=T0 - 2 * DAY, identity=identity)
            assert engine.agents() == ["bot"] and engine.tier("bot") == "probation"
            assert "bot" not in engine.snapshot()["agents"]
        drive = Driver(engine, clock)
        for _ in range(72):  # three idle days
            clock.now += H
            drive.events += engine.tick(clock.now)
        drive.nights("bot", 14, rate=0.2, hours=5)
        drivers.append(drive)
    eager_drive, lazy_drive = drivers
    assert lazy_drive.engine.tier("bot") == eager_drive.engine.tier("bot") == "trusted"
    assert [(e.kind, e.tier_before, e.tier_after) for e in lazy_drive.of("bot")] == [
        (e.kind, e.tier_before, e.tier_after) for e in eager_drive.of("bot")
    ]
    assert lazy_drive.engine.explain("bot") == eager_drive.engine.explain("bot")


def test_an_operator_disable_is_undone_by_enable_not_a_pin() -> None:
    """Regression (new-user trial): `trust show` offered `trust pin` as the undo of a
    manual `agents disable`."""
    from agentctl.trust import TrustEngine

    engine = TrustEngine(clock=lambda: 1_000_000.0)
    (event,) = engine.on_disable("bot", "incident")
    assert event.undo == 'agentctl agents enable bot --reason "..."'


def test_a_pin_is_undone_by_unpin_not_another_pin() -> None:
    """Regression (operator trial): a pin's undo said `trust pin ... --tier probation
    --ttl 24h`, which would have frozen the agent in probation for a day."""
    from agentctl.trust import TrustEngine

    engine = TrustEngine(clock=lambda: 1_000_000.0)
    events = engine.pin("bot", "standard", reason="vetted", ttl=3600)
    assert events and all(e.undo == 'agentctl trust unpin bot --reason "..."' for e in events)
