"""`agentctl completions show SHELL`, and the CLI's generated artifacts.

Completion is typer's own mechanism: the shell script calls `agentctl` back with
`_AGENTCTL_COMPLETE=complete_<shell>`, so the scripts in `completions/` are small and
only change when typer changes; what they complete comes from the live app. The app is
built with `add_completion=False` (no `--install-completion` noise in every `--help`),
so `register()` switches typer's completion classes on itself.

The hidden `agentctl completions generate` rewrites `completions/*` and
`docs/cli-reference.md` (every command's `--help`); with `--check` it exits 1 when they
drift, and a test runs the same comparison.
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agentctl.cli import render

PROG = "agentctl"
COMPLETE_VAR = "_AGENTCTL_COMPLETE"
FILES = {"bash": "agentctl.bash", "zsh": "_agentctl", "fish": "agentctl.fish"}
ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("docs/cli-reference.md")
HELP_WIDTH = 100


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


app = typer.Typer(help="Shell completion scripts for bash, zsh and fish.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    from typer.completion import completion_init

    completion_init()
    root.add_typer(app, name="completions")


@app.command("show")
def show(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the completion script for SHELL (see README, "Shell completion")."""
    sys.stdout.write(script(shell.value))


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    text = get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)
    return text.strip() + "\n"


def complete_agent_names(incomplete: str) -> list[str]:
    """Agent names from the store, for `autocompletion=` on NAME and --agent parameters.

    Completion must never fail loudly: no store, no candidates."""
    try:
        from agentctl.cli.options import open_db

        names = [a.name for a in open_db(None, migrate=False).list_agents()]
    except Exception:
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def _commands(cmd: Any, ctx: Any) -> list[tuple[Any, Any]]:
    """Every command of the tree with its context, depth first, in registration order."""
    found = [(cmd, ctx)]
    names = cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []
    for name in names:  # list/get: the root group loads its command modules lazily
        sub = cmd.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        child = sub.context_class(
            sub, info_name=name, parent=ctx, terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
        )
        found += _commands(sub, child)
    return found


def reference() -> str:
    """docs/cli-reference.md: the `--help` of every command, as the CLI prints it."""
    from typer.main import get_command

    from agentctl.cli import app as root_app

    root = get_command(root_app)
    ctx = root.context_class(
        root, info_name=PROG, terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
    )
    parts = [
        "# Command reference\n",
        "Generated from `--help` by `agentctl completions generate`; "
        "a test fails when it drifts. Exit codes: 0 success, 1 the operation failed, "
        "2 usage error. Read commands take `--json`; `NO_COLOR` is honoured; "
        "`agentctl --debug COMMAND` shows tracebacks.\n",
    ]
    for cmd, cmd_ctx in _commands(root, ctx):
        parts.append(f"## `{cmd_ctx.command_path}`\n")
        parts.append("```text\n" + cmd.get_help(cmd_ctx).rstrip() + "\n```\n")
    return "\n".join(parts)


README = Path("README.md")
_START, _END = "<!-- commands:start -->", "<!-- commands:end -->"


def command_table() -> str:
    """The README's command table: every command with its usage and one-line help."""
    from typer.main import get_command

    from agentctl.cli import app as root_app

    root = get_command(root_app)
    ctx = root.context_class(root, info_name=PROG, terminal_width=HELP_WIDTH)
    lines = ["| command | what it does |", "| --- | --- |"]
    for cmd, cmd_ctx in _commands(root, ctx):
        if getattr(cmd, "commands", None) or cmd is root:
            continue
        usage = " ".join(cmd.collect_usage_pieces(cmd_ctx)).replace("[OPTIONS]", "[options]")
        usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), usage)
        help_line = cmd.get_short_help_str(limit=200).replace("|", "\\|")
        lines.append(f"| `{cmd_ctx.command_path} {usage}` | {help_line} |")
    return "\n".join(lines) + "\n"


def readme_with_table(text: str) -> str:
    head, start, rest = text.partition(_START)
    _, end, tail = rest.partition(_END)
    if not start or not end:
        return text
    return f"{head}{_START}\n{command_table()}{_END}{tail}"


def artifacts(root: Path = ROOT) -> dict[Path, str]:
    files = {Path("completions") / name: script(shell) for shell, name in FILES.items()}
    files[REFERENCE] = reference()
    current = _read(root / README)
    if current is not None and _START in current:
        files[README] = readme_with_table(current)
    return files


def drift(root: Path = ROOT) -> list[Path]:
    return [p for p, text in artifacts(root).items() if _read(root / p) != text]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@app.command("generate", hidden=True)
def generate(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 listing stale files instead of writing.")
    ] = False,
    root: Annotated[Path, typer.Option("--root", help="Repository root.")] = ROOT,
) -> None:
    """Rewrite completions/*, docs/cli-reference.md and the README command table."""
    if check:
        stale = drift(root)
        for path in stale:
            render.error(f"{path} is out of date; run `agentctl completions generate`")
        if stale:
            raise typer.Exit(1)
        return
    for path, text in artifacts(root).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
        render.info(f"wrote {path}")
