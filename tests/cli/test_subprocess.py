"""The real commands as subprocesses: serve, agents disable, report, demo."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price

from agentctl.money import to_pico, usd_str
from agentctl.simulator import RunningSimulator
from tests.conftest import CANARY
from tests.procs import GatewayProcess, agentctl

pytestmark = pytest.mark.slow
IDENTITY = "name=sub-bot; owner=team-ml; purpose=production"


async def test_serve_quick_mode_end_to_end(home: Path, sim: RunningSimulator) -> None:
    env = {"AGENTCTL_HOME": str(home)}
    gw = GatewayProcess(
        ["--upstream", sim.openai_url, "--upstream-key-env", "SIM_PROVIDER_KEY"], home
    )
    try:
        await asyncio.to_thread(gw.wait_ready)
        client = openai.AsyncOpenAI(
            base_url=gw.url + "/v1", api_key="sk-x", default_headers={"X-Agent-Identity": IDENTITY}
        )
        resp = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d"}]
        )
        assert sim.state.requests[-1].headers["Authorization"] == f"Bearer {CANARY}"

        done = await asyncio.to_thread(
            agentctl, "agents", "disable", "sub-bot", "--reason", "test", env=env
        )
        assert done.returncode == 0, done.stderr
        started = time.monotonic()
        refused = None
        served_before_the_switch = 0  # requests the gateway served before its poll saw it
        served = [resp]
        while time.monotonic() - started < 3:
            try:
                extra = await client.with_options(max_retries=0).chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
                )
                served_before_the_switch += 1
                served.append(extra)
            except openai.PermissionDeniedError as exc:
                refused = exc
                break
            await asyncio.sleep(0.05)
        assert refused is not None and refused.code == "agent_disabled"
        assert refused.response.headers["x-should-retry"] == "false"
        assert time.monotonic() - started < 1.5

        # The report waits for the recorder's batch; poll until both records are in.
        for _ in range(50):
            rep = await asyncio.to_thread(
                agentctl, "report", "--agent", "sub-bot", "--format", "json", env=env
            )
            data = json.loads(rep.stdout)
            if data["totals"]["requests"] == 2 + served_before_the_switch:
                break
            await asyncio.sleep(0.1)
        assert data["totals"]["requests"] == 2 + served_before_the_switch
        assert data["totals"]["denied"] == 1
        expected = sum(
            to_pico(
                Decimal(
                    calc_price(
                        GPUsage(
                            input_tokens=r.usage.prompt_tokens,
                            output_tokens=r.usage.completion_tokens,
                        ),
                        "gpt-4o-mini",
                        provider_id="openai",
                    ).total_price
                )
            )
            for r in served
            if r.usage is not None
        )
        assert data["totals"]["cost_usd"] == usd_str(expected)
    finally:
        code = await asyncio.to_thread(gw.stop, signal.SIGTERM)
    assert code == 0, gw.output()
    assert CANARY not in gw.output()


def test_serve_refuses_public_bind_without_key(home: Path) -> None:
    res = agentctl("serve", "--host", "0.0.0.0", "--upstream", "http://127.0.0.1:9/v1")
    assert res.returncode == 1
    assert "gateway key" in res.stderr and "Traceback" not in res.stderr


def test_serve_without_upstream_says_how(home: Path) -> None:
    res = agentctl("serve")
    assert res.returncode == 1 and "--upstream" in res.stderr


def test_serve_warns_when_a_remote_upstreams_key_is_unset(home: Path) -> None:
    """Regression: with OPENAI_API_KEY unset, serve started silently and every request
    to a real provider would have come back 401."""
    env = "AGENTCTL_TEST_UNSET_KEY"
    assert env not in os.environ
    remote = GatewayProcess(
        ["--upstream", "https://provider.invalid/v1", "--upstream-key-env", env], home
    )
    try:
        remote.wait_ready()
        out = remote.output()
    finally:
        remote.stop()
    assert f"{env} is not set, so requests to https://provider.invalid/v1 go out" in out
    local = GatewayProcess(["--upstream", "http://127.0.0.1:9/v1", "--upstream-key-env", env], home)
    try:
        local.wait_ready()
        out = local.output()
    finally:
        local.stop()
    assert "is not set" not in out  # a loopback upstream often needs no key


def test_demo_runs_offline_and_cleans_up(home: Path) -> None:
    res = agentctl("demo", "--seconds", "4", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "runaway-loop" in res.stdout and "TOTAL" in res.stdout
    assert "simulated upstream" in res.stderr


def test_ctrl_c_on_tail_exits_130_without_a_traceback(home: Path) -> None:
    """Ctrl-C is how `tail` is stopped; the shell convention (and the CLI docstring) is
    128 + SIGINT. It used to exit 0, and other commands click's "Aborted!" with 1."""
    assert (
        agentctl(
            "agents", "register", "bot-a", "--owner", "team-ml", "--purpose", "production"
        ).returncode
        == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "tail", "--json", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        time.sleep(2.0)  # imported and polling (there is nothing to print)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "Aborted" not in err, err
