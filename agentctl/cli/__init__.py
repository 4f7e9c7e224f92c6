"""The `agentctl` command. Each command group lives in its own module; this one only
assembles them and turns operator errors into a message and an exit code:
0 success, 1 operation failed, 2 usage error (typer), 130 interrupted."""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

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
        except (typer.Exit, typer.Abort, TyperException, KeyboardInterrupt):
            raise  # usage errors (exit 2) and deliberate exits keep their own handling
        except Exception as exc:  # never a traceback for an operator, unless --debug
            from agentctl.cli import render

            if ctx.params.get("debug"):
                render.err_console.print(traceback.format_exc(), markup=False)
            render.error(_describe(exc))
            raise typer.Exit(1) from None


def _describe(exc: Exception) -> str:
    """One line naming the problem, for failures no command anticipated."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return (
            f"cannot reach the database ({detail}); check --db / AGENTCTL_DB and that the "
            "server is running"
        )
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)"


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
    from agentctl.cli import (
        agents,
        audit,
        completions,
        db,
        demo,
        policy,
        report,
        serve,
        tail,
        trust,
        upstreams,
    )

    serve.register(app)
    app.add_typer(agents.app, name="agents")
    app.add_typer(audit.app, name="audit")
    app.add_typer(policy.app, name="policy")
    app.add_typer(trust.app, name="trust")
    app.add_typer(db.app, name="db")
    report.register(app)
    tail.register(app)
    demo.register(app)
    completions.register(app)
    upstreams.register(app)


_register()


def main() -> None:
    app(prog_name="agentctl")
