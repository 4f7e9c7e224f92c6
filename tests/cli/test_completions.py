"""Shell completion and the command reference: generated artifacts that must not drift,
and real bash, zsh and fish shells completing `agentctl <TAB>`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.cli.completions import FILES, REFERENCE, ROOT, artifacts, complete_agent_names
from agentctl.store.sql import Store

runner = CliRunner()
BIN = Path(sys.executable).parent
FIX = "regenerate with `agentctl completions generate` and commit the result"


@pytest.mark.parametrize("path", [Path("completions") / n for n in FILES.values()] + [REFERENCE])
def test_generated_file_matches_the_app(path: Path) -> None:
    expected = artifacts()[path]
    actual = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).exists() else None
    assert actual == expected, f"{path} is out of date: {FIX}"


def test_generate_check_reports_drift(tmp_path: Path) -> None:
    stale = runner.invoke(app, ["completions", "generate", "--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1 and "out of date" in stale.output
    wrote = runner.invoke(app, ["completions", "generate", "--root", str(tmp_path)])
    assert wrote.exit_code == 0, wrote.output
    fresh = runner.invoke(app, ["completions", "generate", "--check", "--root", str(tmp_path)])
    assert fresh.exit_code == 0, fresh.output


@pytest.mark.parametrize("shell", sorted(FILES))
def test_show_prints_the_shipped_script(shell: str) -> None:
    result = runner.invoke(app, ["completions", "show", shell])
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "completions" / FILES[shell]).read_text(encoding="utf-8")


def test_show_rejects_an_unknown_shell() -> None:
    result = runner.invoke(app, ["completions", "show", "tcsh"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def run_shell(shell: str, script: str, home: Path) -> str:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    if not (BIN / "agentctl").exists():
        pytest.skip("the agentctl console script is not installed (pip install -e .)")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    args = [shell, "-f", "-c", script] if shell == "zsh" else [shell, "-c", script]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completes_commands_and_choices(home: Path) -> None:
    script = """
        source completions/agentctl.bash
        COMP_WORDS=(agentctl ag); COMP_CWORD=1; _agentctl_completion agentctl
        printf '%s\\n' "${COMPREPLY[@]}"
        COMP_WORDS=(agentctl completions show ''); COMP_CWORD=3; _agentctl_completion agentctl
        printf '%s\\n' "${COMPREPLY[@]}"
    """
    out = run_shell("bash", f"cd {ROOT} && {script}", home)
    assert out.split() == ["agents", "bash", "zsh", "fish"]


def test_zsh_registers_and_completes(home: Path) -> None:
    script = f"""
        autoload -Uz compinit && compinit -u -D
        source {ROOT}/completions/_agentctl
        print -r -- "registered $_comps[agentctl]"
        _arguments() {{ print -r -- "$@" }}   # zsh's completion builtin, stubbed to show its input
        words=(agentctl agents d); CURRENT=3; _agentctl_completion
    """
    out = run_shell("zsh", script, home)
    assert "registered _agentctl_completion" in out
    assert '"disable":' in out and '"register":' not in out


def test_fish_completes(home: Path) -> None:
    script = f"source {ROOT}/completions/agentctl.fish; complete -C 'agentctl rep'"
    out = run_shell("fish", script, home)
    assert out.splitlines()[0].split("\t")[0] == "report"


def test_agent_names_complete_from_the_store(home: Path) -> None:
    assert complete_agent_names("") == []  # no store yet: nothing, and no error
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    store.ensure_ready()
    for name in ("billing-bot", "batch-digest", "recs"):
        store.register_agent(name, "team-a", "production", actor="t", reason=None)
    store.close()
    assert complete_agent_names("b") == ["batch-digest", "billing-bot"]

    demo = typer.Typer()

    @demo.command()
    def show(name: Annotated[str, typer.Argument(autocompletion=complete_agent_names)]) -> None:
        """Stand-in for a command taking an agent NAME."""

    env = {"_DEMO_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "demo bi"}
    result = runner.invoke(demo, [], prog_name="demo", env=env)
    assert "billing-bot" in result.output and "recs" not in result.output
