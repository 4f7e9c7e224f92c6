"""The canary: one full gateway session with every secret set to a recognisable value,
then a grep of everything the session produced. Provider keys, the gateway key, the
admin token and the agent token must appear nowhere: not in responses or their
headers, the gateway's debug log and stderr, the audit database (and its WAL), the
journal, reports in every format, the audit export, metrics or the admin API."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import split_token
from tests.conftest import CANARY
from tests.gateway.support import CHAT, MESSAGES
from tests.procs import GatewayProcess

runner = CliRunner()

GATEWAY_KEY = "gwk-canary-gateway-key-5d1e"
ADMIN_TOKEN = "adm-canary-admin-token-9b7c"
IDENT = "name=canary-bot; owner=team-c; purpose=production"
SHARED = "name=shared-bot; owner=team-c; purpose=production"
DENY = "apiVersion: agentctl/v1\ndefaults:\n  models:\n    deny: ['gpt-4-denied*']\n"


def config(sim: RunningSimulator) -> str:
    key = '{"$env": "SIM_PROVIDER_KEY"}'
    return (
        'gateway_key: {"$env": "CANARY_GATEWAY_KEY"}\n'
        'admin_token: {"$env": "CANARY_ADMIN_TOKEN"}\n'
        "upstreams:\n"
        f"  - {{name: sim-anthropic, base_url: '{sim.openai_url}', api_key: {key},\n"
        "      models: ['claude-*'], provider: anthropic, api: anthropic, auth: x-api-key}\n"
        f"  - {{name: dead, base_url: 'http://127.0.0.1:9/v1', api_key: {key},\n"
        "      models: ['dead-*'], timeouts: {connect: 1, first_byte: 1, idle: 1, total: 5}}\n"
        f"  - {{name: sim, base_url: '{sim.openai_url}', api_key: {key},\n"
        "      models: ['gpt-*', 'text-*']}\n"
    )


async def session(url: str, token: str) -> list[str]:
    """Every kind of answer the gateway gives; returns what the clients saw."""
    seen: list[str] = []
    chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
    agent = {"Authorization": f"Bearer {token}"}
    shared = {"Authorization": f"Bearer {GATEWAY_KEY}", "X-Agent-Identity": SHARED}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    calls: list[tuple[str, str, dict[str, str], object]] = [
        ("POST", CHAT, agent, chat),
        ("POST", CHAT, agent, {**chat, "stream": True}),
        ("POST", CHAT, shared, chat),
        ("POST", CHAT, {**shared, "x-sim-status": "500"}, chat),
        ("POST", CHAT, {**shared, "x-sim-status": "429"}, chat),
        ("POST", CHAT, {**shared, "x-sim-status": "401"}, chat),
        ("POST", CHAT, {**shared, "x-sim-reset-after": "1"}, {**chat, "stream": True}),
        ("POST", CHAT, {**shared, "x-sim-malformed": "1"}, chat),
        ("POST", CHAT, shared, {**chat, "model": "dead-model"}),
        ("POST", CHAT, shared, {**chat, "model": "gpt-4-denied"}),
        ("POST", CHAT, {**shared, "X-Agent-Identity": "name=Bad"}, chat),
        ("POST", CHAT, {"Authorization": "Bearer wrong", "X-Agent-Identity": IDENT}, chat),
        ("POST", CHAT, {**agent, "X-Agent-Identity": "name=x; owner=y; purpose=test"}, chat),
        ("POST", CHAT, shared, b"{not json"),
        ("POST", "/v1/embeddings", shared, {"model": "text-embedding-3-small", "input": "hi"}),
        (
            "POST",
            "/v1/messages",
            shared,
            {"model": "claude-3-5-haiku", "max_tokens": 20, "messages": MESSAGES},
        ),
        ("GET", "/v1/models", shared, None),
        ("GET", "/metrics", admin, None),
        ("GET", "/admin/upstreams", admin, None),
        ("GET", "/admin/agents/canary-bot", admin, None),
        ("GET", "/admin/health", {"Authorization": "Bearer nope"}, None),
        ("GET", "/healthz", {}, None),
    ]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for method, path, headers, body in calls:
            content = body if isinstance(body, bytes) else None
            payload = None if isinstance(body, bytes) else body
            resp = await client.request(
                method, path, headers=headers, json=payload, content=content
            )
            seen.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
    return seen


def cli(*args: str, ok: bool = True) -> str:
    """The CLI in process (its own output streams captured), like an operator runs it."""
    result = runner.invoke(app, list(args))
    assert (result.exit_code == 0) == ok, result.output
    return result.output


async def test_no_secret_leaks_anywhere(home: Path, sim: RunningSimulator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CANARY_GATEWAY_KEY", GATEWAY_KEY)
    monkeypatch.setenv("CANARY_ADMIN_TOKEN", ADMIN_TOKEN)
    home.mkdir()
    (home / "agentctl.yaml").write_text(config(sim))
    registered = cli(
        "agents", "register", "canary-bot", "--owner", "team-c", "--purpose", "production",
        "--json",
    )  # fmt: skip
    token = json.loads(registered)["token"]
    policy = home.parent / "deny.yaml"
    policy.write_text(DENY)
    cli("policy", "apply", str(policy), "--reason", "canary")

    gw = GatewayProcess(["--log-level", "debug"], home)
    try:
        await asyncio.to_thread(gw.wait_ready)
        seen = await session(gw.url, token)
    finally:
        code = gw.stop(signal.SIGTERM)
    assert code == 0, gw.output()
    statuses = [int(s.split(" ", 1)[0]) for s in seen]
    assert {200, 401, 403, 400, 429, 500, 502} <= set(statuses), statuses

    outputs = {"gateway log": gw.output(), "responses": "\n".join(seen)}
    reports = [
        ("report",),
        ("report", "--json"),
        ("report", "--format", "csv"),
        ("report", "--format", "html"),
        ("report", "--group-by", "outcome", "--format", "md"),
        ("audit", "export"),
        ("audit", "verify"),
        ("agents", "list", "--json"),
        ("policy", "show"),
        ("trust", "explain", "canary-bot"),
        ("--debug", "report", "--since", "not-a-date"),
    ]
    for args in reports:
        outputs[" ".join(args)] = cli(*args, ok=args[0] != "--debug")
    assert '"request_id"' in outputs["audit export"]
    for path in home.rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("latin-1")
    assert any(name.endswith("agentctl.db") for name in outputs)

    secrets = {
        "provider key": CANARY,
        "gateway key": GATEWAY_KEY,
        "admin token": ADMIN_TOKEN,
        "agent token": token,
        "agent token secret": split_token(token)[1],  # type: ignore[index]
    }
    leaks = [
        f"{what} in {where}"
        for where, text in outputs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert not leaks, leaks
