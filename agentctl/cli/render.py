"""The one place the CLI prints. Human output through rich (NO_COLOR honoured by rich);
`--json` output as one plain JSON document on stdout; errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# rich is imported at the first styled print, not with the CLI: `agentctl serve` prints
# one plain line and would otherwise carry rich's ~2 MB and ~30 ms of imports for good.
_consoles: dict[str, Console] = {}


def _console(name: str) -> Console:
    made = _consoles.get(name)
    if made is None:
        from rich.console import Console

        made = _consoles[name] = Console(stderr=name == "err_console")
        if name == "console" and not made.is_terminal:
            # Piped output is read by people later (CI logs, files): don't squeeze it into 80.
            made.width = max(made.width, 160)
    return made


def __getattr__(name: str) -> Any:  # `render.console`, `render.err_console`
    if name in ("console", "err_console"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def did_you_mean(value: str, names: Iterable[str]) -> str:
    """'; did you mean 'a', 'b'?' naming up to three close matches of `value`, or ''."""
    import difflib

    close = difflib.get_close_matches(value, sorted(names), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def error(message: str) -> None:
    from rich.markup import escape

    # The message is plain text: `agentctl[postgres]` must not be read as a markup tag.
    _console("err_console").print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )


def warn(message: str) -> None:
    _console("err_console").print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    _console("err_console").print(message, highlight=False, soft_wrap=True)


def plain(message: str) -> None:
    """One unstyled line on stderr, without loading rich (the gateway's start-up line)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def out(message: str) -> None:
    _console("console").print(message, highlight=False, soft_wrap=True)


def lines(text: str) -> None:
    """Text without markup, written as is: what `out` prints for it, without rich's cost
    per line (tens of µs), which a 100,000-line dry run would feel."""
    stream = _console("console").file
    stream.write(text + "\n")
    stream.flush()


def block(title: str, body: str) -> None:
    """A bold title over plain lines (`lines`); the title is styled only where styles show."""
    if _console("console").is_terminal:
        out(f"[bold]{title}[/]")
    else:
        _console("console").file.write(title + "\n")
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
    from rich.table import Table

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
    _console("console").print(renderable)
