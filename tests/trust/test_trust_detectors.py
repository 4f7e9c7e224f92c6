"""Each detector on its own: fires on the anomaly, stays quiet on normal traffic, O(1) state."""

from __future__ import annotations

import json
import random

from agentctl.trust import TrustConfig
from agentctl.trust.creep import CreepCusum
from agentctl.trust.escalation import ModelJumpDetector
from agentctl.trust.loop import LoopDetector
from agentctl.trust.rates import RateDetector
from agentctl.trust.signals import LOOP, MEDIUM, STATISTICAL, WEAK
from agentctl.trust.sources import SourceTracker
from agentctl.trust.storms import ErrorWindow, Fleet

from .conftest import DAY, T0

CFG = TrustConfig()


def feed_rate(
    det: RateDetector,
    rate: float,
    seconds: float,
    start: float,
    rng: random.Random,
    *,
    learning: bool = False,
) -> tuple[float, list[float]]:
    """Poisson arrivals; the active clock equals wall time here (no idle gaps)."""
    t, fired = start, []
    while True:
        t += rng.expovariate(rate)
        if t >= start + seconds:
            return start + seconds, fired
        if det.observe(1.0, t, t - T0, CFG, learning, True) is not None:
            fired.append(t)


def learned_rate_detector(rate: float = 0.5) -> tuple[RateDetector, float]:
    det = RateDetector("request_rate", CFG.rate_floor_rps, CFG.rate_slow_multiple)
    rng = random.Random(1)
    t, _ = feed_rate(det, rate, 6 * 3600, T0, rng, learning=True)
    t, fired = feed_rate(det, rate, 6 * 3600, t, rng)
    assert fired == []
    return det, t


def test_rate_quiet_on_normal_traffic_and_fast_on_a_38x_loop() -> None:
    det, t = learned_rate_detector()
    _, fired = feed_rate(det, 19.0, 60, t, random.Random(2))
    assert fired and fired[0] - t < 15.0
    sig = det.observe(1.0, fired[-1] + 0.05, fired[-1] + 0.05 - T0, CFG, False, True)
    assert sig is not None and sig.level == STATISTICAL and sig.value > sig.threshold


def test_rate_sees_a_sustained_6x_loop_on_the_slow_window() -> None:
    det, t = learned_rate_detector()
    _, fired = feed_rate(det, 3.0, 600, t, random.Random(3))
    assert fired and fired[0] - t < 300.0


def test_rate_tolerates_a_month_end_doubling() -> None:
    det, t = learned_rate_detector()
    _, fired = feed_rate(det, 1.0, 4 * 3600, t, random.Random(4))
    assert fired == []


def test_rate_unarmed_learns_silently() -> None:
    det = RateDetector("request_rate", CFG.rate_floor_rps, CFG.rate_slow_multiple)
    assert all(
        det.observe(1.0, T0 + i / 19, i / 19, CFG, False, False) is None for i in range(2000)
    )


def test_peaks_freeze_while_alarmed_and_grow_at_most_20_percent_a_day() -> None:
    det, t = learned_rate_detector()
    peak_before = det.peaks(t - T0, CFG)[0]
    _, fired = feed_rate(det, 19.0, 300, t, random.Random(5))
    assert fired  # before the alarm the peak may only grow by the daily cap, never after
    assert det.peaks(t + 300 - T0, CFG)[0] <= peak_before * CFG.peak_growth_per_day * 1.0001
    det2, t2 = learned_rate_detector()
    start_peak = det2.peaks(t2 - T0, CFG)[1]
    feed_rate(det2, 1.2, 6 * 3600, t2, random.Random(6))  # 2.4x: below the alarm, above peak
    assert det2.peaks(t2 + 6 * 3600 - T0, CFG)[1] <= start_peak * CFG.peak_growth_per_day * 1.0001


def test_rate_state_is_constant_size() -> None:
    det, t = learned_rate_detector()
    size = len(json.dumps(det.to_state()))
    feed_rate(det, 5.0, 3600, t, random.Random(7))
    assert len(json.dumps(det.to_state())) <= size + 40


def test_loop_fires_at_twenty_identical_prompts_in_a_minute() -> None:
    det = LoopDetector()
    signals = [det.observe("h", T0 + i * 0.5, CFG) for i in range(20)]
    assert all(s is None for s in signals[:19])
    last = signals[19]
    assert last is not None and last.level == LOOP and last.value >= 20
    assert last.evidence["prompt_hash"] == "h"
    assert det.is_hot("h", T0 + 10, CFG) and not det.is_hot("other", T0 + 10, CFG)


def test_loop_quiet_when_repeats_are_spread_or_distinct() -> None:
    det = LoopDetector()
    assert all(det.observe("h", T0 + i * 4.0, CFG) is None for i in range(100))  # 15 a minute
    assert all(det.observe(f"p{i}", T0 + 400 + i * 0.01, CFG) is None for i in range(500))


def test_loop_memory_is_bounded() -> None:
    det = LoopDetector()
    for i in range(5 * CFG.loop_max_hashes):
        det.observe(f"p{i}", T0 + i * 0.001, CFG)
    assert len(det.cur) <= CFG.loop_max_hashes and len(det.prev) <= CFG.loop_max_hashes


def test_error_storm_needs_half_of_twenty_held_for_a_minute() -> None:
    win = ErrorWindow()
    signals = [win.observe(i % 2 == 0, i % 2 == 0, T0 + i * 3, CFG) for i in range(60)]
    fired = [s for s in signals if s is not None]
    assert fired and fired[0].level == STATISTICAL and fired[0].value >= 0.5
    calm = ErrorWindow()
    assert all(calm.observe(i % 3 == 0, i % 3 == 0, T0 + i * 3, CFG) is None for i in range(100))
    few = ErrorWindow()
    assert all(few.observe(True, True, T0 + i * 20, CFG) is None for i in range(12))


def test_fleet_outage_when_a_third_of_eligible_agents_spike() -> None:
    fleet = Fleet()
    windows = {f"a{i}": ErrorWindow() for i in range(10)}
    quiet = {f"q{i}": ErrorWindow() for i in range(20)}  # too few requests to count

    def run(failing: int, start: float) -> None:
        for step in range(6):
            t = start + step * 10
            for i, (name, win) in enumerate(windows.items()):
                bad = i < failing
                win.observe(bad, bad, t, CFG)
                fleet.note(name, t)
        for name, win in quiet.items():
            win.observe(False, False, start, CFG)
            fleet.note(name, start)

    lookup = {**windows, **quiet}.get
    run(failing=2, start=T0)
    assert not fleet.is_outage(T0 + 60, lookup, CFG)
    run(failing=4, start=T0 + 120)
    share, eligible = fleet.share(T0 + 180, lookup, CFG)
    assert eligible == 10 and share >= 0.3 and fleet.is_outage(T0 + 180, lookup, CFG)
    assert not fleet.is_outage(T0 + 3600, lookup, CFG)  # nobody active any more


def test_model_jump_alerts_then_throttles() -> None:
    det = ModelJumpDetector()
    for i in range(50):
        assert det.observe("gpt-4o", 10_000_000_000, 2500, T0 + i, CFG, learning=False) is None
    first = det.observe("o1", 60_000_000_000, 2500, T0 + 60, CFG, learning=False)
    assert first is not None and first.level == WEAK and first.evidence["model"] == "o1"
    levels = [
        det.observe("o1", 60_000_000_000, 2500, T0 + 61 + i, CFG, learning=False) for i in range(9)
    ]
    assert levels[-1] is not None and levels[-1].level == STATISTICAL
    cheap = det.observe("gpt-4o-mini", 600_000_000, 2500, T0 + 80, CFG, learning=False)
    assert cheap is None


def test_model_jump_silent_in_learning() -> None:
    det = ModelJumpDetector()
    det.observe("gpt-4o", 10_000_000_000, 2500, T0, CFG, learning=True)
    assert det.observe("o1", 60_000_000_000, 2500, T0 + 1, CFG, learning=True) is None


def run_days(det: CreepCusum, days: int, start_day: int, growth: float) -> list[tuple[int, str]]:
    fired = []
    for d in range(days):
        day_start = T0 + (start_day + d) * DAY
        cost = int(10_000_000_000 * (1 + growth) ** d)
        for i in range(100):
            det.add(cost, day_start + i)
        sig = det.roll(day_start + DAY, CFG)
        if sig is not None:
            fired.append((d, sig.level))
    return fired


def test_creep_freezes_a_reference_and_catches_5_percent_a_day() -> None:
    det = CreepCusum()
    det.roll(T0, CFG)
    assert run_days(det, 7, 0, 0.0) == [] and det.reference is not None
    assert run_days(det, 14, 7, 0.0) == []
    fired = run_days(det, 14, 21, 0.05)
    assert fired and fired[0][1] == WEAK and fired[0][0] <= 7
    det.reset_reference()
    assert det.reference is None and det.cusum == 0.0


def test_creep_escalates_when_unacknowledged_for_a_week() -> None:
    det = CreepCusum()
    det.roll(T0, CFG)
    run_days(det, 7, 0, 0.0)
    levels = [level for _, level in run_days(det, 20, 7, 0.06)]
    assert WEAK in levels and MEDIUM in levels


def test_sources_new_source_alerts_and_interleaving_is_sharing() -> None:
    src = SourceTracker()
    assert src.observe("home", T0, CFG, learning=True) is None
    first = src.observe("thief", T0 + 10, CFG, learning=False)
    assert first is not None and first.level == WEAK
    signal = None
    for i in range(30):
        src.observe("home", T0 + 20 + i * 10, CFG, learning=False)
        signal = src.observe("thief", T0 + 25 + i * 10, CFG, learning=False) or signal
    assert signal is not None and signal.level == STATISTICAL


def test_sources_clean_migration_is_adopted_without_a_throttle() -> None:
    src = SourceTracker()
    for i in range(10):
        src.observe("old", T0 + i, CFG, learning=True)
    levels = [
        s.level
        for i in range(400)
        if (s := src.observe("new", T0 + 100 + i * 10, CFG, learning=False)) is not None
    ]
    assert levels == [WEAK]
    assert "new" in src.known
