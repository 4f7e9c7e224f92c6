"""A model without a price is warned about once, with one audit event; an upstream that
serves any name cannot turn that into a flood of log lines and events."""

from __future__ import annotations

import json
import logging

import pytest

from agentctl.gateway import runtime
from tests.gateway.support import BODY, post
from tests.harness import GatewayHarness


async def test_unpriced_warnings_stop_after_the_cap(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "MAX_UNPRICED_WARNINGS", 3)
    caplog.set_level(logging.WARNING, logger="agentctl.gateway")
    for i in [0, 1, 0, 2, 3, 4, 5]:
        resp = await post(gateway, json.dumps({**BODY, "model": f"no-price-model-{i}"}).encode())
        assert resp.status_code == 200, resp.text
    events = await gateway.records(kinds=("unpriced_model",))
    assert sorted(e["model"] for e in events) == [f"no-price-model-{i}" for i in range(3)]
    warned = [r.getMessage() for r in caplog.records if "has no price" in r.getMessage()]
    assert len(warned) == 3
    last = [r.getMessage() for r in caplog.records if "more than 3 models" in r.getMessage()]
    assert len(last) == 1
    records = [r for r in await gateway.records() if r["outcome"] == "served"]
    assert len(records) == 7 and all(r["cost_pico"] is None for r in records)  # unpriced
