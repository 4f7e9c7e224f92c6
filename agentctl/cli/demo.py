"""`agentctl demo`: gateway + simulated upstream + simulated agents, offline."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Annotated

import typer
from rich.live import Live

from agentctl.cli import render
from agentctl.cli.tail import _table
from agentctl.config import Settings
from agentctl.demo import AGENTS, run_demo, summary
from agentctl.fleet import Fleet
from agentctl.fleetinfo import StoreInfo
from agentctl.store.sql import Store


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    seconds: Annotated[float, typer.Option("--seconds", min=1, help="How long to run.")] = 20,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary home.")] = False,
) -> None:
    """Run a gateway with simulated agents (two of them runaways) against a simulated
    upstream, show the live tail, then a report. Offline; nothing is left running."""
    state: dict[str, object] = {}
    announced: set[str] = set()
    live = Live(console=render.console, refresh_per_second=4, transient=False)
    interactive = render.console.is_terminal

    def ready(settings: Settings, url: str) -> None:
        store = Store(settings.database)
        fleet = Fleet(store, info=StoreInfo(store))
        fleet.seed()
        state.update(settings=settings, store=store, fleet=fleet)
        render.info(
            f"demo gateway on {url.rsplit('/v1', 1)[0]} (simulated upstream, no real provider)"
        )
        render.info("agents: " + ", ".join(f"{a.name} ({a.per_second:g}/s)" for a in AGENTS))
        if interactive:
            live.start()

    def tick(elapsed: float) -> None:
        fleet: Fleet = state["fleet"]  # type: ignore[assignment]
        fleet.poll()
        store: Store = state["store"]  # type: ignore[assignment]
        for agent in store.list_agents():
            if agent.status == "disabled" and agent.name not in announced:
                announced.add(agent.name)
                message = (
                    f"{elapsed:4.1f}s  {agent.name} disabled by {agent.status_actor}: "
                    f"{agent.status_reason}"
                )
                if interactive:
                    live.console.print(f"[bold yellow]{message}[/]")
                else:
                    render.info(message)
        if interactive:
            live.update(_table(fleet))

    started = time.monotonic()
    try:
        settings = asyncio.run(run_demo(seconds, on_ready=ready, on_tick=tick))
    finally:
        if interactive:
            live.stop()
    fleet: Fleet = state["fleet"]  # type: ignore[assignment]
    fleet.poll()
    if not interactive:
        render.show(_table(fleet))
    data = summary(settings)
    rows = [
        (
            r["agent"],
            r["owner"],
            r["purpose"],
            r["requests"],
            r["denied"],
            r["prompt_tokens"] + r["completion_tokens"],
            r["cost_usd"],
        )
        for r in data["rows"]
    ]
    t = data["totals"]
    rows.append(
        (
            "TOTAL",
            "",
            "",
            t["requests"],
            t["denied"],
            t["prompt_tokens"] + t["completion_tokens"],
            t["cost_usd"],
        )
    )
    render.show(
        render.table(
            ("agent", "owner", "purpose", "requests", "denied", "tokens", "cost_usd"),
            rows,
            title=f"report after {time.monotonic() - started:.0f}s",
            right=("requests", "denied", "tokens", "cost_usd"),
        )
    )
    store: Store = state["store"]  # type: ignore[assignment]
    store.close()
    if keep:
        render.info(f"demo home kept at {settings.home} (agentctl report --db {settings.database})")
    else:
        shutil.rmtree(settings.home, ignore_errors=True)
