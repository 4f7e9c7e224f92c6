"""Nobody let in: literal secrets refused, X-Forwarded-For believed only from trusted
proxies (audit and admin access), upstream URLs only from config, the operator
surface loopback-only by default, and private files private."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from agentctl.config import FileConfig, load_settings
from agentctl.errors import ConfigError
from agentctl.simulator import start_simulator
from tests.gateway.support import RAW_BODY, error_of, ok, post
from tests.hardening.support import exchange, request
from tests.harness import GatewayHarness


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("gateway_key: sk-literal\n", "not literals"),
        ("admin_token: sk-literal\n", "not literals"),
        (
            "upstreams:\n  - name: u\n    base_url: http://x/v1\n    api_key: sk-literal\n",
            "not literals",
        ),
        (
            "upstreams:\n  - name: u\n    base_url: https://me:sk-literal@x/v1\n",
            "must not carry credentials",
        ),
    ],
    ids=["gateway_key", "admin_token", "api_key", "base_url"],
)
def test_config_refuses_literal_secrets(home: Path, yaml_text: str, fragment: str) -> None:
    home.mkdir()
    (home / "agentctl.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert fragment in str(info.value)
    assert "sk-literal" not in str(info.value)  # the refusal does not repeat the secret


def test_operator_surface_is_loopback_by_default() -> None:
    defaults = FileConfig()
    assert defaults.host == "127.0.0.1"
    assert defaults.admin.allow_remote is False
    assert defaults.trusted_proxies == ()


async def test_forwarded_for_is_ignored_unless_the_peer_is_trusted(
    gateway: GatewayHarness,
) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.7"}
    await post(gateway, **spoof)
    await gateway.restart(trusted_proxies=("127.0.0.1",))
    await post(gateway, **spoof)
    await post(gateway, **{"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})  # rightmost
    await post(gateway, **{"X-Forwarded-For": "203.0.113.7, not-an-ip"})  # garbled hop
    clients = [r["client"] for r in await gateway.records()]
    assert clients == ["127.0.0.1", "203.0.113.7", "203.0.113.9", "127.0.0.1"]


async def test_a_trusted_proxy_cannot_make_remote_callers_local(gateway: GatewayHarness) -> None:
    await gateway.restart(trusted_proxies=("127.0.0.1",))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        local = await client.get("/admin/health")
        remote = await client.get("/admin/health", headers={"X-Forwarded-For": "203.0.113.7"})
        metrics = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert local.status_code == 200
    assert error_of(remote, 403, "admin_loopback_only")["message"].count("203.0.113.7") == 1
    error_of(metrics, 403, "admin_loopback_only")


async def test_metrics_need_the_admin_token_when_one_is_set(gateway: GatewayHarness) -> None:
    await gateway.restart(admin_token="admin-secret-token")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        bare = await client.get("/metrics")
        good = await client.get("/metrics", headers={"Authorization": "Bearer admin-secret-token"})
    error_of(bare, 401, "admin_token_required")
    assert good.status_code == 200


async def test_no_request_field_can_redirect_the_gateway(gateway: GatewayHarness) -> None:
    """Host, absolute-form targets, forwarding headers, body fields and model names
    never choose where the gateway connects: only `upstreams[].base_url` does."""
    assert gateway.sim is not None
    evil = await start_simulator()
    try:
        target = evil.openai_url.encode()
        attempts = [
            request(b"X-Forwarded-Host: " + target[7:] + b"\r\n"),
            request(b"X-Original-URL: " + target + b"\r\n"),
            request(path=target + b"/chat/completions"),  # absolute-form request target
            request(
                body=RAW_BODY[:-1]
                + b', "base_url": "'
                + target
                + b'", "api_base": "'
                + target
                + b'"}'
            ),
        ]
        for data in attempts:
            reply = await exchange(
                gateway.url, data.replace(b"Host: gateway", b"Host: " + target[7:])
            )
            assert reply.status == 200, reply.raw[:300]
        resp = await post(gateway, RAW_BODY.replace(b"gpt-4o-mini", target + b"/x"))
        assert resp.status_code == 200  # served by the configured upstream, as any model
        assert evil.state.requests == []
        paths = [r.path for r in gateway.sim.state.requests]
        assert paths == ["/v1/chat/completions"] * 5
    finally:
        await evil.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_and_journal_are_private(gateway: GatewayHarness) -> None:
    await ok(gateway)
    home = gateway.home
    assert mode(home) == 0o700
    db = home / "agentctl.db"
    files = [db, *home.glob("agentctl.db-*")]
    assert len(files) >= 2  # the WAL and its index exist by now
    for path in files:
        assert mode(path) == 0o600, path
    journal = home / "journal"
    assert mode(journal) == 0o700
    segments = list(journal.glob("seg-*.jsonl"))
    assert segments
    for path in segments:
        assert mode(path) == 0o600, path


async def test_rejected_rows_file_is_private(gateway: GatewayHarness) -> None:
    from agentctl.store.recorder import REJECTED, rejecter

    rejecter(gateway.settings.journal_path)({"request_id": "r1"}, ValueError("x"))  # type: ignore[union-attr]
    assert mode(gateway.settings.journal_path / REJECTED) == 0o600  # type: ignore[union-attr]
