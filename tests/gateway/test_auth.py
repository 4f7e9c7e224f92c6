"""Client authentication: the gateway key, agent tokens bound to an identity, the
`verify`/`declare` modes, and the refusal to listen beyond loopback without a key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import openai
import pytest

from agentctl.config import IdentitySettings, load_settings
from agentctl.errors import ConfigError
from agentctl.gateway.server import check_settings
from agentctl.identity import HEADER
from tests.conftest import CANARY
from tests.gateway.support import CHAT, MESSAGES, RAW_BODY, error_of, post
from tests.harness import IDENTITY, GatewayHarness


async def register(gateway: GatewayHarness, name: str = "bot-a") -> str:
    token = await asyncio.to_thread(
        gateway.store.register_agent,
        name,
        "team-ml",
        "production",
        actor="test",
        reason="auth tests",
    )
    assert await gateway.gw.refresh()
    return token


def upstream_auth(gateway: GatewayHarness) -> str:
    assert gateway.sim is not None
    headers = gateway.sim.state.requests[-1].headers
    assert "x-api-key" not in headers
    return headers["Authorization"]


# -- the gateway key -----------------------------------------------------------


async def test_gateway_key_required_when_configured(gateway: GatewayHarness) -> None:
    await gateway.restart(gateway_key="gk-test")
    missing = await post(gateway)
    wrong = await post(gateway, Authorization="Bearer gk-wrong")
    assert error_of(missing, 401, "missing_api_key") == {
        "message": "this gateway requires a key: send 'Authorization: Bearer <gateway key or "
        "agent token>'",
        "type": "authentication_error",
        "param": None,
        "code": "missing_api_key",
    }
    assert error_of(wrong, 401, "invalid_api_key")["message"] == (
        "the API key is neither this gateway's key nor a valid agent token"
    )
    recs = await gateway.records()
    assert [(r["status"], r["outcome"], r["rule_id"]) for r in recs] == [
        (401, "refused", "missing_api_key"),
        (401, "refused", "invalid_api_key"),
    ]
    assert gateway.sim is not None and gateway.sim.state.requests == []


async def test_gateway_key_accepted_as_bearer_or_x_api_key(gateway: GatewayHarness) -> None:
    await gateway.restart(gateway_key="gk-test")
    bearer = await post(gateway, Authorization="Bearer gk-test")
    assert bearer.status_code == 200
    assert upstream_auth(gateway) == f"Bearer {CANARY}"
    api_key = await post(gateway, **{"x-api-key": "gk-test"})
    assert api_key.status_code == 200
    assert upstream_auth(gateway) == f"Bearer {CANARY}"
    sdk = gateway.aclient(key="gk-test", max_retries=0)
    resp = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices[0].message.content
    recs = await gateway.records()
    assert [(r["status"], r["verification"]) for r in recs] == [(200, "unverified")] * 3


async def test_sdk_with_wrong_gateway_key_gets_authentication_error(
    gateway: GatewayHarness,
) -> None:
    await gateway.restart(gateway_key="gk-test")
    sdk = gateway.aclient(key="sk-not-it", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "invalid_api_key"


async def test_agent_token_works_with_a_gateway_key_configured(gateway: GatewayHarness) -> None:
    await gateway.restart(gateway_key="gk-test")
    token = await register(gateway)
    sdk = gateway.aclient(identity=None, key=token, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.headers["x-agentctl-verification"] == "token"
    assert upstream_auth(gateway) == f"Bearer {CANARY}"


async def test_without_a_gateway_key_client_credentials_are_ignored(
    gateway: GatewayHarness,
) -> None:
    resp = await post(gateway, Authorization="Bearer sk-some-provider-key")
    assert resp.status_code == 200
    assert upstream_auth(gateway) == f"Bearer {CANARY}"


# -- agent tokens --------------------------------------------------------------


async def test_registered_name_needs_its_token(gateway: GatewayHarness) -> None:
    await register(gateway)
    resp = await post(gateway)
    assert error_of(resp, 401, "agent_token_required") == {
        "message": "agent 'bot-a' is registered: present its agent token as "
        "'Authorization: Bearer agk_...'",
        "type": "authentication_error",
        "param": HEADER,
        "code": "agent_token_required",
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (
        401,
        "refused",
        "agent_token_required",
    )
    # Under the name it claimed, so team-ml's report shows the attempt (new-user trial).
    assert (rec["agent"], rec["owner"], rec["verification"]) == ("bot-a", "team-ml", "refused")


async def test_token_is_verified_and_never_forwarded(gateway: GatewayHarness) -> None:
    token = await register(gateway)
    sdk = gateway.aclient(key=token, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.headers["x-agentctl-verification"] == "token"
    assert raw.headers["x-agentctl-agent"] == "bot-a"
    assert upstream_auth(gateway) == f"Bearer {CANARY}"
    assert gateway.sim is not None
    assert token not in json.dumps(dict(gateway.sim.state.requests[-1].headers))
    [rec] = await gateway.records()
    assert (rec["status"], rec["verification"]) == (200, "token")
    assert rec["key_id"] == token.split("_")[1]
    assert (rec["agent"], rec["owner"], rec["purpose"]) == ("bot-a", "team-ml", "production")


async def test_token_without_header_takes_the_bound_identity(gateway: GatewayHarness) -> None:
    token = await register(gateway)
    resp = await post(gateway, **{"Authorization": f"Bearer {token}", HEADER: IDENTITY})
    assert resp.status_code == 200
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        bare = await client.post(CHAT, content=RAW_BODY, headers={"x-api-key": token})
    assert bare.status_code == 200
    assert bare.headers["x-agentctl-agent"] == "bot-a"
    recs = await gateway.records()
    assert [(r["agent"], r["verification"]) for r in recs] == [("bot-a", "token")] * 2


async def test_token_with_extensions_in_the_declaration(gateway: GatewayHarness) -> None:
    token = await register(gateway)
    resp = await post(
        gateway,
        Authorization=f"Bearer {token}",
        **{HEADER: IDENTITY + "; run=r42"},
    )
    assert resp.status_code == 200
    [rec] = await gateway.records()
    assert (rec["extensions"], rec["verification"]) == ("run=r42", "token")


@pytest.mark.parametrize(
    "declared",
    [
        "name=bot-b; owner=team-ml; purpose=production",
        "name=bot-a; owner=team-x; purpose=production",
        "name=bot-a; owner=team-ml; purpose=test",
    ],
)
async def test_token_with_mismatching_declaration_is_403(
    gateway: GatewayHarness, declared: str
) -> None:
    token = await register(gateway)
    resp = await post(gateway, Authorization=f"Bearer {token}", **{HEADER: declared})
    err = error_of(resp, 403, "identity_mismatch")
    assert err["type"] == "permission_error" and err["param"] == HEADER
    assert err["message"] == (
        "the agent token is bound to name=bot-a; owner=team-ml; purpose=production but the "
        f"request declares {declared}"
    )
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (403, "refused", "identity_mismatch")
    assert gateway.sim is not None and gateway.sim.state.requests == []


async def test_mismatch_is_charged_to_the_token_agent(gateway: GatewayHarness) -> None:
    token = await register(gateway)
    resp = await post(
        gateway,
        Authorization=f"Bearer {token}",
        **{HEADER: "name=bot-b; owner=team-ml; purpose=production"},
    )
    assert resp.status_code == 403
    [rec] = await gateway.records()
    assert (rec["agent"], rec["owner"], rec["verification"]) == ("bot-a", "team-ml", "token")


@pytest.mark.parametrize("suffix", ["tampered", ""])
async def test_unknown_or_tampered_token_is_401(gateway: GatewayHarness, suffix: str) -> None:
    token = await register(gateway)
    key_id = token.split("_")[1]
    bad = token + "x" if suffix else "agk_0123456789abcdef_secret"
    shown = key_id if suffix else "0123456789abcdef"
    resp = await post(gateway, Authorization=f"Bearer {bad}")
    assert error_of(resp, 401, "invalid_agent_token") == {
        "message": "the agent token is unknown, revoked or expired; ask an operator for a new "
        f"one (key id {shown})",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_agent_token",
    }
    [rec] = await gateway.records()
    if suffix:  # a known key with the wrong secret: recorded under the key's agent
        assert (rec["agent"], rec["owner"], rec["verification"], rec["key_id"]) == (
            "bot-a",
            "team-ml",
            "refused",
            key_id,
        )
    else:  # a key nobody issued names no agent
        assert (rec["agent"], rec["key_id"]) == ("", None)


@pytest.mark.parametrize("token", ["agk_bogus_token", "agk_", "agk_0123456789abcdef_"])
async def test_a_malformed_agent_token_is_401_not_served_unverified(
    gateway: GatewayHarness, token: str
) -> None:
    resp = await post(gateway, Authorization=f"Bearer {token}")
    err = error_of(resp, 401, "invalid_agent_token")
    assert err["message"].startswith("the agent token is malformed")
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (
        401,
        "refused",
        "invalid_agent_token",
    )
    assert gateway.sim is not None and gateway.sim.state.requests == []


async def test_declare_mode_accepts_a_registered_name_without_token(
    gateway: GatewayHarness,
) -> None:
    await gateway.restart(identity=IdentitySettings(mode="declare"))
    token = await register(gateway)
    resp = await post(gateway)
    assert resp.status_code == 200
    assert resp.headers["x-agentctl-verification"] == "unverified"
    with_token = await post(gateway, Authorization=f"Bearer {token}")
    assert with_token.headers["x-agentctl-verification"] == "token"
    recs = await gateway.records()
    assert [r["verification"] for r in recs] == ["unverified", "token"]


async def test_registration_reaches_the_gateway_without_a_manual_refresh(
    gateway: GatewayHarness,
) -> None:
    """The poller (policy_poll_ms) picks registrations up, like the CLI's."""
    from agentctl.store.sql import Store

    assert gateway.settings is not None
    other = Store(gateway.settings.database)  # a separate writer, like `agentctl agents`
    try:
        await asyncio.to_thread(
            other.register_agent, "bot-a", "team-ml", "production", actor="cli", reason=None
        )
    finally:
        other.close()
    for _ in range(100):
        resp = await post(gateway)
        if resp.status_code == 401:
            break
        await asyncio.sleep(0.02)
    assert error_of(resp, 401, "agent_token_required")


async def test_a_token_issued_since_the_last_poll_works_at_once(gateway: GatewayHarness) -> None:
    # Regression: `agents register` / `agents rotate` printed a token that the gateway
    # refused (401 "unknown, revoked or expired; ask an operator for a new one") until
    # its next poll picked the new key up.
    from agentctl.store import credentials as creds
    from agentctl.store.sql import Store

    await gateway.restart(policy_poll_ms=3_600_000)  # only the catch-up can load it
    assert gateway.settings is not None
    other = Store(gateway.settings.database)  # a separate writer, like the CLI
    try:
        token = await asyncio.to_thread(
            other.register_agent, "bot-a", "team-ml", "production", actor="cli", reason=None
        )
        first = await post(gateway, Authorization=f"Bearer {token}")
        assert first.status_code == 200, first.text
        rotated = await asyncio.to_thread(
            creds.rotate, other, "bot-a", grace_s=3600, actor="cli", reason=None
        )
    finally:
        other.close()
    second = await post(gateway, Authorization=f"Bearer {rotated}")
    assert second.status_code == 200, second.text
    assert second.headers["x-agentctl-verification"] == "token"
    # A key nobody issued is still refused (and waits for no poll).
    unknown = "agk_" + "0" * 16 + "_" + "x" * 43
    error_of(await post(gateway, Authorization=f"Bearer {unknown}"), 401, "invalid_agent_token")


# -- refusing to listen beyond loopback without a key ---------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "gateway.example.com"])
def test_non_loopback_without_key_is_refused(home: Path, host: str) -> None:
    settings = load_settings(home=home, overrides={"host": host, "upstreams": _one_upstream()})
    with pytest.raises(ConfigError) as info:
        check_settings(settings)
    assert info.value.message.startswith(f"refusing to listen on {host} without a gateway key")
    keyed = load_settings(
        home=home,
        overrides={"host": host, "gateway_key": "gk-test", "upstreams": _one_upstream()},
    )
    check_settings(keyed)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_without_key_is_allowed(home: Path, host: str) -> None:
    check_settings(load_settings(home=home, overrides={"host": host, "upstreams": _one_upstream()}))


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0", "::zz"])
def test_an_invalid_ip_is_named_before_the_key_check(home: Path, host: str) -> None:
    # Regression: `serve --host 999.1.1.1` said it refused to listen without a gateway key.
    settings = load_settings(
        home=home, overrides={"host": host, "gateway_key": "gk", "upstreams": _one_upstream()}
    )
    with pytest.raises(ConfigError) as info:
        check_settings(settings)
    assert info.value.message.startswith(f"--host {host} is not a valid IP address")


def test_env_gateway_key_satisfies_the_check(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_GATEWAY_KEY", "gk-env")
    settings = load_settings(home=home, overrides={"host": "0.0.0.0", "upstreams": _one_upstream()})
    assert settings.gateway_key == "gk-env"
    check_settings(settings)


def _one_upstream() -> tuple[object, ...]:
    from agentctl.config import Upstream

    return (Upstream(name="u", base_url="http://127.0.0.1:9/v1"),)


async def test_two_different_credentials_are_refused(gateway: GatewayHarness) -> None:
    """Regression (new-user trial): with a bearer token and a different x-api-key, the
    first silently won."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        both = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={
                "Authorization": "Bearer agk_0000000000000000_aaaaaaaaaaaaaaaaaaaa",
                "x-api-key": "agk_1111111111111111_bbbbbbbbbbbbbbbbbbbb",
                "X-Agent-Identity": IDENTITY,
            },
        )
        same = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer k", "x-api-key": "k", "X-Agent-Identity": IDENTITY},
        )
    assert both.status_code == 400 and both.json()["error"]["code"] == "ambiguous_credentials"
    assert same.status_code == 200
    rows = await gateway.records()
    assert [r["rule_id"] for r in rows] == ["ambiguous_credentials", None]
