"""The connection layer under the app: aiohttp's HTTP protocol with the gateway's limits.

Some requests never reach the app's middlewares, because aiohttp's parser refuses
them first. aiohttp would answer those with a text/plain 400 and an ERROR log line
with a traceback quoting the offending bytes (which may hold the caller's own token).
Here they get what every other refusal gets: the OpenAI error shape, an
`x-request-id`, one audit row, and one INFO log line without the bytes:

- a request line or header line longer than `limits.max_header_bytes`: 431
  `header_too_large`; more than `limits.max_headers` header lines: 431
  `too_many_headers`;
- CR, LF, NUL or another control byte inside a header: 400 `invalid_header`; any
  other framing error: 400 `bad_request`;
- a request head still incomplete `limits.header_timeout_seconds` after its first
  byte (a client trickling its headers): 408 `request_timeout`, connection closed.

Also here: idle connections (keep-alive, or never a byte sent) close after
`limits.idle_timeout_seconds`, and
a connection opened while `limits.max_connections` are already open is marked
`over_limit`; the app answers its requests 503 `too_many_connections` and closes it
(app.openai_errors), so an excess client learns why at once instead of hanging.

`GatewayRunner` is `web.AppRunner` with this protocol; limits are read from the
running gateway when a connection opens, so a SIGHUP reload applies to new
connections. The subclasses lean on aiohttp internals (`_messages`, `_waiter`,
`_request_in_progress`, `_ErrInfo`, `Server._kwargs`); tests/hardening exercises every
path, so an aiohttp upgrade that moves them fails loudly (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, InvalidHeader, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from agentctl.config import Limits
from agentctl.errors import GatewayError
from agentctl.gateway.keys import GATEWAY

log = logging.getLogger("agentctl.gateway")


class HeadTimeout(Exception):
    pass


def classify(status: int, exc: BaseException | None, limits: Limits) -> GatewayError:
    """The OpenAI-shaped answer for an error aiohttp raised outside the app."""
    if isinstance(exc, HeadTimeout):
        return GatewayError(
            408,
            "request_timeout",
            f"the request headers did not arrive within {limits.header_timeout_seconds:g} s "
            "(limits.header_timeout_seconds)",
        )
    if isinstance(exc, LineTooLong):
        return GatewayError(
            431,
            "header_too_large",
            "the request line or a header is longer than the gateway limit of "
            f"{limits.max_header_bytes} bytes (limits.max_header_bytes)",
        )
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
        return GatewayError(
            431,
            "too_many_headers",
            f"the request has more than {limits.max_headers} headers (limits.max_headers)",
        )
    text = str(exc).lower() if exc is not None else ""
    if isinstance(exc, InvalidHeader) or "header" in text:
        return GatewayError(
            400,
            "invalid_header",
            "a request header is malformed or contains a control character (CR, LF, NUL, "
            "DEL or another byte below 0x20 other than tab); remove it",
        )
    if isinstance(exc, BadStatusLine):
        return GatewayError(400, "bad_request", "the request line is not valid HTTP/1.x")
    if status == 504:
        return GatewayError(504, "request_timeout", "the gateway timed out handling the request")
    if status >= 500:
        return GatewayError(500, "internal_error", "internal gateway error")
    return GatewayError(status, "bad_request", "the request is not valid HTTP/1.x")


class GatewayProtocol(RequestHandler):
    """One client connection (see the module docstring)."""

    def __init__(self, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.app = manager.app
        self.limits: Limits = manager.limits()
        self.over_limit = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        if manager is not None and len(manager.connections) > self.limits.max_connections:
            self.over_limit = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_done():
            self._stop_head_timer()
        elif data and self._head_timer is None and self.transport is not None:
            self._head_timer = self._loop.call_later(
                self.limits.header_timeout_seconds, self._head_timeout
            )

    def _head_done(self) -> bool:
        return bool(self._messages) or self._request_in_progress or self._force_close

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        waiter = self._waiter
        if self._head_done() or waiter is None or waiter.done():
            return
        self._close = True  # no more parsing: the error below is this connection's last
        self._messages.append((_ErrInfo(408, HeadTimeout(), "head timeout"), EMPTY_PAYLOAD))
        waiter.set_result(None)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A body the client garbled after its answer was sent (aiohttp reads the rest
        before closing) is the client's problem, not an ERROR with a traceback."""
        if isinstance(kw.get("exc_info"), RequestPayloadError):
            log.debug("discarded the rest of a malformed request body")
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        err = classify(status, exc, self.limits)
        if err.status >= 500:
            log.error("error handling %s %s", request.method, request.path, exc_info=exc)
        else:
            log.info("refused malformed request from %s: %s", request.remote, err.code)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; cannot send an error")
        headers = {}
        gw = self.app.get(GATEWAY)
        if gw is not None:
            try:
                call = gw.new_call(request)
                if status != 500:
                    call.path = ""  # the request line was never understood
                call.refuse(err.status, err.code, err.message, refused=err.status < 500)
                gw.recorder.record(call.row())
                headers["x-request-id"] = call.request_id
            except Exception:  # an answer matters more than the row; say so
                log.exception("could not audit a refused malformed request")
        resp = web.json_response(err.body(), status=err.status, headers=headers)
        resp.force_close()
        return resp


class GatewayServer(web.Server):
    def __init__(self, handler: Any, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.app = app

    def limits(self) -> Limits:
        gw = self.app.get(GATEWAY)
        return gw.limits if gw is not None else Limits()

    def __call__(self) -> GatewayProtocol:
        limits = self.limits()
        kwargs = {
            **self._kwargs,
            "max_line_size": limits.max_header_bytes,
            "max_field_size": limits.max_header_bytes,
            "max_headers": limits.max_headers,
            "keepalive_timeout": limits.idle_timeout_seconds,
        }
        return GatewayProtocol(self, loop=self._loop, **kwargs)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` whose connections are `GatewayProtocol`s, with handler
    cancellation on: a client that hangs up cancels its request's handler, so a request
    still waiting on its upstream stops there (the upstream connection is dropped, its
    slot freed) and is recorded 499 `disconnected` at once, not when the upstream answers
    or times out (aiohttp's default since 3.9 lets the handler run on)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GatewayServer(
            plain.request_handler,
            app=self.app,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
