"""The simulator's aiohttp app: routing, recording, admission and request-level faults.

Every API request goes through `_serve`, in this order:
1. read the body; count it in `received`; record it (unless `record_requests` is off);
2. resolve the `Behaviour` (config + `x-sim-*` headers); a bad header is an immediate 400;
3. admission: wait for a slot under `max_concurrency`, then count it in `in_flight`;
4. latency, hang, the API key check, injected status / fail-first, the reply itself;
5. `deliver` (byte-level faults); `served` counts replies the client received in full.

State lives on the app under `SIMULATOR`, never in module globals, so two simulators in
one process (a primary and a fallback upstream) never share counters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from agentctl.simulator import anthropic, openai
from agentctl.simulator.accounting import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    RESPONSES,
    Endpoint,
    count,
)
from agentctl.simulator.behaviour import Behaviour, InvalidRequest, SimulatorConfig
from agentctl.simulator.delivery import Exchange, JsonReply, StreamReply, deliver

MODELS = "/v1/models"
UNKNOWN = "*"
_RETRYABLE = frozenset({429, 503, 529})
_HANG_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any


class SimulatorState:
    """Counters, the request record and the admission queue of one simulator app."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.requests: list[RecordedRequest] = []
        self.received = 0
        self.served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: dict[str, int] = {}
        self.closing = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._prefix = secrets.token_hex(4)
        self._sequence = itertools.count(1)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def next_token(self) -> str:
        return f"{self._prefix}{next(self._sequence):08x}"

    def reset(self) -> None:
        """Forget recorded requests and counters (not the config or requests in flight)."""
        self.requests.clear()
        self.attempts.clear()
        self.received = self.served = 0
        self.max_in_flight = self.in_flight

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "served": self.served,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "waiting": self.waiting,
        }

    async def acquire(self) -> None:
        while (cap := self.config.max_concurrency) is not None and self.in_flight >= cap:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the slot we were handed
                else:
                    self._waiters.remove(waiter)
                raise
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


SIMULATOR: Final = web.AppKey("agentctl_simulator", SimulatorState)


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _authorized(request: web.Request, key: str) -> bool:
    return request.headers.get("Authorization") == f"Bearer {key}" or (
        request.headers.get("x-api-key") == key
    )


def _error(
    anthropic_api: bool,
    headers: dict[str, str],
    status: int,
    message: str | None = None,
    param: str | None = None,
) -> JsonReply:
    if anthropic_api:
        return anthropic.error(status, headers, message)
    return openai.error(status, headers, message, param=param)


def _build(
    route: str, request: web.Request, data: Any, state: SimulatorState, ex: Exchange
) -> JsonReply | StreamReply:
    if route == UNKNOWN:
        message = f"Invalid URL ({request.method} {request.path})"
        return openai.error(404, ex.headers, message, code="unknown_url")
    if route == MODELS:
        if "model" in request.match_info:
            return openai.model(request.match_info["model"], state.config.models, ex)
        return openai.models(state.config.models, ex)
    if not isinstance(data, dict):
        raise InvalidRequest("We could not parse the JSON body of your request.")
    endpoint = cast(Endpoint, route)
    counts = count(endpoint, data, ex.behaviour)
    if endpoint == CHAT:
        return openai.chat(data, counts, ex)
    if endpoint == COMPLETIONS:
        return openai.completion(data, counts, ex)
    if endpoint == EMBEDDINGS:
        return openai.embeddings(data, counts, ex, state.config.embedding_dimensions)
    if endpoint == RESPONSES:
        return openai.response(data, counts, ex)
    return anthropic.message(data, counts, ex)


def _respond(
    route: str, request: web.Request, data: Any, state: SimulatorState, ex: Exchange
) -> JsonReply | StreamReply:
    """The reply before byte-level faults: auth, injected status, then the real thing."""
    anthropic_api = route == MESSAGES
    behaviour = ex.behaviour
    status = behaviour.failing_status
    if status is not None and behaviour.fail_first:
        attempt = state.attempts.get(behaviour.key, 0) + 1
        state.attempts[behaviour.key] = attempt
        if attempt > behaviour.fail_first:
            status = None
    api_key = state.config.api_key
    if api_key is not None and not _authorized(request, api_key):
        return _error(anthropic_api, ex.headers, 401)
    if status is not None:
        if status in _RETRYABLE and behaviour.retry_after_ms:
            ex.headers["retry-after-ms"] = str(behaviour.retry_after_ms)
            ex.headers["retry-after"] = str(math.ceil(behaviour.retry_after_ms / 1000))
        return _error(anthropic_api, ex.headers, status)
    try:
        return _build(route, request, data, state, ex)
    except InvalidRequest as exc:
        return _error(anthropic_api, ex.headers, 400, exc.message, exc.param)


async def _hang(request: web.Request, state: SimulatorState) -> None:
    """Wait until the client gives up or the simulator shuts down."""
    while not state.closing:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(_HANG_POLL_S)


async def _serve(request: web.Request, route: str) -> web.StreamResponse:
    state = request.app[SIMULATOR]
    config = state.config
    started = time.monotonic()
    raw = await request.read() if request.body_exists else b""
    data = _parse(raw)
    state.received += 1
    if config.record_requests:
        headers_copy = CIMultiDictProxy(CIMultiDict(request.headers))
        state.requests.append(
            RecordedRequest(request.method, request.path, headers_copy, raw, data)
        )
    token = state.next_token()
    anthropic_api = route == MESSAGES
    headers = anthropic.headers(token) if anthropic_api else openai.headers(token)
    try:
        behaviour = Behaviour.resolve(config, request.headers)
    except InvalidRequest as exc:
        refusal = _error(anthropic_api, headers, 400, exc.message, exc.param)
        response, complete = await deliver(request, refusal, Behaviour())
        state.served += complete
        return response

    await state.acquire()
    try:
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        if behaviour.hang:
            await _hang(request, state)
            return web.Response(status=503)
        ex = Exchange(token, int(time.time()), headers, behaviour)
        reply = _respond(route, request, data, state, ex)
        if not anthropic_api:
            headers["openai-processing-ms"] = str(int((time.monotonic() - started) * 1000))
        response, complete = await deliver(request, reply, behaviour)
        state.served += complete
        return response
    finally:
        state.release()


def _route(route: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await _serve(request, route)

    return handler


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].stats())


async def _stop_hanging(app: web.Application) -> None:
    app[SIMULATOR].closing = True


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIMULATOR] = SimulatorState(config or SimulatorConfig())
    app.on_shutdown.append(_stop_hanging)
    for endpoint in (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES):
        app.router.add_post(endpoint, _route(endpoint))
    app.router.add_get(MODELS, _route(MODELS))
    app.router.add_get(MODELS + "/{model}", _route(MODELS))
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_route("*", "/{tail:.*}", _route(UNKNOWN))
    return app


class RunningSimulator:
    """A simulator listening on loopback; `url` has no `/v1` (Anthropic's base URL)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.app = runner.app
        self.url = url

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def state(self) -> SimulatorState:
        return self.app[SIMULATOR]

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    async def close(self) -> None:
        self.state.closing = True
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    config: SimulatorConfig | None = None,
    *,
    shutdown_timeout: float = 1.0,
) -> RunningSimulator:
    """Serve a fresh simulator app; `port=0` picks a free port."""
    runner = web.AppRunner(
        create_app(config),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(runner, f"http://{bound_host}:{bound_port}")
