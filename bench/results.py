"""Markdown tables, and `bench/RESULTS.md` as sections owned by one script each.

Each script (`run`, `micro`, `grow`) replaces only the text between its own markers
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, so running one never erases what
another wrote, and hand-written analysis outside the markers survives.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servers import BENCH, machine

RESULTS = BENCH / "RESULTS.md"
TITLE = "# agentctl benchmark results\n\nWritten by the `bench/` scripts; see bench/README.md.\n"


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(out)


def plain(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table aligned for a terminal."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


OUTPUT_ONLY = ("--json", "--raw")  # where extra copies go; they change no measurement


def reproducible(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OUTPUT_ONLY:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in OUTPUT_ONLY)):
            out.append(arg)
    return out


def header(title: str, argv: Sequence[str] | None = None) -> str:
    args = reproducible(argv if argv is not None else sys.argv[1:])
    command = "python " + " ".join(["bench/" + Path(sys.argv[0]).name, *args])
    info = machine()
    lines = [
        f"## {title}",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  ",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    return "\n".join(lines)


def demote(markdown: str) -> str:
    """Headings one level down: a script's own document becomes a section of RESULTS.md."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.M)


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text if text.endswith("\n") else text + "\n")
