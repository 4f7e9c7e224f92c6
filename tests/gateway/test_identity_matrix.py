"""Malformed `X-Agent-Identity` declarations through a real gateway: each is refused in
the OpenAI error shape, audited once as `refused`, never forwarded, and the gateway
keeps serving."""

from __future__ import annotations

import json

import aiohttp
import httpx
import pytest
from multidict import CIMultiDict

from tests.gateway.support import CHAT, RAW_BODY, error_of, ok, raw_http
from tests.harness import IDENTITY, GatewayHarness

HEADER = "X-Agent-Identity"
HINT = (
    "lowercase ASCII letters, digits, '.', '_' or '-', starting and ending with a letter "
    "or digit, at most 64 characters"
)
SHAPE = "expected 'name=<agent>; owner=<team>; purpose=<purpose>'"
X64 = "x" * 64
OVER_512 = "; ".join(
    [f"name={X64}", f"owner={X64}", "purpose=production"]
    + [f"ext-field-{i}={X64}" for i in range(5)]
)
NINE = "name=a; owner=b; purpose=test; " + "; ".join(f"k{i}=v" for i in range(6))

# (case id, header bytes as sent, exact message)
CASES = [
    ("missing-name", b"owner=team-ml; purpose=production", f"{HEADER} is missing name; {SHAPE}"),
    ("missing-owner", b"name=bot-a; purpose=production", f"{HEADER} is missing owner; {SHAPE}"),
    ("missing-purpose", b"name=bot-a; owner=team-ml", f"{HEADER} is missing purpose; {SHAPE}"),
    (
        "missing-two",
        b"name=bot-a; team=x",
        f"{HEADER} is missing owner, purpose; {SHAPE}",
    ),
    (
        "duplicate-key",
        b"name=a; owner=t; NAME=b; purpose=test",
        f"{HEADER} field 'name' appears twice; send it once",
    ),
    (
        "uppercase-value",
        b"name=Bot-A; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' must be lowercase: did you mean 'bot-a'?",
    ),
    (
        "uppercase-purpose",
        b"name=bot-a; owner=team-ml; purpose=PRODUCTION",
        f"{HEADER} field 'purpose' must be lowercase: did you mean 'production'?",
    ),
    (
        "cyrillic-o",
        "name=b\u043et-a; owner=team-ml; purpose=production".encode(),
        f"{HEADER} contains a non-ASCII or control character ('\u043e', U+043E); "
        "values must be plain lowercase ASCII",
    ),
    (
        "latin1-byte-not-utf8",
        b"name=b\xf6t; owner=team-ml; purpose=production",
        f"{HEADER} contains a non-ASCII or control character (byte 0xF6); "
        "values must be plain lowercase ASCII",
    ),
    (
        "tab-inside-value",
        b"name=b\tt; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' has invalid value 'b\tt'; expected {HINT}",
    ),
    (
        "value-over-64",
        b"name=" + b"a" * 65 + b"; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' is 65 characters; at most 64",
    ),
    ("header-over-512-bytes", OVER_512.encode(), f"{HEADER} is longer than 512 bytes"),
    ("more-than-8-params", NINE.encode(), f"{HEADER} has 9 fields; at most 8 allowed"),
    (
        "empty-value",
        b"name=; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' is empty; expected {HINT}",
    ),
    (
        "double-semicolon",
        b"name=bot-a;; owner=team-ml; purpose=production",
        f"{HEADER} has an empty field (';;'); remove it",
    ),
    (
        "bad-purpose",
        b"name=bot-a; owner=team-ml; purpose=prod",
        f"{HEADER} purpose 'prod' is not one of: "
        "batch, development, evaluation, production, staging, test",
    ),
    (
        "comma",
        b"name=bot-a, owner=team-ml; purpose=production",
        f"{HEADER} must not contain ','; separate fields with ';'",
    ),
    ("empty-header", b"", f"{HEADER} is empty; it needs name, owner and purpose"),
    ("only-semicolons", b";;", f"{HEADER} has an empty field (';;'); remove it"),
    (
        "no-equals",
        b"name; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' is not of the form key=value",
    ),
    (
        "space-around-equals",
        b"name = bot-a; owner=team-ml; purpose=production",
        f"{HEADER} field 'name': no spaces around '='",
    ),
    (
        "bad-key",
        b"name=bot-a; owner=team-ml; purpose=production; 9x=1",
        f"{HEADER} key '9x' is invalid; keys are letters, digits and '-', starting with a "
        "letter, at most 32 characters",
    ),
    (
        "value-edge-dash",
        b"name=-bot; owner=team-ml; purpose=production",
        f"{HEADER} field 'name' has invalid value '-bot'; expected {HINT}",
    ),
]


async def assert_refused_once(gateway: GatewayHarness, message: str, status: int = 400) -> None:
    """The refusal is the only audited call so far, and nothing reached the upstream."""
    assert gateway.sim is not None
    assert gateway.sim.state.requests == []
    await ok(gateway)
    first, second = await gateway.records()
    assert (first["status"], first["outcome"], first["rule_id"]) == (
        status,
        "refused",
        "invalid_agent_identity" if status == 400 else "missing_agent_identity",
    )
    assert first["message"] == message
    assert (first["agent"], first["endpoint"], first["model"]) == ("", CHAT, "")
    assert (second["status"], second["outcome"]) == (200, "served")


@pytest.mark.parametrize(("value", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_malformed_identity_is_refused(
    gateway: GatewayHarness, value: bytes, message: str
) -> None:
    headers = {HEADER: value, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(CHAT, content=RAW_BODY, headers=headers)
    err = error_of(resp, 400, "invalid_agent_identity")
    assert err == {
        "message": message,
        "type": "invalid_request_error",
        "param": HEADER,
        "code": "invalid_agent_identity",
    }
    assert "x-agentctl-agent" not in resp.headers
    await assert_refused_once(gateway, message)


async def test_missing_identity_is_401(gateway: GatewayHarness) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(
            CHAT, content=RAW_BODY, headers={"Authorization": "Bearer sk-anything"}
        )
    err = error_of(resp, 401, "missing_agent_identity")
    message = (
        f"missing {HEADER} header; send e.g. "
        f"'{HEADER}: name=my-bot; owner=my-team; purpose=production'"
    )
    assert err == {
        "message": message,
        "type": "authentication_error",
        "param": HEADER,
        "code": "missing_agent_identity",
    }
    await assert_refused_once(gateway, message, status=401)


async def test_two_header_lines_are_refused(gateway: GatewayHarness) -> None:
    headers = CIMultiDict([(HEADER, IDENTITY), (HEADER, IDENTITY)])
    headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + CHAT, data=RAW_BODY, headers=headers) as resp,
    ):
        status, body = resp.status, await resp.json()
    message = f"{HEADER} was sent 2 times; send exactly one header line"
    assert status == 400
    assert body == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": HEADER,
            "code": "invalid_agent_identity",
        }
    }
    await assert_refused_once(gateway, message)


async def test_raw_duplicate_lines_with_different_values(gateway: GatewayHarness) -> None:
    head = (
        b"X-Agent-Identity: name=bot-a; owner=team-ml; purpose=production\r\n"
        b"x-agent-identity: name=bot-b; owner=team-ml; purpose=production\r\n"
    )
    status, _, body = await raw_http(gateway.url, head)
    message = f"{HEADER} was sent 2 times; send exactly one header line"
    assert status == 400
    assert json.loads(body)["error"]["message"] == message
    await assert_refused_once(gateway, message)


async def test_valid_forms_are_canonicalised(gateway: GatewayHarness) -> None:
    """Lower-case header name, upper-case keys, a trailing ';' and extensions all pass."""
    head = b"x-agent-identity: Name=bot-a;Owner=team-ml; PURPOSE=production; run=r.1;\r\n"
    status, top, _ = await raw_http(gateway.url, head)
    assert status == 200
    assert b"x-agentctl-agent: bot-a" in top
    [rec] = await gateway.records()
    assert (rec["agent"], rec["owner"], rec["purpose"], rec["extensions"]) == (
        "bot-a",
        "team-ml",
        "production",
        "run=r.1",
    )
    assert gateway.sim is not None
    # forwarded unchanged, not re-formatted
    assert gateway.sim.state.requests[-1].headers[HEADER] == (
        "Name=bot-a;Owner=team-ml; PURPOSE=production; run=r.1;"
    )


@pytest.mark.parametrize("byte", [b"\x01", b"\x7f"])
async def test_control_byte_is_refused_in_openai_shape(
    gateway: GatewayHarness, byte: bytes
) -> None:
    head = b"X-Agent-Identity: name=b" + byte + b"t; owner=team-ml; purpose=production\r\n"
    status, _, body = await raw_http(gateway.url, head)
    assert status == 400
    # aiohttp's parser refuses the byte before the identity parser sees it; the
    # connection layer (gateway.listener) answers in the OpenAI shape and audits it.
    assert json.loads(body)["error"]["code"] == "invalid_header"
    await ok(gateway)
    assert [r["outcome"] for r in await gateway.records()] == ["refused", "served"]


async def test_unknown_purpose_allowed_by_config(gateway: GatewayHarness) -> None:
    from agentctl.config import IdentitySettings

    await gateway.restart(identity=IdentitySettings(purposes=("research",)))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        good = await client.post(
            CHAT,
            content=RAW_BODY,
            headers={HEADER: "name=bot-a; owner=team-ml; purpose=research"},
        )
        bad = await client.post(CHAT, content=RAW_BODY, headers={HEADER: IDENTITY})
    assert good.status_code == 200
    err = error_of(bad, 400, "invalid_agent_identity")
    assert err["message"] == f"{HEADER} purpose 'production' is not one of: research"
