"""The one place the CLI prints. Human output through rich (NO_COLOR honoured by rich);
`--json` output as one plain JSON document on stdout; errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)
if not console.is_terminal:
    # Piped output is read by people later (CI logs, files): don't squeeze it into 80.
    console.width = max(console.width, 160)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    # The message is plain text: `agentctl[postgres]` must not be read as a markup tag.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


def out(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def lines(text: str) -> None:
    """Text without markup, written as is: what `out` prints for it, without rich's cost
    per line (tens of µs), which a 100,000-line dry run would feel."""
    console.file.write(text + "\n")
    console.file.flush()


def block(title: str, body: str) -> None:
    """A bold title over plain lines (`lines`); the title is styled only where styles show."""
    if console.is_terminal:
        out(f"[bold]{title}[/]")
    else:
        console.file.write(title + "\n")
    lines(body)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    right: Iterable[str] = (),
    keep: Iterable[str] = ("agent",),
) -> Table:
    """A table; columns in `keep` are never truncated (names matter more than widths)."""
    right_cols, keep_cols = set(right), set(keep)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    tbl = Table(title=title, header_style="bold", expand=False)
    for i, col in enumerate(columns):
        widest = max([len(col), *(len(r[i]) for r in cells if i < len(r))])
        tbl.add_column(
            col,
            justify="right" if col in right_cols else "left",
            no_wrap=col in keep_cols,
            min_width=widest if col in keep_cols else None,
        )
    for row in cells:
        tbl.add_row(*row)
    return tbl


def show(renderable: Any) -> None:
    console.print(renderable)
