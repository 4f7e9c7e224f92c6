"""The admin API: loopback only, admin token, an OpenAPI document that matches the
answers, and `agentctl upstreams` reading it from a live gateway."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from unittest import mock

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from typer.testing import CliRunner

from agentctl.cli import app as cli
from agentctl.config import AdminSettings
from agentctl.errors import GatewayError
from agentctl.gateway.admin import guard
from agentctl.gateway.admin_openapi import OPENAPI
from tests.harness import GatewayHarness
from tests.routing.support import PROD, of, post

TOKEN = "adm-7c1e-secret"
runner = CliRunner()


async def get(gateway: GatewayHarness, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        return await client.get(path, headers=headers)


def conforms(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """A small JSON-schema check: types, required keys, enums, arrays, $ref, oneOf."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return conforms(value, OPENAPI["components"]["schemas"][name], where)
    if "oneOf" in schema:
        for option in schema["oneOf"]:
            try:
                return conforms(value, option, where)
            except AssertionError:
                continue
        raise AssertionError(f"{where}: {value!r} matches no option")
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    python = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    ok = not kinds or any(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        if k == "number"
        else isinstance(value, int) and not isinstance(value, bool)
        if k == "integer"
        else isinstance(value, python[k])
        for k in kinds
    )
    assert ok, f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict) and "properties" in schema:
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, sub in schema["properties"].items():
            if key in value:
                conforms(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            conforms(item, schema["items"], f"{where}[{n}]")
    return None


def test_openapi_document_is_valid() -> None:
    text = json.dumps(OPENAPI)
    doc = json.loads(text)
    assert doc["openapi"].startswith("3.")
    refs = {m.split('"')[0] for m in text.split('"$ref": "#/components/schemas/')[1:]}
    assert refs <= set(doc["components"]["schemas"])
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


async def test_every_documented_endpoint_answers_as_documented(gateway: GatewayHarness) -> None:
    assert (await post(gateway, "traffic first")).status_code == 200
    served = await get(gateway, "/admin/openapi.json")
    assert served.status_code == 200 and served.json() == json.loads(json.dumps(OPENAPI))
    for path, item in OPENAPI["paths"].items():
        concrete = path.replace("{name}", "prod-a")
        resp = await get(gateway, concrete)
        assert resp.status_code == 200, (path, resp.text)
        schema = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        conforms(resp.json(), schema, path)
    agent = (await get(gateway, "/admin/agents/prod-a")).json()
    assert agent["trust"] == {"enabled": True, "tier": "probation"}
    # Not registered: the owner and purpose it declared (they were blank).
    assert (agent["owner"], agent["purpose"]) == ("team-ml", "production")
    missing = await get(gateway, "/admin/agents/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "agent_not_found"


async def test_upstreams_view_shows_pools_in_flight_and_queues(gateway: GatewayHarness) -> None:
    sim = gateway.sim
    assert sim is not None
    await gateway.restart(upstreams=(of(sim, "a", max_concurrency=8), of(sim, "b", weight=0)))
    await post(gateway, "hello", PROD)
    view = (await get(gateway, "/admin/upstreams")).json()
    [pool] = view["pools"]
    assert pool["name"] == "a+b" and pool["upstreams"] == ["a", "b"]
    assert pool["queued"] == {"priority": 0, "standard": 0, "batch": 0}
    by_name = {u["name"]: u for u in view["upstreams"]}
    assert by_name["a"]["lane_ceilings"] == {"priority": 8, "standard": 8, "batch": 6}
    assert by_name["a"]["requests"] == 1 and by_name["a"]["in_flight"]["total"] == 0


async def test_the_admin_token_is_required_when_configured(gateway: GatewayHarness) -> None:
    await gateway.restart(admin_token=TOKEN)
    for path in ("/admin/upstreams", "/admin/health", "/admin/openapi.json"):
        resp = await get(gateway, path)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "admin_token_required"
        wrong = await get(gateway, path, Authorization="Bearer nope")
        assert wrong.status_code == 401
        right = await get(gateway, path, Authorization=f"Bearer {TOKEN}")
        assert right.status_code == 200
    [rec, *_] = await gateway.records()  # refusals are audited like any other
    assert rec["rule_id"] == "admin_token_required"


async def test_proxied_requests_need_a_token(gateway: GatewayHarness) -> None:
    resp = await get(gateway, "/admin/health", **{"X-Forwarded-For": "203.0.113.9"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "admin_loopback_only"


def mocked(gateway: GatewayHarness, peer: str, **headers: str) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    return make_mocked_request(
        "GET", "/admin/health", headers=headers, app=gateway.app, transport=transport
    )


async def test_non_loopback_peers_are_refused(gateway: GatewayHarness) -> None:
    with pytest.raises(GatewayError) as info:
        guard(mocked(gateway, "10.9.8.7"))
    assert (info.value.status, info.value.code) == (403, "admin_loopback_only")
    assert guard(mocked(gateway, "127.0.0.1")) is gateway.gw
    assert guard(mocked(gateway, "::1")) is gateway.gw


async def test_remote_access_needs_both_the_switch_and_a_token(gateway: GatewayHarness) -> None:
    await gateway.restart(admin_token=TOKEN, admin=AdminSettings(allow_remote=True))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guard(mocked(gateway, "10.9.8.7", **auth)) is gateway.gw
    with pytest.raises(GatewayError):
        guard(mocked(gateway, "10.9.8.7"))
    await gateway.restart(admin=AdminSettings(allow_remote=True))  # no token: still local only
    with pytest.raises(GatewayError):
        guard(mocked(gateway, "10.9.8.7"))


def local_address() -> str | None:
    """This machine's own non-loopback IPv4 address, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_a_real_non_loopback_client_is_refused(gateway: GatewayHarness) -> None:
    address = local_address()
    if address is None:
        pytest.skip("no non-loopback interface")
    assert gateway.runner is not None
    site = web.TCPSite(gateway.runner, address, 0)
    try:
        await site.start()
    except OSError:
        pytest.skip(f"cannot listen on {address}")
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(f"http://{address}:{port}/admin/health")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "admin_loopback_only"
    await site.stop()


async def test_agentctl_upstreams_against_a_live_gateway(gateway: GatewayHarness) -> None:
    sim = gateway.sim
    assert sim is not None
    await gateway.restart(
        upstreams=(of(sim, "primary", max_concurrency=4), of(sim, "spare", weight=0)),
        admin_token=TOKEN,
    )
    await post(gateway, "one request", PROD)

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["upstreams", "--url", gateway.url, *args])

    denied = await asyncio.to_thread(invoke, "--json")
    assert denied.exit_code == 1 and "401" in denied.output and "Traceback" not in denied.output
    result = await asyncio.to_thread(invoke, "--json", "--admin-token", TOKEN)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [u["name"] for u in data["upstreams"]] == ["primary", "spare"]
    assert data["upstreams"][0]["requests"] == 1
    assert data["pools"][0]["queued"] == {"priority": 0, "standard": 0, "batch": 0}
    table = await asyncio.to_thread(invoke, "--admin-token", TOKEN)
    assert table.exit_code == 0, table.output
    assert "primary" in table.stdout and "healthy" in table.stdout and "0/4" in table.stdout
    gone = await asyncio.to_thread(
        runner.invoke, cli, ["upstreams", "--url", "http://127.0.0.1:9", "--json"]
    )
    assert gone.exit_code == 1 and "cannot reach the gateway" in gone.output


async def test_a_declared_agent_is_known_with_trust_off(gateway: GatewayHarness) -> None:
    # Regression (third attack): with trust disabled every unregistered agent was a 404
    # ("knows no agent"): "known" came from the trust engine's list only.
    from agentctl.config import TrustSettings

    await gateway.restart(trust=TrustSettings(enabled=False))
    assert (await post(gateway, "hello", PROD)).status_code == 200
    agent = (await get(gateway, "/admin/agents/prod-a")).json()
    assert (agent["owner"], agent["trust"]) == ("team-ml", {"enabled": False, "tier": None})
    assert (await get(gateway, "/admin/agents/nobody")).status_code == 404
