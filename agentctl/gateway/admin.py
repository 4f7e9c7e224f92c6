"""The admin API: live gateway state for `agentctl upstreams` and for scripts.

Read-only, under `/admin/`, described by the OpenAPI 3.1 document at
`/admin/openapi.json` (`admin_openapi.OPENAPI`). Access (`guard`):

- a configured admin token (`AGENTCTL_ADMIN_TOKEN`, `admin_token:`) is required on
  every call as `Authorization: Bearer <token>` (401 `admin_token_required`);
- peers must be loopback addresses (403 `admin_loopback_only`) unless
  `admin.allow_remote` is on AND a token is configured; behind a proxy listed in
  `trusted_proxies`, the peer is the client it forwards for (gateway.proxies), so a
  local reverse proxy cannot make remote callers look local;
- with no token, a request carrying `Forwarded`/`X-Forwarded-For` is refused too: a
  reverse proxy on the same host would otherwise make every caller look local.

Refusals are OpenAI-shaped and audited like any other; successful reads are not
audited. State is per process: under `serve --workers N` each answer describes the
worker that took the connection.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from agentctl import __version__
from agentctl.config import is_loopback
from agentctl.errors import GatewayError
from agentctl.gateway.admin_openapi import OPENAPI
from agentctl.gateway.keys import GATEWAY
from agentctl.gateway.routing import LANES, Pool
from agentctl.gateway.runtime import Gateway
from agentctl.identity import Identity

PREFIX = "/admin"


def guard(request: web.Request) -> Gateway:
    gw = request.app[GATEWAY]
    token = gw.settings.admin_token
    peer = gw.proxies.client(request.remote or "", request.headers)
    if not is_loopback(peer) and not (token and gw.settings.admin.allow_remote):
        raise GatewayError(
            403,
            "admin_loopback_only",
            f"the admin API answers loopback clients only (this one is {peer or 'unknown'}); "
            "call it from the gateway's host, or configure an admin token and "
            "`admin: {allow_remote: true}`",
        )
    if not token:
        if "forwarded" in request.headers or "x-forwarded-for" in request.headers:
            raise GatewayError(
                403,
                "admin_loopback_only",
                "a proxied request reached the admin API and no admin token is configured; "
                "set AGENTCTL_ADMIN_TOKEN to use it through a proxy",
            )
        return gw
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise GatewayError(
            401,
            "admin_token_required",
            "the admin API needs Authorization: Bearer <admin token> (AGENTCTL_ADMIN_TOKEN)",
        )
    return gw


async def openapi(request: web.Request) -> web.Response:
    guard(request)
    return web.json_response(OPENAPI)


async def health(request: web.Request) -> web.Response:
    gw = guard(request)
    states = [m.health.view()["state"] for m in gw.pools.members.values()]
    queued = sum(sum(lanes) for lanes in gw.pools.waiting.values())
    return web.json_response(
        {
            "status": "ok" if "healthy" in states or not states else "degraded",
            "version": __version__,
            "inflight": gw.inflight,
            "queued": queued,
            "audit_pending": gw.recorder.pending,
            "upstreams": {s: states.count(s) for s in ("healthy", "half-open", "ejected")},
        }
    )


async def upstreams(request: web.Request) -> web.Response:
    gw = guard(request)
    return web.json_response(
        {
            "pools": [_pool(gw, pool) for pool in gw.router.pools()],
            "upstreams": list(gw.pools.view().values()),
            "lanes": list(LANES),
        }
    )


def _pool(gw: Gateway, pool: Pool) -> dict[str, Any]:
    options = pool.options
    return {
        "name": pool.name,
        "explicit": pool.explicit,
        "upstreams": [u.name for u in pool.members],
        "queued": dict(zip(LANES, gw.pools.queued(pool.name), strict=True)),
        "max_attempts": options.max_attempts,
        "fallback_on": list(options.fallback_on),
        "queue_timeout": options.queue_timeout,
        "max_queue": options.max_queue,
    }


async def agent(request: web.Request) -> web.Response:
    gw = guard(request)
    name = request.match_info["name"]
    known = gw.directory.agent(name)
    engine = gw.trust.engine
    seen = None if known else gw.directory.declared(name)
    if known is None and seen is None and name not in engine.agents():
        raise GatewayError(
            404,
            "agent_not_found",
            f"this gateway knows no agent {name!r} (not registered, no traffic since start)",
        )
    # An unregistered agent: the owner and purpose it declared lately, or the query's.
    query = request.query
    identity = Identity(
        name,
        known.owner if known else query.get("owner", seen.owner if seen else ""),
        known.purpose if known else query.get("purpose", seen.purpose if seen else ""),
    )
    policy = gw.governance.governor.effective(identity)
    trust = {"enabled": gw.trust.enabled, "tier": engine.tier(name) if gw.trust.enabled else None}
    return web.json_response(
        {
            "agent": name,
            "registered": bool(known and known.registered),
            "status": known.status if known else "active",
            "owner": identity.owner,
            "purpose": identity.purpose,
            "policy_version": gw.governance.version,
            "lane": policy.lane,
            "trust": trust,
            "budgets": await _budgets(gw, identity),
        }
    )


async def _budgets(gw: Gateway, identity: Identity) -> list[dict[str, Any]]:
    """Each budget window of the agent: limits, used (with reservations) and settled."""
    governor = gw.governance.governor
    now = time.time()
    refs = governor.window_refs(governor.effective(identity), now)
    if not refs:
        return []
    usage = await gw.counters.usage([r.spec.key for r in refs], now=now)
    out = []
    for ref in refs:
        got = usage.get(ref.spec.key)
        limits = ref.spec.limits
        out.append(
            {
                "budget": ref.path,
                "subject": ref.subject,
                "window_start": ref.window.start,
                "window_end": ref.window.end,
                "enforced": ref.spec.enforce,
                "limits": {u: limits.get(u) for u in ("requests", "tokens", "pico")},
                "used": _amounts(got.used) if got else None,
                "settled": _amounts(got.settled) if got else None,
            }
        )
    return out


def _amounts(amounts: Any) -> dict[str, int]:
    return {"requests": amounts.requests, "tokens": amounts.tokens, "pico": amounts.pico}


def routes() -> list[web.RouteDef]:
    return [
        web.get(PREFIX + "/openapi.json", openapi),
        web.get(PREFIX + "/health", health),
        web.get(PREFIX + "/upstreams", upstreams),
        web.get(PREFIX + "/agents/{name}", agent),
    ]
