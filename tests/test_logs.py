"""`agentctl serve --log-format json`: a whole gateway run (start, served, refused, failed
and unpriced requests, shutdown) logs one JSON object per line and never a credential."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest

from agentctl.simulator import RunningSimulator
from tests.conftest import CANARY
from tests.procs import GatewayProcess, agentctl

pytestmark = pytest.mark.slow
READY = "agentctl gateway listening on "


async def drive(url: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        ok = await client.post("/v1/chat/completions", json=chat, headers=auth)
        assert ok.status_code == 200, ok.text
        streamed = await client.post(
            "/v1/chat/completions", json={**chat, "stream": True}, headers=auth
        )
        assert streamed.status_code == 200
        unpriced = {**chat, "model": "house-model-7"}  # warns once: no price known
        assert (await client.post("/v1/chat/completions", json=unpriced, headers=auth)).is_success
        failed = await client.post(
            "/v1/chat/completions", json=chat, headers={**auth, "x-sim-status": "500"}
        )
        assert failed.status_code == 500
        forged = {"Authorization": f"Bearer {token[:-4]}XXXX"}
        assert (
            await client.post("/v1/chat/completions", json=chat, headers=forged)
        ).status_code == 401
        assert (await client.get("/metrics")).status_code == 200


async def test_json_logs_of_a_full_run_carry_no_credentials(
    home: Path, sim: RunningSimulator
) -> None:
    env = {"AGENTCTL_HOME": str(home)}
    reg = await asyncio.to_thread(
        agentctl,
        "agents", "register", "log-bot", "--owner", "team-a", "--purpose", "production", "--json",
        env=env,
    )  # fmt: skip
    assert reg.returncode == 0, reg.stderr
    token = json.loads(reg.stdout)["token"]
    gw = GatewayProcess(
        [
            "--upstream", sim.openai_url, "--upstream-key-env", "SIM_PROVIDER_KEY",
            "--log-format", "json", "--log-level", "debug",
        ],
        home,
    )  # fmt: skip
    try:
        await asyncio.to_thread(gw.wait_ready)
        await drive(gw.url, token)
    finally:
        code = await asyncio.to_thread(gw.stop, signal.SIGTERM)
    output = gw.output()
    assert code == 0, output
    secret = token.split("_", 2)[2]  # agk_<key id>_<secret>; the secret may hold "_"
    for credential in (CANARY, token, secret):
        assert credential not in output

    lines = [line for line in output.splitlines() if line.strip()]
    records, other = [], []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            other.append(line)
    for rec in records:
        assert {"timestamp", "level", "logger", "message"} <= set(rec), rec
        assert rec["timestamp"].endswith("+00:00")
    messages = " ".join(r["message"] for r in records)
    assert "house-model-7" in messages  # the unpriced warning is one of them
    assert "shutting down" in messages
    assert not other, other


def test_log_lines_follow_stderr_when_it_is_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the handler kept the stderr of the moment `setup_logging` ran; after a
    CLI test runner closed its buffer, every later record printed 'Logging error'."""
    import io
    import logging

    from agentctl.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        first = io.StringIO()
        monkeypatch.setattr("sys.stderr", first)
        setup_logging("text", "info")
        first.close()  # what CliRunner does with its buffer
        second = io.StringIO()
        monkeypatch.setattr("sys.stderr", second)
        monkeypatch.setattr(logging, "raiseExceptions", True)
        logging.getLogger("agentctl.test").warning("still heard")
        value = second.getvalue()
        assert "WARNING agentctl.test: still heard" in value and "Logging error" not in value
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
