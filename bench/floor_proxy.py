"""The floor: a bare aiohttp pass-through proxy with no governance. Benchmark only.

Same shape as the gateway's forward step (one pooled ClientSession, body buffered,
responses streamed chunk by chunk) and nothing else, so agentctl/floor is the cost
of governance. `python bench/floor_proxy.py --upstream http://127.0.0.1:8500 --port N`
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

DROP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}
DROP_BACK = DROP | {"content-encoding", "date", "server"}
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
UPSTREAM: web.AppKey[str] = web.AppKey("upstream")


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
    url = request.app[UPSTREAM] + request.path_qs
    async with request.app[SESSION].request(request.method, url, data=body, headers=headers) as up:
        back = {k: v for k, v in up.headers.items() if k.lower() not in DROP_BACK}
        if not up.headers.get("Content-Type", "").startswith("text/event-stream"):
            return web.Response(status=up.status, body=await up.read(), headers=back)
        out = web.StreamResponse(status=up.status, headers=back)
        await out.prepare(request)
        async for chunk in up.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
        return out


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.add_routes([web.get("/healthz", healthz), web.route("*", "/{tail:.*}", proxy)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="measure what uvloop buys")
    args = parser.parse_args()
    app = create_app(args.upstream)
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
