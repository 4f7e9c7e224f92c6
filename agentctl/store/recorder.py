"""The single audit writer: a journal on the request path, batched inserts off it.

Durability contract (docs/decisions.md, "Audit durability"):
- Before a request is forwarded upstream, a `begin` line (request id, identity,
  reserved estimate) is appended to the journal; when the request ends, an `end`
  line with the full record. Appends are single `os.write` calls on an O_APPEND
  file: they survive SIGKILL (the page cache belongs to the kernel), not power loss
  unless `audit.fsync` is on.
- A background thread drains an in-memory queue into the store in batches (one
  transaction per batch), so no request waits on the database and SQLite has one
  writer. If the store is unavailable the thread retries; the journal keeps every
  row meanwhile.
- At start, journal segments left by dead processes (not flock-ed) are replayed:
  `end` lines become records, `begin` lines without an `end` become `interrupted`
  records with their reserved estimate. Inserts are idempotent by request id.
- Segments rotate by size; a closed segment is deleted once every request that began
  in it has ended and every row written to it has been committed.
- A journal write that fails (disk full, I/O error) raises from `begin` (the gateway
  then refuses or serves per `audit.on_journal_failure`) but never from `record`: the
  row still goes to the store, only its crash safety is lost. `journal_failing` holds
  the last error until a write succeeds again; a torn partial line is ended first.
- A row the store refuses for good (not a lock or a lost connection: those are
  retried) must not block the rows behind it: a failing batch is retried row by row
  and a row that still fails is set aside in `rejected.jsonl` beside the journal,
  with an error in the log. The writer and the replay at start both do this, so one
  odd row can neither stall auditing nor stop the gateway from starting.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

from agentctl.codec import dumps_line
from agentctl.store.sql import Store

log = logging.getLogger("agentctl.recorder")

SEGMENT_BYTES = 8 * 1024 * 1024
REJECTED = "rejected.jsonl"
_STOP = object()


def transient(exc: Exception) -> bool:
    """Worth retrying: the store is locked, restarting or unreachable. Anything else is
    the row's fault and is isolated (see the module docstring)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError | sa_exc.TimeoutError | OSError)


def append_isolating(
    store: Store, rows: list[dict[str, Any]], reject: Callable[[dict[str, Any], Exception], None]
) -> int:
    """`store.append_records(rows)`; on a non-transient failure, row by row."""
    try:
        return store.append_records(rows)
    except Exception as exc:
        if transient(exc):
            raise
        if len(rows) == 1:
            clamped = clamp_integers(rows[0])
            if clamped is not None:  # an absurd number must not cost the record itself
                try:
                    return store.append_records([clamped])
                except Exception as again:
                    if transient(again):
                        raise
                    exc = again
            reject(rows[0], exc)
            return 0
        return sum(append_isolating(store, [row], reject) for row in rows)


INT64 = (-(2**63), 2**63 - 1)


def clamp_integers(row: dict[str, Any]) -> dict[str, Any] | None:
    """`row` with integers beyond the store's 64-bit columns clamped to the range and the
    fields named in its message; None when there is none (the failure was something else).
    An upstream reporting 10**30 tokens is then audited with the limit, not set aside."""
    low, high = INT64
    over = [k for k, v in row.items() if type(v) is int and not low <= v <= high and k != "id"]
    if not over:
        return None
    fixed = {k: (max(low, min(high, v)) if k in over else v) for k, v in row.items()}
    note = f"values beyond 64 bits clamped: {', '.join(sorted(over))}"
    fixed["message"] = f"{row['message']}; {note}" if row.get("message") else note
    return fixed


def rejecter(directory: Path | None) -> Callable[[dict[str, Any], Exception], None]:
    def reject(row: dict[str, Any], exc: Exception) -> None:
        line = json.dumps({"error": repr(exc)[:500], "row": row}, default=str)
        log.error(
            "audit record %s refused by the store (%s); kept in %s",
            row.get("request_id"),
            exc,
            directory / REJECTED if directory else "this log line: " + line,
        )
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(directory / REJECTED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    return reject


class _Segment:
    __slots__ = ("closed", "fd", "open_begins", "path", "size", "uncommitted")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0
        self.open_begins: set[str] = set()
        self.uncommitted = 0
        self.closed = False


class Journal:
    """Append-only, segment-rotated, flock-ed by its owning process."""

    def __init__(self, directory: Path, *, fsync: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self._fsync = fsync
        self._lock = threading.Lock()
        self._seq = 0
        self._torn = False
        self._prefix = f"seg-{os.getpid()}-{time.time_ns()}"
        self._begun: dict[str, _Segment] = {}
        self._segments: list[_Segment] = []
        self._current = self._open_segment()

    def _open_segment(self) -> _Segment:
        self._seq += 1
        seg = _Segment(self.directory / f"{self._prefix}-{self._seq:06d}.jsonl")
        self._segments.append(seg)
        return seg

    def _write(self, line: bytes) -> _Segment:
        seg = self._current
        view = memoryview(b"\n" + line if self._torn else line)
        self._torn = True  # until the whole line is down
        while view:  # a regular file takes it all in one call, barring a signal or ENOSPC
            view = view[os.write(seg.fd, view) :]
        self._torn = False
        if self._fsync:
            os.fsync(seg.fd)
        seg.size += len(line)
        if seg.size >= SEGMENT_BYTES:
            seg.closed = True
            self._current = self._open_segment()
            self._collect()
        return seg

    def begin(self, row: Mapping[str, Any]) -> None:
        line = dumps_line({"t": "b", **row}) + b"\n"
        with self._lock:
            seg = self._write(line)
            seg.open_begins.add(row["request_id"])
            self._begun[row["request_id"]] = seg

    def end(self, row: Mapping[str, Any]) -> _Segment:
        line = dumps_line({"t": "e", **row}) + b"\n"
        with self._lock:
            seg = self._write(line)
            seg.uncommitted += 1
            started = self._begun.pop(row["request_id"], None)
            if started is not None:
                started.open_begins.discard(row["request_id"])
            return seg

    def committed(self, segments: list[_Segment]) -> None:
        with self._lock:
            for seg in segments:
                seg.uncommitted -= 1
            self._collect()

    def _collect(self) -> None:
        keep = []
        for seg in self._segments:
            if seg.closed and not seg.open_begins and seg.uncommitted == 0:
                os.close(seg.fd)
                seg.path.unlink(missing_ok=True)
            else:
                keep.append(seg)
        self._segments = keep

    def close(self) -> None:
        """Called after everything is committed: remove this process's segments."""
        with self._lock:
            for seg in self._segments:
                seg.closed = True
            self._collect()
            for seg in self._segments:  # still holding unfinished work: keep for replay
                os.close(seg.fd)
            self._segments = []


def replay(store: Store, directory: Path) -> tuple[int, int]:
    """Recover segments of dead processes. Returns (records inserted, interrupted)."""
    if not directory.exists():
        return 0, 0
    begins: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[str, Any]] = {}
    claimed: list[tuple[int, Path]] = []
    try:
        for path in sorted(directory.glob("seg-*.jsonl")):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process owns it
                continue
            claimed.append((fd, path))
            with open(path, "rb") as fh:
                for raw in fh:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue  # a torn last line from the crash
                    if not isinstance(entry, dict) or not entry.get("request_id"):
                        continue
                    kind = entry.pop("t", None)
                    (ends if kind == "e" else begins)[entry["request_id"]] = entry
        rows = list(ends.values())
        interrupted = 0
        for rid, begin in begins.items():
            if rid not in ends:
                begin.update(outcome="interrupted", usage_source="estimated")
                begin.setdefault("message", "gateway stopped before the request finished")
                rows.append(begin)
                interrupted += 1
        recovered = append_isolating(store, rows, rejecter(directory)) if rows else 0
        for _, path in claimed:
            path.unlink(missing_ok=True)
        return recovered, interrupted
    finally:
        for fd, _ in claimed:
            os.close(fd)


class Recorder:
    """Queue + one writer thread. `record()` is cheap and never blocks on the store."""

    def __init__(
        self,
        store: Store,
        *,
        journal: Journal | None,
        flush_interval: float = 0.1,
        batch_size: int = 500,
        on_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="agentctl-recorder", daemon=True)
        # Each counter is written by one thread only: `submitted` by the event loop,
        # `committed` by the writer, so `pending` needs no lock.
        self.submitted = 0
        self.committed = 0
        self.failures = 0
        self.journal_failing: OSError | None = None

    def start(self) -> None:
        self._thread.start()

    def begin(self, row: Mapping[str, Any]) -> None:
        if self.journal is not None:
            self.journal.begin(row)
            self._journal_ok()

    def record(self, row: dict[str, Any]) -> None:
        seg = None
        if self.journal is not None:
            try:
                seg = self.journal.end(row)
            except OSError as exc:  # the row still reaches the store, without the journal
                if self.journal_failing is None:
                    log.error("audit journal write failed (%s); records go to the store only", exc)
                self.journal_failing = exc
            else:
                self._journal_ok()
        self.submitted += 1
        self._queue.put((row, seg))

    def _journal_ok(self) -> None:
        if self.journal_failing is not None:
            self.journal_failing = None
            log.warning("audit journal writable again")

    @property
    def pending(self) -> int:
        return self.submitted - self.committed

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted row is committed (tests, shutdown, CLI demo)."""
        deadline = time.monotonic() + timeout
        while self.pending > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self.journal is not None and not self._thread.is_alive():
            self.journal.close()

    def _run(self) -> None:
        stopping = full = False
        while not stopping:
            batch: list[tuple[dict[str, Any], Any]] = []
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is not _STOP and not full and self.flush_interval > 0:
                # Let the batch gather while asleep: a thread blocked in `get` would be
                # woken by every `record()`, a GIL hand-off on the event loop's path.
                time.sleep(self.flush_interval)
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            full = len(batch) >= self.batch_size  # more waiting: no pause before the next
            if batch:
                self._commit(batch, final=stopping)

    def _commit(self, batch: list[tuple[dict[str, Any], Any]], *, final: bool) -> None:
        rows = [row for row, _ in batch]
        delay = 0.05
        reject = rejecter(self.journal.directory if self.journal is not None else None)
        while True:
            try:
                append_isolating(self.store, rows, reject)
                break
            except Exception as exc:  # the store is locked or unreachable: keep trying
                self.failures += 1
                log.warning("audit store write failed (%s); retrying, journal keeps rows", exc)
                if final and delay > 2:
                    return  # shutting down: the journal is replayed at next start
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.committed += len(rows)
        if self.journal is not None:
            self.journal.committed([seg for _, seg in batch if seg is not None])
        if self.on_commit is not None:
            try:
                self.on_commit(rows)
            except Exception:  # observers must never stop the writer
                log.exception("audit commit observer failed")
