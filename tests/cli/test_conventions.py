"""CLI conventions, checked over every command the app has (new commands included):
read commands take `--json`; exit codes are 0 success, 1 operation failed, 2 usage
error; errors name the problem without a traceback (`--debug` shows it); `NO_COLOR`
is honoured; `--json` output is one clean JSON document on stdout."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from agentctl.cli import app
from tests.procs import agentctl

runner = CliRunner()
ROOT_CMD = get_command(app)

# Commands that need no --json, and why. A new command must either take --json or be
# added here with its reason.
NO_JSON = {
    "init": "writes a file",
    "serve": "runs the gateway",
    "demo": "an interactive show",
    "completions show": "prints a shell script",
    "audit export": "--format chooses the output format (jsonl)",
    "policy schema": "always prints a JSON Schema",
}
COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|38;)[0-9;]*m")


def tree(cmd: Any = ROOT_CMD, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, cmd)]
    if hasattr(cmd, "list_commands"):  # the root loads its command modules lazily
        ctx = cmd.context_class(cmd, info_name="agentctl")
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if not sub.hidden:
                found += tree(sub, (*path, name))
    return found


LEAVES = {" ".join(p): c for p, c in tree() if not hasattr(c, "commands")}
GROUPS = {" ".join(p): c for p, c in tree() if hasattr(c, "commands") and p}


def invoke(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    # An exception the CLI did not turn into a message is a traceback for a real user.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback for {args}: {result.exception!r}") from result.exception
    return result


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_read_commands_take_json(name: str) -> None:
    options = {opt for p in LEAVES[name].params for opt in getattr(p, "opts", [])}
    assert "--json" in options or name in NO_JSON, (
        f"`agentctl {name}` has no --json: add it, or list it in NO_JSON with the reason"
    )
    assert set(NO_JSON) <= set(LEAVES), "NO_JSON names a command that no longer exists"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_unknown_option_is_a_usage_error(name: str) -> None:
    result = invoke([*name.split(), "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_without_a_command_prints_usage(name: str) -> None:
    result = invoke(name.split())
    assert result.exit_code == 2 and "Usage:" in result.output


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_command_has_help(name: str) -> None:
    result = invoke([*name.split(), "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage: ")
    assert LEAVES[name].help, f"`agentctl {name}` has no docstring"


# (arguments, exit code, a fragment of the message naming the problem or the fix)
BAD_INPUT = [
    ("report --since garbage", 2, "cannot read time"),
    ("report --tz Mars/Base", 2, "IANA"),
    ("report --format xml", 2, "unknown format"),
    ("report --group-by nope", 2, "cannot group by"),
    ("report --db foo://bar", 1, "sqlite:///PATH"),
    ("tail --interval abc", 2, "--interval"),
    ("tail --once --tz Mars/X", 2, "IANA"),
    ("agents register BAD --owner team --purpose production", 2, "invalid name"),
    ("agents disable some-bot --reason ''", 2, "--reason must not be empty"),
    ("agents list --db foo://bar", 1, "unsupported database URL"),
    ("audit verify --since garbage", 2, "cannot read time"),
    ("audit prune --before garbage --reason r", 2, "YYYY-MM-DD"),
    ("policy validate {missing}", 2, "no such file"),
    ("policy validate {file}", 1, "must be a mapping"),
    ("serve --config {missing}", 1, "agentctl init"),
    ("serve --workers 0 --upstream http://127.0.0.1:9/v1", 2, "--workers"),
    ("db status --db foo://bar", 1, "unsupported database URL"),
    ("completions show tcsh", 2, "bash"),
]
# Regressions: each was a traceback or a silently accepted value once.
FIXED = [
    ("init --home {file}/sub", 1, "home"),
    ("serve --port 99999 --upstream http://127.0.0.1:9/v1", 2, "port"),
    ("serve --log-format xml --port 8080 --upstream http://127.0.0.1:9/v1", 2, "--log-format"),
    ("agents list --db postgresql://agentctl@127.0.0.1:1/none", 1, "database"),
]


@pytest.mark.parametrize(("args", "code", "fragment"), BAD_INPUT + FIXED)
def test_bad_input_names_the_problem(
    args: str, code: int, fragment: str, home: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("just text\n")
    argv = shlex.split(args.format(missing=tmp_path / "missing.yaml", file=plain))
    result = invoke(argv)
    assert result.exit_code == code, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_real_process_errors_without_traceback_unless_debug(home: Path) -> None:
    plain = agentctl("report", "--since", "garbage")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("error: cannot read time")
    debug = agentctl("--debug", "report", "--since", "garbage")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_no_color_is_honoured_and_json_stays_clean(home: Path) -> None:
    coloured = agentctl("report", "--since", "garbage", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert COLOUR.search(coloured.stderr), "FORCE_COLOR should colour the error"
    plain = agentctl("report", "--since", "garbage", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert not COLOUR.search(plain.stderr)
    listed = agentctl("agents", "list", "--json", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    failed = agentctl("report", "--json", "--since", "garbage", env={"FORCE_COLOR": "1"})
    assert failed.returncode == 2 and failed.stdout == "" and "error:" in failed.stderr


def test_a_command_loads_only_its_own_module() -> None:
    """`agentctl agents ...` at 2 a.m. must not pay for the gateway, the simulator or
    the report code: command modules load lazily (agentctl/cli/__init__.py)."""
    probe = (
        "import sys, atexit\n"
        "heavy = ('aiohttp', 'agentctl.gateway.app', 'agentctl.simulator', 'httpx', "
        "'agentctl.cli.report', 'agentctl.cli.serve')\n"
        "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules)))\n"
        "sys.argv = ['agentctl', 'agents', 'list', '--help']\n"
        "from agentctl.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "agentctl agents list" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_mistyped_command_gets_a_suggestion() -> None:
    """Regression: with lazily loaded modules typer only suggested `completions`."""
    done = subprocess.run(  # a fresh process: here every module is loaded already
        [sys.executable, "-m", "agentctl", "agnets", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "No such command 'agnets'. Did you mean 'agents'?" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["agents", "list"],
        ["agents", "show", "bot"],
        ["audit", "verify"],
        ["audit", "export"],
        ["report"],
        ["tail", "--once"],
        ["policy", "show"],
        ["trust", "explain", "bot"],
    ],
    ids=" ".join,
)
def test_read_command_on_a_mistyped_db_path_fails_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    """Regression: `agents list --db sqlite:////wrong/a.db` created the directory and an
    empty database, then showed an empty table with exit 0."""
    missing = tmp_path / "no-such-dir" / "agentctl.db"
    result = invoke([*args, "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 1, result.output
    assert f"no agentctl database at {missing}" in result.output
    assert not missing.parent.exists()


@pytest.mark.parametrize("args", [["report"], ["agents", "list"]], ids=" ".join)
def test_a_file_that_is_not_a_database_is_named_with_a_fix(tmp_path: Path, args: list[str]) -> None:
    """Regression: a garbage file given as --db printed SQLAlchemy's error text with a
    link, and nothing about what to do."""
    garbage = tmp_path / "g.db"
    garbage.write_text("garbage\n" * 200)
    result = invoke([*args, "--db", f"sqlite:///{garbage}"])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "the database is not an agentctl database or is damaged" in out
    assert "file is not a database" in out and "--db / AGENTCTL_DB" in out
    assert "sqlalche.me" not in out and "Traceback" not in out
