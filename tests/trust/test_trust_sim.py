"""The small seeded simulation meets every target (its clock is fake: times are exact)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SIM_PATH = Path(__file__).resolve().parents[2] / "bench" / "trust_sim.py"


def load_sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trust_sim", SIM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trust_sim"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_small_simulation_meets_every_target() -> None:
    sim = load_sim()
    result = sim.run(sim.SimConfig.small(seed=7))
    failed = {
        name: (value, limit) for name, (value, limit, ok) in result.targets().items() if not ok
    }
    assert failed == {}
    [headline] = result.by_kind("loop-38x")
    assert headline.delay(headline.throttle) <= 10 and headline.pico_to_throttle < 2 * 10**12
    assert headline.disable is not None  # it went on after throttling, so it was disabled
    assert result.clean.disables == 0 and result.clean.agent_weeks >= 10
    for flood in result.by_kind("spoof-flood") + result.by_kind("mismatch-flood"):
        assert flood.victim_unharmed and flood.victim_tier_before == flood.victim_tier_after
    [mismatch] = result.by_kind("mismatch-flood")
    assert mismatch.delay(mismatch.disable) is not None  # the token's own agent is disabled
    text = result.table("python bench/trust_sim.py --small")
    assert "| loop-38x |" in text and "Targets" in text
