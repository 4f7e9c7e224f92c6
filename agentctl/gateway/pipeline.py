"""THE request pipeline. Every proxied call runs `handle()`, top to bottom:

1. identify   who is calling (token / declaration), in memory
2. read       bounded body, one JSON parse, request facts
3. decide     agent status, then policy (model access, caps, rate, quotas)
4. reserve    worst-case cost and counts against every window (inside `decide`)
5. route      the pool for this model; wait in the agent's lane for an upstream slot
6. forward    substitute the provider key, relay (streams event by event); fall back
              to the next pool member while the client has not had a byte
7. settle     in `finally`: usage -> exact cost -> settle the reservation
8. audit      in `finally`: exactly one record, whatever happened

Steps 7-8 run on success, refusal, upstream error, timeout, client disconnect and
cancellation alike; that is why this is one function with one `try/finally` and not
a middleware chain.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from agentctl.audit.capture import Capture
from agentctl.errors import GatewayError, Refusal
from agentctl.gateway.attempts import Attempts
from agentctl.gateway.call import Call
from agentctl.gateway.directory import ClaimRefused, IdentityMismatch
from agentctl.gateway.keys import GATEWAY
from agentctl.gateway.reading import extract_facts, input_bound, parse_body, read_body
from agentctl.gateway.routing import Route
from agentctl.gateway.runtime import Gateway
from agentctl.gateway.upstream import Outbound, forward, outbound
from agentctl.trust import Gate
from agentctl.usage import Usage

log = logging.getLogger("agentctl.pipeline")
RECORDED = web.RequestKey("agentctl_recorded", bool)  # this request's record is journaled
CLOSED_MID_BODY = "the client closed the connection mid-body"


async def handle(request: web.Request, endpoint: str) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    call = gw.new_call(request)
    gw.inflight += 1
    try:
        try:
            response = await proxy(gw, request, call, endpoint)
        except GatewayError as err:
            if isinstance(err, IdentityMismatch):
                call.identity = err.token_agent  # charged to the token's own agent
                gw.trust.mismatch(err.token_agent, err.claimed, call)
            elif isinstance(err, ClaimRefused):
                call.identity = err.declared  # verification "refused"
                if err.code != "invalid_agent_token":  # a stale token is no claim on a name
                    gw.trust.failed_claim(err.claimed, call, err.code)
            refused = isinstance(err, Refusal) or err.status < 500
            call.refuse(err.status, err.code, err.message, refused=refused)
            response = error_response(err, gw.own_headers(call), request.path)
        except Exception:
            # A bug, not a client mistake: still one record (this call's), one OpenAI-shaped
            # 500 naming the request id, and the traceback in the log.
            log.exception(
                "internal error in %s %s (%s)", request.method, request.path, call.request_id
            )
            if call.ttfb is not None:  # the answer had begun: nothing clean to send
                raise
            message = f"internal gateway error ({call.request_id})"
            call.refuse(500, "internal_error", message, refused=False)
            response = error_response(
                GatewayError(500, "internal_error", message), gw.own_headers(call), request.path
            )
        # Journal the record, then complete the response: a client holding the whole
        # answer always finds its request in the audit, even after a SIGKILL.
        record(gw, call, request)
        if not response.prepared:
            try:
                await response.prepare(request)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass
        return response
    finally:
        gw.inflight -= 1
        record(gw, call, request)  # no-op unless an exception or cancellation got here
        request[RECORDED] = True  # the error middleware must not record it a second time
        await asyncio.shield(settle(gw, call))


async def proxy(gw: Gateway, request: web.Request, call: Call, endpoint: str) -> web.StreamResponse:
    call.identity = await gw.identify(request.headers)
    try:
        raw = await read_body(request, gw.limits.max_body_bytes, gw.limits.body_timeout_seconds)
    except asyncio.CancelledError:  # hung up mid-body: recorded as read_body would say it
        if not gw.cutting:  # (cut by the drain instead: record() says `interrupted`)
            call.refuse(499, "client_closed_request", CLOSED_MID_BODY, refused=True)
        raise
    body = parse_body(raw)
    facts = call.facts = extract_facts(
        body,
        len(raw),
        endpoint,
        request.path,
        _retry_count(request),
        input_tokens_bound=input_bound(raw),
    )
    if gw.redactor is not None:  # opt-in: prompts and completions in the audit record
        call.capture = Capture(gw.redactor, gw.settings.audit.bodies.max_chars)
        call.capture.take_request(body)
    target = gw.governance.alias_target(facts.model)  # policy alias: the real model
    plan = gw.router.plan(target or facts.model, endpoint, request.path)
    if plan is None:
        raise GatewayError(
            404,
            "model_not_found",
            f"no upstream serves model {facts.model!r}; check `upstreams` in agentctl.yaml",
            param="model",
        )
    route = plan.primary  # priced and policy-checked as the preferred member
    call.upstream, call.upstream_model = route.upstream.name, route.model
    call.provider = route.upstream.provider
    gate = await decide(gw, call, route)
    outbounds: dict[str, Outbound] = {}

    def prepare(r: Route) -> Outbound:
        out = outbounds.get(r.upstream.name)
        if out is None:
            secret = gw.secrets.get(r.upstream.name)
            forward_identity = gw.settings.identity.forward_header
            out = outbound(r, raw, body, facts, request.headers, secret, forward_identity)
            outbounds[r.upstream.name] = out
        return out

    prepare(route)  # a header no upstream may get is refused before anything is forwarded
    lane = gw.lane_for(call, gate)
    with Attempts(gw.pools, plan, lane, call, lambda: _client_gone(request)) as attempts:
        await attempts.start()  # waits in its lane for a slot; 503 upstream-saturated
        gw.begin(call)  # journaled; 503 audit_unavailable if it cannot be (closed)
        call.forwarded = True
        assert gw.session is not None
        return await forward(
            session=gw.session,
            request=request,
            call=call,
            attempts=attempts,
            prepare=prepare,
            facts=facts,
            max_response_bytes=gw.limits.max_response_bytes,
            own_headers=gw.own_headers(call),
            on_final=lambda: record(gw, call, request),
        )


async def decide(gw: Gateway, call: Call, route: Route) -> Gate | None:
    """Steps 3-4: the agent's status, then policy, which reserves the worst case.
    Returns trust's gate (None with trust off): routing reads its lane."""
    assert call.identity is not None
    refuse_if_disabled(gw, call.identity.name)
    gate = gw.trust.before(call, call.facts)  # type: ignore[arg-type]
    multiplier = gate.rate_multiplier if gate is not None else 1.0
    await gw.governance.admit(call, route, rate_multiplier=multiplier)
    return gate


def refuse_if_disabled(gw: Gateway, name: str) -> None:
    """403 `agent_disabled` for a disabled agent: the kill switch refuses everything it
    asks, model listings included."""
    agent = gw.directory.agent(name)
    if agent is not None and agent.status == "disabled":
        reason = agent.status_reason or "no reason given"
        message = (
            f"agent {agent.name!r} is disabled ({reason}, by {agent.status_actor or 'unknown'})"
        )
        if "agentctl agents enable" not in reason:  # a breaker's reason already says it
            message += (
                f"; an operator can re-enable it with `agentctl agents enable {agent.name} "
                "--reason ...`"
            )
        raise Refusal(403, "agent_disabled", message, should_retry=False)


def record(gw: Gateway, call: Call, request: web.Request) -> None:
    """Steps 7-8, part one: exact cost from the metered usage, then exactly one audit
    record, journaled before the response completes. Idempotent."""
    if call.recorded:
        return
    call.recorded = True
    call.finished = time.perf_counter()
    if call.outcome == "served" and (call.status == 0 or _client_gone(request)):
        if gw.cutting:  # the drain time ran out: the gateway cut it, not the client
            call.outcome = "interrupted"
            call.message = "cut off by the gateway's shutdown (limits.drain_seconds)"
        else:
            call.outcome = "disconnected"  # the client left before the answer was complete
    if call.outcome == "disconnected" and not call.answered:
        call.status = 499  # nginx's "client closed request": it was never sent a status
    usage = call.usage
    if usage is not None and usage.total_tokens:
        model = call.upstream_model or (call.facts.model if call.facts else "")
        cost = gw.pricer.cost(usage, model, call.provider)
        call.cost_pico = cost.pico
        if not cost.priced:
            gw.warn_unpriced(model, call.provider)
    elif call.outcome == "interrupted" and call.forwarded:
        # Cut before any usage was seen: as after a crash, the provider may still bill
        # it, so it is charged its reservation (the worst case).
        prompt = call.facts.input_tokens_estimate if call.facts else 0
        call.usage = Usage(prompt_tokens=prompt, source="estimated")
        call.cost_pico = call.reserved_pico
    else:
        call.cost_pico = 0
    try:
        gw.recorder.record(call.row())
    except Exception:  # the journal is the last line of defence; never lose the request
        log.exception("failed to journal audit record %s", call.request_id)


async def settle(gw: Gateway, call: Call) -> None:
    """Steps 7-8, part two, after the response: settle the reservation (breakers, trust)
    and the telemetry. Never delays the client."""
    await gw.governance.settle(call)
    gw.trust.after(call)
    gw.metrics.observe(call)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _retry_count(request: web.Request) -> int:
    value = request.headers.get("x-stainless-retry-count", "0")
    return int(value) if value.isdigit() else 0


def error_response(err: GatewayError, own_headers: dict[str, str], path: str) -> web.Response:
    headers = {**own_headers, **err.headers}
    return web.json_response(err.body(path), status=err.status, headers=headers)


def endpoint_handler(endpoint: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        return await handle(request, endpoint)

    handler.__name__ = f"handle_{endpoint}"
    return handler
