"""`agentctl upstreams`: pools, health, in-flight and queue depth per lane, live.

Reads `GET /admin/upstreams` from a running gateway (default: the configured host and
port, on loopback), with the admin token from `--admin-token`, `AGENTCTL_ADMIN_TOKEN`
or `admin_token:` in agentctl.yaml. The gateway keeps this state in memory only, so
there is nothing to read when no gateway is running.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from agentctl.cli import render
from agentctl.cli.options import ConfigFile, Json
from agentctl.config import load_settings
from agentctl.errors import CliError

Url = Annotated[
    str | None,
    typer.Option("--url", help="Gateway URL (default: http://HOST:PORT from config)."),
]
AdminToken = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        help="Admin token (default: AGENTCTL_ADMIN_TOKEN or admin_token in config).",
        envvar="AGENTCTL_ADMIN_TOKEN",
        show_envvar=True,
    ),
]
LANES = ("priority", "standard", "batch")


def fetch(path: str, url: str | None, token: str | None, config: Any = None) -> Any:
    settings = load_settings(config=config)
    token = token or settings.admin_token
    if url is None:
        host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        url = f"http://{'[' + host + ']' if ':' in host else host}:{settings.port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.get(url.rstrip("/") + path, headers=headers, timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the gateway at {url} ({type(exc).__name__}); is `agentctl serve` "
            "running? Pass --url if it listens elsewhere"
        ) from None
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:200]
        raise CliError(f"the gateway at {url} answered {resp.status_code}: {message}")
    return resp.json()


def show(
    url: Url = None,
    admin_token: AdminToken = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Upstream pools: health, in-flight requests and queue depth per lane (live)."""
    data = fetch("/admin/upstreams", url, admin_token, config)
    if json_out:
        render.emit_json(data)
        return
    rows = []
    for u in data["upstreams"]:
        flight = u["in_flight"]
        health = u["health"]
        state = health["state"]
        if state == "ejected":
            state += f" ({health['ejected_for_s']:g}s)"
        limit = u["max_concurrency"] or "-"
        rows.append(
            [
                u["name"],
                state,
                ",".join(u["lanes"]),
                u["weight"],
                f"{flight['total']}/{limit}",
                "/".join(str(flight[lane]) for lane in LANES),
                u["requests"],
                u["failures"],
            ]
        )
    render.show(
        render.table(
            ["upstream", "health", "lanes", "weight", "in flight", "p/s/b", "requests", "failed"],
            rows,
            title="Upstreams",
            right=["weight", "in flight", "p/s/b", "requests", "failed"],
            keep=["upstream"],
        )
    )
    pools = [
        [
            p["name"],
            " > ".join(p["upstreams"]),
            "/".join(str(p["queued"][lane]) for lane in LANES),
            p["max_attempts"],
            ",".join(p["fallback_on"]),
            f"{p['queue_timeout']:g}s",
        ]
        for p in data["pools"]
    ]
    render.show(
        render.table(
            ["pool", "upstreams", "queued p/s/b", "attempts", "fallback on", "max wait"],
            pools,
            title="Pools (implicit ones appear once a request used them)",
            right=["queued p/s/b", "attempts"],
            keep=["pool"],
        )
    )


def register(app: typer.Typer) -> None:
    app.command("upstreams")(show)
