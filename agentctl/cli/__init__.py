"""The `agentctl` command. Each command group lives in its own module; this one only
assembles them and turns operator errors into a message and an exit code:
0 success, 1 operation failed, 2 usage error (typer), 130 interrupted."""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from agentctl.errors import CliError

# Every command and the module defining it, in `--help` order. A module is imported only
# when one of its commands is looked up: `agentctl agents disable` does not load the
# gateway, and `agentctl serve` does not load report, tail, demo or upstreams (start-up
# time and resident memory, issue 8). `completions` stays eager: shell completion needs
# its `completion_init()` before any command is looked up.
_COMMANDS = {
    "init": "serve",
    "serve": "serve",
    "report": "report",
    "tail": "tail",
    "demo": "demo",
    "upstreams": "upstreams",
    "agents": "agents",
    "audit": "audit",
    "policy": "policy",
    "trust": "trust",
    "db": "db",
    "completions": "completions",
}
_GROUPS = frozenset({"agents", "audit", "policy", "trust", "db"})  # modules with a sub-`app`
_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}


def _load(module_name: str) -> dict[str, Any]:
    """The click commands one CLI module defines."""
    module = importlib.import_module(f"agentctl.cli.{module_name}")
    holder = typer.Typer(**_SETTINGS)
    if module_name in _GROUPS:
        holder.add_typer(module.app, name=module_name)
    else:
        module.register(holder)
    return dict(typer.main.get_group(holder).commands)


class _Group(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            # An unknown name (a typo) loads every module: typer suggests from `commands`.
            wanted = [_COMMANDS[cmd_name]] if cmd_name in _COMMANDS else set(_COMMANDS.values())
            for module_name in wanted:
                self.commands.update(_load(module_name))
        return self.commands.get(cmd_name)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            from agentctl.cli import render

            if ctx.params.get("debug"):
                render.err_console.print(traceback.format_exc(), markup=False)
            render.error(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print(file=sys.stderr)  # end the line the ^C was echoed on
            raise typer.Exit(130) from None  # 128 + SIGINT, as a shell reports it
        except (typer.Exit, typer.Abort, TyperException):
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
    if isinstance(exc, sqlalchemy.exc.DatabaseError):  # opened, but not ours or damaged
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return (
            f"the database is not an agentctl database or is damaged ({detail}); check "
            "--db / AGENTCTL_DB, or run `agentctl db status` on it"
        )
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)"


app = typer.Typer(
    cls=_Group,
    name="agentctl",
    help="agentctl: an agent-native AI gateway. Per-agent identity, policy, audit and trust.",
    no_args_is_help=True,
    **_SETTINGS,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """agentctl: an agent-native AI gateway. Per-agent identity, policy, audit and trust."""


def _register() -> None:
    from agentctl.cli import completions

    completions.register(app)


_register()


def main() -> None:
    app(prog_name="agentctl")
