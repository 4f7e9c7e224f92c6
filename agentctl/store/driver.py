"""Plain SQL for the audit appender's hot statements, run by the driver itself.

Every audit batch runs the same few statements (chain head, duplicate check, insert,
anchor, rollup upserts). Through SQLAlchemy Core each one is rebuilt, cache-keyed and
its parameters processed per row in Python: about 5 ms a batch and 30 µs a row on the
writer thread. Written once as text and run with `Connection.exec_driver_sql` (a list of
tuples becomes the driver's `executemany`), they cost a fraction of that, and driver
errors still arrive wrapped in SQLAlchemy's exceptions, which the recorder's
retry-or-isolate rule reads.

The text is the common subset of SQLite (3.24+) and PostgreSQL: double-quoted
identifiers, `INSERT ... ON CONFLICT ... DO UPDATE`, `?` markers (turned into `%s` for
drivers with the format paramstyle). Values must be what both drivers take as they
are: str, int, float, bool and None, which is all an audit row holds.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.engine import Connection


def sql(conn: Connection, text: str) -> str:
    """`text` with the connection's parameter markers."""
    return _convert(text, conn.dialect.paramstyle)


@lru_cache(maxsize=256)
def _convert(text: str, paramstyle: str) -> str:
    if paramstyle == "qmark":
        return text
    if paramstyle in ("format", "pyformat"):
        return text.replace("?", "%s")
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


def markers(n: int) -> str:
    return ", ".join("?" * n)


def names(columns: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
