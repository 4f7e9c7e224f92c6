"""`create_app`: the whole envelope in order: middlewares, cleanup contexts, routes.

Importing this module does nothing; every app is a fresh object built from Settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from agentctl import __version__
from agentctl.config import Settings, Upstream
from agentctl.errors import GatewayError
from agentctl.facts import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from agentctl.gateway import admin
from agentctl.gateway.keys import GATEWAY
from agentctl.gateway.pipeline import RECORDED, endpoint_handler, refuse_if_disabled
from agentctl.gateway.runtime import Gateway
from agentctl.identity import Identity
from agentctl.store.recorder import Journal, Recorder, replay
from agentctl.store.sql import Store
from agentctl.tracing import OPERATIONS

log = logging.getLogger("agentctl.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNAUDITED = frozenset({"/healthz", "/metrics"})


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Anything that escapes the pipeline still answers in the OpenAI error shape.

    Unknown paths and methods are client mistakes (404/405) and are audited like any
    other refusal; a genuine bug is a 500 `internal_error`, logged with its request id.
    """
    try:
        if getattr(request.protocol, "over_limit", False):
            raise _too_many_connections(request)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "unknown_endpoint", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        message = (
            f"{request.method} {request.path} is not an endpoint of this gateway"
            if exc.status in (404, 405)
            else exc.reason
        )
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        err = GatewayError(exc.status, code, message, headers=allow)
    except GatewayError as exc:
        err = exc
    except Exception:
        rid = "req_" + secrets.token_hex(12)
        log.exception("internal error handling %s %s (%s)", request.method, request.path, rid)
        err = GatewayError(500, "internal_error", f"internal gateway error ({rid})")
    gw = request.app[GATEWAY]
    call = gw.new_call(request)
    with contextlib.suppress(GatewayError):  # a valid identity names who got the 404/405
        call.identity = gw.directory.identify(request.headers)
    call.refuse(err.status, err.code, err.message, refused=err.status < 500)
    if request.path not in UNAUDITED and not request.get(RECORDED, False):
        gw.recorder.record(call.row())
    headers = {"x-request-id": call.request_id, **err.headers}
    response = web.json_response(err.body(request.path), status=err.status, headers=headers)
    if getattr(request.protocol, "over_limit", False):
        response.force_close()
    return response


def _too_many_connections(request: web.Request) -> GatewayError:
    """A connection opened beyond `limits.max_connections` (gateway.listener) gets 503
    and is closed: the client learns why at once and its slot is freed. Checked in
    `openai_errors` (one middleware layer less per request)."""
    limit = request.app[GATEWAY].limits.max_connections
    return GatewayError(
        503,
        "too_many_connections",
        f"the gateway already has {limit} open connections (limits.max_connections); "
        "retry shortly or reuse a connection",
        headers={"Retry-After": "1"},
    )


@web.middleware
async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One OpenTelemetry span around each proxied request (only when tracing is on)."""
    tracer = request.app[GATEWAY].tracer
    if tracer is None or request.path not in OPERATIONS:
        return await handler(request)
    with tracer.span(request.path, request.headers):
        return await handler(request)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition, guarded like the admin API (agents, owners and spend are
    operator data): loopback only, and the admin token whenever one is configured."""
    gw = admin.guard(request)
    body, content_type = gw.metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "inflight": gw.inflight,
            "audit_pending": gw.recorder.pending,
        }
    )


async def _model_caller(request: web.Request) -> tuple[Gateway, Identity]:
    """Who asks about models: identified like any call, refused if disabled (both
    refusals audited by `openai_errors`)."""
    gw = request.app[GATEWAY]
    identity = await gw.identify(request.headers)
    refuse_if_disabled(gw, identity.name)
    return gw, identity


async def _upstream_json(
    gw: Gateway, upstream: Upstream, path: str
) -> tuple[int, dict[str, Any] | None]:
    """GET an OpenAI-style upstream's `path` with its key: (status, JSON object or None);
    (0, None) when it cannot be reached in time."""
    assert gw.session is not None
    secret = gw.secrets.get(upstream.name)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        async with asyncio.timeout(upstream.timeouts.connect + 5):
            async with gw.session.get(upstream.base_url + path, headers=headers) as resp:
                data = await resp.json(content_type=None) if resp.status == 200 else None
                return resp.status, data if isinstance(data, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return 0, None


async def list_models(request: web.Request) -> web.Response:
    """The models this caller may use: upstream lists plus config names, filtered by policy."""
    gw, identity = await _model_caller(request)
    models = dict.fromkeys(gw.router.models())
    asked, failed = 0, []
    for upstream in gw.settings.upstreams:
        if upstream.api != "openai":
            continue
        asked += 1
        status, data = await _upstream_json(gw, upstream, "/models")
        items = data.get("data") if data else None
        if not isinstance(items, list):
            failed.append(f"{upstream.name}: {status or 'unreachable'}")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                models.setdefault(item["id"])
    if not models and asked and len(failed) == asked:
        # An empty list would tell the client it may use nothing; the truth is we cannot say.
        raise GatewayError(
            502,
            "upstream_unavailable",
            f"no upstream answered GET /models ({', '.join(failed)}) and agentctl.yaml names "
            "no models; try again, or list the models under the upstream's `models`",
        )
    now = int(time.time())
    allowed = gw.governance.governor.model_allowed
    data = [
        {"id": m, "object": "model", "created": now, "owned_by": "agentctl"}
        for m in models
        if allowed(identity, m)
    ]
    return web.json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    """`GET /v1/models/{model}` (the SDKs' `models.retrieve`): the model if policy lets
    this caller use it and it exists: named in config (an upstream's `models`, an alias)
    or, when only a glob routes it, confirmed by that upstream's own
    `GET /models/{model}`. Else 404 `model_not_found`, as `/v1/models` would not list it."""
    gw, identity = await _model_caller(request)
    model = request.match_info["model"]
    target = gw.governance.alias_target(model) or model
    plan = gw.router.plan(target, CHAT, "/v1/chat/completions")
    exists = plan is not None and (
        gw.governance.alias_target(model) is not None or target in gw.router.models()
    )
    if plan is not None and not exists:
        route = plan.primary
        if route.upstream.api != "openai":
            exists = True  # its glob is the only word on it
        else:
            status, _ = await _upstream_json(gw, route.upstream, "/models/" + route.model)
            if status not in (200, 404):
                raise GatewayError(
                    502,
                    "upstream_error",
                    f"upstream {route.upstream.name!r} could not confirm model {model!r} "
                    f"({'unreachable' if status == 0 else f'HTTP {status}'}); retry shortly",
                )
            exists = status == 200
    if not exists or not gw.governance.governor.model_allowed(identity, model):
        raise GatewayError(
            404, "model_not_found", f"the model {model!r} does not exist or you lack access"
        )
    return web.json_response(
        {"id": model, "object": "model", "created": int(time.time()), "owned_by": "agentctl"}
    )


async def expect_continue(request: web.Request) -> None:
    """`Expect: 100-continue` (curl sends it for bodies over 1 KiB): 100 Continue, unless
    the declared body is over `limits.max_body_bytes`; then no 100, so the pipeline
    answers 413 (audited) before the client sends a byte of it. Any other expectation is
    417, as aiohttp's own handler answers."""
    expect = request.headers.get("Expect", "").lower()
    if request.version != aiohttp.HttpVersion11:
        return
    if expect != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    length = request.content_length
    if length is not None and length > request.app[GATEWAY].limits.max_body_bytes:
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the 100 is not part of the response


def create_app(settings: Settings, *, store: Store | None = None) -> web.Application:
    app = web.Application(
        middlewares=[
            openai_errors,
            *([traced] if settings.tracing.enabled else []),
        ],
        client_max_size=settings.limits.max_body_bytes,
    )
    app.cleanup_ctx.append(_gateway_ctx(settings, store))
    posts = [
        ("/v1/chat/completions", CHAT),
        ("/v1/completions", COMPLETIONS),
        ("/v1/embeddings", EMBEDDINGS),
        ("/v1/responses", RESPONSES),
        ("/v1/messages", MESSAGES),
    ]
    routes = [
        *(web.post(p, endpoint_handler(e), expect_handler=expect_continue) for p, e in posts),
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model}", retrieve_model),
        web.get("/healthz", healthz),
        *([web.get("/metrics", metrics)] if settings.metrics.enabled else []),
        *(admin.routes() if settings.admin.enabled else []),  # loopback + admin token
    ]
    app.add_routes(routes)
    return app


def _gateway_ctx(
    settings: Settings, store: Store | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        own_store = store is None
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)  # database, journal
        db = store or Store(settings.database)
        await asyncio.to_thread(db.ensure_ready)
        journal_dir = settings.journal_path
        if settings.audit.journal:
            recovered, interrupted = await asyncio.to_thread(replay, db, journal_dir)
            if recovered:
                log.warning(
                    "recovered %d audit record(s) from the journal (%d interrupted)",
                    recovered,
                    interrupted,
                )
        journal = Journal(journal_dir) if settings.audit.journal else None
        recorder = Recorder(
            db, journal=journal, flush_interval=settings.audit.flush_interval_ms / 1000
        )
        recorder.start()
        gateway = Gateway(settings, db, recorder)
        await gateway.governance.start()
        await gateway.trust.start(gateway.directory.registry)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        gateway.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,
            # One session carries every agent's requests: cookies an upstream sets (e.g.
            # Cloudflare's __cf_bm) must not be kept and replayed on the next agent's.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        gateway.governance.session = gateway.session
        gateway.trust.session = gateway.session
        app[GATEWAY] = gateway
        background = [
            asyncio.create_task(gateway.watch()),
            asyncio.create_task(gateway.trust.run()),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await gateway.governance.drain()
            await gateway.trust.drain()
            await gateway.session.close()
            await asyncio.to_thread(recorder.close)
            if gateway.tracer is not None:
                await asyncio.to_thread(gateway.tracer.close)  # flushes spans
            if own_store:
                db.close()

    return ctx
