"""A real `agentctl serve` process: SIGHUP reloads agentctl.yaml and the active policy
(applied by the CLI) without dropping a stream in flight, and a config that no longer
loads changes nothing; startup problems end with one clear line and a non-zero exit,
never a traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.config import load_settings
from agentctl.errors import ConfigError
from agentctl.simulator import RunningSimulator
from tests.gateway.support import CHAT, HEADERS, MESSAGES, RAW_BODY
from tests.procs import GatewayProcess, agentctl

DENY = "apiVersion: agentctl/v1\ndefaults:\n  models:\n    deny: ['gpt-4o-mini*']\n"


def config(sim: RunningSimulator, max_body: int) -> str:
    return (
        "policy_poll_ms: 3600000\n"  # an hour: only SIGHUP can make the policy apply now
        f"limits:\n  max_body_bytes: {max_body}\n"
        "upstreams:\n"
        f"  - name: sim\n    base_url: {sim.openai_url}\n"
        '    api_key: {"$env": "SIM_PROVIDER_KEY"}\n'
    )


async def until(probe, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_sighup_reloads_config_and_policy_without_dropping_a_stream(
    home: Path, sim: RunningSimulator
) -> None:
    home.mkdir()
    (home / "agentctl.yaml").write_text(config(sim, 100_000))
    gw = GatewayProcess([], home)
    try:
        await asyncio.to_thread(gw.wait_ready)
        big = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "pad": "x" * 2000})
        stream_body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        slow = {**HEADERS, "x-sim-chunk-delay-ms": "150"}
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            assert (await client.post(CHAT, content=big, headers=HEADERS)).status_code == 200
            async with client.stream("POST", CHAT, json=stream_body, headers=slow) as stream:
                assert stream.status_code == 200
                chunks = stream.aiter_bytes()
                received = await chunks.__anext__()  # the stream is under way
                (home / "agentctl.yaml").write_text(config(sim, 1000))
                policy = home.parent / "deny.yaml"
                policy.write_text(DENY)
                applied = CliRunner().invoke(app, ["policy", "apply", str(policy)])
                assert applied.exit_code == 0, applied.output
                gw.send(signal.SIGHUP)

                async def reloaded() -> bool:
                    large = await client.post(CHAT, content=big, headers=HEADERS)
                    small = await client.post(CHAT, content=RAW_BODY, headers=HEADERS)
                    # the new limit, and the new policy long before its poll is due
                    return large.status_code == 413 and small.status_code == 403

                await until(reloaded, within=60)
                small = await client.post(CHAT, content=RAW_BODY, headers=HEADERS)
                assert small.json()["error"]["code"] == "model-not-allowed"
                async for chunk in chunks:
                    received += chunk
        assert received.endswith(b"data: [DONE]\n\n")  # the stream survived the reload

        async def logged() -> bool:
            return "reloaded config" in gw.output()

        await until(logged)
        # a config that no longer loads changes nothing: the reloaded one stays
        (home / "agentctl.yaml").write_text("limits:\n  max_body_bytes: lots\n")
        gw.send(signal.SIGHUP)

        async def refused() -> bool:
            return "config reload failed" in gw.output()

        await until(refused)
        assert "limits.max_body_bytes" in gw.output()
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            still = await client.post(CHAT, content=big, headers=HEADERS)
        assert still.status_code == 413
    finally:
        code = gw.stop()
    assert code == 0, gw.output()
    assert "Traceback" not in gw.output()


def one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


QUICK = ("serve", "--port", "0", "--upstream", "http://127.0.0.1:9/v1")


def test_startup_problems_end_with_one_clear_line(home: Path) -> None:
    """Each a real `agentctl serve`, run side by side: port in use, a config that does
    not parse, an unreachable PostgreSQL, an SQLite path that cannot exist."""
    bad_yaml = home.parent / "cfg.yaml"
    bad_yaml.write_text("limits: [1, 2\n")
    with socket.socket() as taken, ThreadPoolExecutor(4) as pool:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        runs = {
            f"port {port} on 127.0.0.1 is already in use": (
                "serve",
                "--port",
                port,
                "--upstream",
                "http://127.0.0.1:9/v1",
            ),
            "is not valid YAML: expected ',' or ']'": (*QUICK, "--config", str(bad_yaml)),
            "cannot reach the database": (
                *QUICK,
                "--db",
                "postgresql://nobody@127.0.0.1:1/agentctl",
            ),
            "/proc/agentctl-no": (*QUICK, "--db", "sqlite:////proc/agentctl-no/agentctl.db"),
        }
        results = {f: pool.submit(agentctl, *args) for f, args in runs.items()}
        for fragment, future in results.items():
            one_clear_line(future.result(), fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("directory", "Is a directory"),
        ("limits: [1, 2\n", "is not valid YAML: expected ',' or ']', but got '<stream end>'"),
        ("limits:\n  max_connections: -1\n", "limits.max_connections"),
        ("trusted_proxies: [example.com]\n", "is not an IP address or network"),
        ("gateway_key: literal-key\n", "not literals"),
    ],
    ids=["missing", "directory", "yaml", "invalid", "proxies", "literal-secret"],
)
def test_bad_config_file_is_one_line(home: Path, content: str | None, fragment: str) -> None:
    path = home.parent / "cfg.yaml"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(config=path)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message
