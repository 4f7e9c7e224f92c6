"""Shared fixtures. Every test runs with its own AGENTCTL_HOME and no provider keys
from the developer's environment, so nothing touches real data or real providers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentctl.simulator import RunningSimulator, start_simulator
from tests.harness import GatewayHarness

CANARY = "sk-canary-DO-NOT-LEAK-7f3a9c"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("AGENTCTL_", "OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(key, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("AGENTCTL_HOME", str(path))
    monkeypatch.setenv("SIM_PROVIDER_KEY", CANARY)
    monkeypatch.setenv("NO_COLOR", "1")
    return path


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def gateway(home: Path, sim: RunningSimulator) -> AsyncIterator[GatewayHarness]:
    harness = GatewayHarness(home, sim)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
