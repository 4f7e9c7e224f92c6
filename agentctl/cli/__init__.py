"""The `agentctl` command. Each command group lives in its own module; this one only
assembles them and turns operator errors into a message and an exit code:
0 success, 1 operation failed, 2 usage error (typer), 130 interrupted."""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from agentctl.errors import CliError


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            from agentctl.cli import render

            if ctx.params.get("debug"):
                render.err_console.print(traceback.format_exc(), markup=False)
            render.error(exc.message)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="agentctl",
    help="agentctl: an agent-native AI gateway. Per-agent identity, policy, audit and trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """agentctl: an agent-native AI gateway. Per-agent identity, policy, audit and trust."""


def _register() -> None:
    from agentctl.cli import agents, demo, policy, report, serve, tail

    serve.register(app)
    app.add_typer(agents.app, name="agents")
    app.add_typer(policy.app, name="policy")
    report.register(app)
    tail.register(app)
    demo.register(app)


_register()


def main() -> None:
    app(prog_name="agentctl")
