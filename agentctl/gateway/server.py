"""Running a gateway: startup checks, the listening socket, graceful shutdown.

SIGTERM/SIGINT: stop accepting, let in-flight requests finish for up to
`limits.drain_seconds`, cut what is left (recorded `interrupted`, charged as metered or
its reservation), then flush the recorder and exit 0. SIGHUP: re-read the
config and the active policy without dropping a connection (`gateway.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from agentctl.config import Settings, is_loopback
from agentctl.errors import ConfigError
from agentctl.gateway import heap
from agentctl.gateway.app import create_app
from agentctl.gateway.keys import GATEWAY
from agentctl.gateway.listener import GatewayRunner
from agentctl.gateway.reload import reload as apply_reload
from agentctl.gateway.runtime import Gateway

log = logging.getLogger("agentctl.gateway")
DRAIN_POLL_S = 0.05
CUT_GRACE_S = 0.5  # after the drain: cancel what is left, and let it record itself


def check_settings(settings: Settings) -> None:
    if _looks_like_ip(settings.host) and not _is_ip(settings.host):
        raise ConfigError(
            f"--host {settings.host} is not a valid IP address; use an address of this "
            "machine, e.g. 127.0.0.1 (loopback) or 0.0.0.0 (every interface)"
        )
    if not is_loopback(settings.host) and not settings.gateway_key:
        raise ConfigError(
            f"refusing to listen on {settings.host} without a gateway key: anyone who can "
            "reach it could spend your provider credit. Set AGENTCTL_GATEWAY_KEY (or "
            'gateway_key: {"$env": NAME} in agentctl.yaml), or listen on 127.0.0.1'
        )
    if not settings.upstreams:
        raise ConfigError(
            "no upstream configured: pass --upstream URL (e.g. --upstream "
            "https://api.openai.com/v1) or add `upstreams:` to agentctl.yaml (agentctl init)"
        )


def _looks_like_ip(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use; stop the other process or pass --port N"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    reload: Callable[[], Settings] | None = None,
) -> None:
    app = create_app(settings)
    runner = GatewayRunner(
        app,
        handle_signals=False,
        access_log=None,
        # aiohttp's own wait, after ours (`_drain`): it waits this long, cancels what is
        # left, then waits this long again for the handlers to record what they cut.
        shutdown_timeout=CUT_GRACE_S,
    )
    await runner.setup()
    heap.settle(collect=False)  # start-up's objects out of every later full collection
    sock = sock or bind_socket(settings.host, settings.port)
    site = web.SockSite(runner, sock)
    await site.start()
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    if on_ready is not None:
        on_ready(url)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()
    if reload is not None:

        def hangup() -> None:
            task = asyncio.ensure_future(_reload(app, reload))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        await stop.wait()
        await _drain(runner, app[GATEWAY], settings.limits.drain_seconds)
    finally:
        await runner.cleanup()


async def _drain(runner: web.BaseRunner, gw: Gateway, seconds: float) -> None:
    """SIGTERM: stop accepting, let what is in flight finish for up to `seconds`, then
    mark the rest to be cut (recorded `interrupted`; runner.cleanup cancels them)."""
    log.info("shutting down: draining %d in-flight request(s) (up to %gs)", gw.inflight, seconds)
    for site in list(runner.sites):
        await site.stop()  # the listener closes
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close; busy ones after
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while gw.inflight and loop.time() < deadline:
        await asyncio.sleep(min(DRAIN_POLL_S, max(deadline - loop.time(), 0.0)))
    if gw.inflight:
        log.warning(
            "drain time is up (limits.drain_seconds: %g): cutting %d request(s) still in "
            "flight; they are recorded as interrupted",
            seconds,
            gw.inflight,
        )
        gw.cutting = True
    else:
        log.info("drained: no request in flight")


async def _reload(app: web.Application, load: Callable[[], Settings]) -> None:
    try:
        await apply_reload(app[GATEWAY], load)
    except ConfigError as exc:
        log.error("config reload failed, keeping the running config: %s", exc)
    except Exception:
        log.exception("config reload failed, keeping the running config")
