"""`agentctl tail`: per-agent rows against a live gateway (--json) and in a terminal (pty)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.fleet import Fleet
from agentctl.store.sql import Store, now_us
from tests.harness import GatewayHarness

runner = CliRunner()
MSG = [{"role": "user", "content": "one two three four"}]


def snapshot(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["tail", "--once", "--json", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return dict(json.loads(result.stdout))


async def traffic(gateway: GatewayHarness) -> None:
    big = gateway.aclient("name=spender; owner=team-ml; purpose=production")
    small = gateway.aclient("name=saver; owner=team-ml; purpose=batch")
    other = gateway.aclient("name=ops-bot; owner=team-ops; purpose=production", max_retries=0)
    await asyncio.gather(
        *(big.chat.completions.create(model="gpt-4o", messages=MSG) for _ in range(4)),  # type: ignore[arg-type]
        *(small.chat.completions.create(model="gpt-4o-mini", messages=MSG) for _ in range(3)),  # type: ignore[arg-type]
    )
    await asyncio.to_thread(
        runner.invoke,
        app,
        ["agents", "disable", "ops-bot", "--reason", "test", "--owner", "team-ops", "--force"],
    )
    await asyncio.sleep(0.6)  # the gateway's poll picks the switch up
    with contextlib.suppress(Exception):
        await other.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    await gateway.flush()


async def test_rows_sorted_by_cost_rate_with_status(gateway: GatewayHarness) -> None:
    live = asyncio.create_task(asyncio.to_thread(snapshot, "--seconds", "3", "--interval", "0.1"))
    await asyncio.sleep(0.8)  # tail seeds first, then polls new records by id
    await traffic(gateway)
    polled = await live
    seeded = await asyncio.to_thread(snapshot)  # a fresh tail: today's totals + last minute
    for data in (polled, seeded):
        rows = {r["agent"]: r for r in data["agents"]}
        assert [r["agent"] for r in data["agents"]][:2] == ["spender", "saver"]
        assert rows["spender"]["requests_per_min"] == 4 and rows["saver"]["requests_per_min"] == 3
        assert rows["ops-bot"]["status"] == "disabled"
        assert rows["ops-bot"]["last_error"] == "agent_disabled"
        assert rows["spender"]["tier"] is None and rows["spender"]["budget_today_usd"] is None
        assert data["fleet"]["requests_per_min"] == 8 and data["fleet"]["disabled"] == 1
        records = await gateway.records()
        spent = sum(r["cost_pico"] or 0 for r in records if r["agent"] == "spender")
        assert rows["spender"]["usd_today"] == rows["spender"]["usd_per_min"]
        assert int(float(rows["spender"]["usd_today"]) * 10**12 + 0.5) == spent
    team = await asyncio.to_thread(snapshot, "--team", "team-ops")
    assert [r["agent"] for r in team["agents"]] == ["ops-bot"]


def test_seed_and_poll_never_count_twice(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    now = now_us()

    def batch(tag: str, n: int) -> list[dict[str, Any]]:
        return [
            {
                "request_id": f"{tag}{i}",
                "ts_us": now - 1000 * i,
                "agent": "a",
                "cost_pico": 5,
                "outcome": "served",
            }
            for i in range(n)
        ]

    store.append_records(batch("old", 3))
    fleet = Fleet(store)
    fleet.seed()
    store.append_records(batch("new", 2))
    assert len(fleet.poll()) == 2 and fleet.poll() == []
    row = fleet.snapshot(now_us())[0]
    assert (row["requests_per_min"], row["requests_today"], row["usd_today"]) == (
        5,
        5,
        "0.000000000025",
    )


@pytest.mark.skipif(sys.platform != "linux", reason="pty behaviour checked on Linux")
def test_live_view_in_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pty.db'}"
    store = Store(url)
    store.migrate()
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "180", "LINES": "30"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentctl",
            "tail",
            "--db",
            url,
            "--seconds",
            "4",
            "--interval",
            "0.1",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 60
        appended = False
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                output += os.read(master, 65536)
            if not appended and b"agentctl tail" in output:
                store.append_records(
                    [
                        {"request_id": f"p{i}", "ts_us": now_us(), "agent": "pty-bot",
                         "owner": "team-x", "cost_pico": 10**9, "outcome": "served"}
                        for i in range(7)
                    ]
                )  # fmt: skip
                appended = True
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                output += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert proc.returncode == 0, text
    assert "agentctl tail" in text and "req/min" in text
    row = re.search(r"pty-bot\W+team-x\W+active\W+-\W+7\W+0\W+0\.0070\W+0\.0070 / -\W+0\W", text)
    assert row, text[-2000:]


def test_refusals_without_an_identity_get_a_named_row(tmp_path: Path) -> None:
    # Regression: a malformed or missing X-Agent-Identity is audited with agent ""; the
    # live view showed it as a row with blank name, owner and purpose.
    from rich.console import Console

    from agentctl.cli.tail import view
    from agentctl.policy import load_text
    from agentctl.policy.loader import canonical_json

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    policy = load_text("apiVersion: agentctl/v1\ndefaults:\n  budgets:\n    day: {usd: '100'}\n")
    store.apply_policy(
        policy.version, canonical_json(policy.document), ["t.yaml"], actor="t", reason="t"
    )
    store.append_records(
        [
            {"request_id": "r1", "ts_us": now_us(), "agent": "", "status": 400,
             "outcome": "refused", "rule_id": "invalid_identity"},
            {"request_id": "r2", "ts_us": now_us(), "agent": "bot", "owner": "team-a",
             "purpose": "batch", "status": 200, "outcome": "served", "cost_pico": 5},
        ]
    )  # fmt: skip
    from agentctl.fleetinfo import StoreInfo

    fleet = Fleet(store, info=StoreInfo(store))
    fleet.seed()
    console = Console(width=200, record=True, force_terminal=False)
    console.print(view(fleet))
    lines = console.export_text().splitlines()
    unnamed = [line for line in lines if "(no identity)" in line]
    assert len(unnamed) == 1 and " - " in unnamed[0]
    assert "0.0000 / -" in unnamed[0]  # no budget applies to no identity
    assert any("bot" in line and "team-a" in line and "/ 100.0000" in line for line in lines)
