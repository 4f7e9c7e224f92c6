"""`agentctl serve --workers N`: one parent, N forked gateway processes on one port.

- Each worker binds its own `SO_REUSEPORT` listening socket, so the kernel spreads
  connections across workers. The parent holds the port with a bound, non-listening
  socket (it resolves `--port 0` and keeps the port ours while workers restart) and
  never accepts a connection itself.
- Before forking, the parent checks the store (a PostgreSQL database with pending
  migrations stops here) and replays the audit journal once. Each worker writes its
  own journal segments (named by pid, flock-ed by it); a worker that dies is replaced,
  and the replacement's start-up replay recovers the dead worker's segments.
- N > 1 needs shared counters: with `memory://` every worker would enforce its own copy
  of each limit (N times every rate limit and budget), so that is refused.
- SIGTERM/SIGINT to the parent is forwarded to every worker; each drains its in-flight
  requests (`limits.drain_seconds`) and flushes its recorder; the parent exits 0 when
  all of them did (a worker still alive 15 s after the drain time is killed: exit 1).
  A worker that fails before it is ready stops the whole start.
- SIGHUP to the parent is forwarded to every worker; each re-reads the config and the
  active policy (`gateway.reload`). The parent re-reads the config too, by the same
  rule (`reload.merge`), so a worker started later (a replacement) runs what the
  others run; a config that no longer loads leaves the parent's copy as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

from agentctl.config import Settings
from agentctl.errors import CliError, ConfigError
from agentctl.gateway import eventloop
from agentctl.gateway.reload import merge
from agentctl.gateway.server import bind_socket, serve
from agentctl.store.recorder import replay
from agentctl.store.sql import Store

Reload = Callable[[], Settings] | None
log = logging.getLogger("agentctl.workers")
RESPAWN_WINDOW = 30.0  # seconds; more than N respawns within it means a crash loop
KILL_GRACE = 15.0  # seconds past limits.drain_seconds before a stuck worker is killed


def check_workers(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})", exit_code=2)
    if workers > 1 and settings.counters.lower().startswith("memory"):
        raise ConfigError(
            f"--workers {workers} with memory:// counters would give each worker its own "
            f"copy of every rate limit and budget ({workers}x the configured limits); share "
            "them with --counters redis://HOST:6379/0 (or `counters:` in agentctl.yaml), "
            "or run one worker"
        )


def hold_port(host: str, port: int) -> socket.socket:
    """Reserve host:port for the workers: bound with SO_REUSEPORT, never listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                raise ConfigError(
                    f"port {port} on {host} is already in use; stop the other process or "
                    "pass --port N"
                )
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def prepare(settings: Settings) -> None:
    """Once, in the parent: the store must be ready; dead processes' journals replayed."""
    store = Store(settings.database)
    try:
        store.ensure_ready()
        if settings.audit.journal:
            recovered, interrupted = replay(store, settings.journal_path)
            if recovered:
                log.warning(
                    "recovered %d audit record(s) from the journal (%d interrupted)",
                    recovered,
                    interrupted,
                )
    finally:
        store.close()  # no pooled connection may cross the fork


def _worker(settings: Settings, ready_fd: int, reload: Reload) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # serve() installs its own loop handlers
    try:
        sock = bind_socket(settings.host, settings.port, reuse_port=True)

        def ready(_url: str) -> None:
            os.write(ready_fd, b"1")

        eventloop.run(serve(settings, sock=sock, on_ready=ready, reload=reload))
        return 0
    except CliError as exc:
        log.error("worker %d: %s", os.getpid(), exc.message)
    except KeyboardInterrupt:
        return 0
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    return 1


def _spawn(
    settings: Settings, ready_fd: int, inherited: tuple[int, ...], reload: Reload = None
) -> int:
    pid = os.fork()
    if pid == 0:  # the child never returns into the parent's code
        code = 1
        try:
            for fd in inherited:
                os.close(fd)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serve() installs its own
            code = _worker(settings, ready_fd, reload)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def run_workers(
    settings: Settings,
    workers: int,
    *,
    on_ready: Callable[[str], None],
    reload: Reload = None,
) -> int:
    """Supervise `workers` gateway processes until SIGTERM/SIGINT; return the exit code."""
    check_workers(settings, workers)
    holder = hold_port(settings.host, settings.port)
    settings = settings.model_copy(update={"port": holder.getsockname()[1]})
    prepare(settings)
    stop: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stop.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    hangups: list[int] = []
    previous[signal.SIGHUP] = signal.signal(
        signal.SIGHUP, lambda signum, _frame: hangups.append(signum)
    )
    ready_r, ready_w = os.pipe()
    inherited = (ready_r, holder.fileno())
    children = {_spawn(settings, ready_w, inherited, reload): n for n in range(workers)}
    ready, code, forwarded, announced = 0, 0, False, False
    deadline = float("inf")
    respawns: list[float] = []
    try:
        while children:
            if hangups and not stop:
                hangups.clear()
                for pid in children:
                    _kill(pid, signal.SIGHUP)
                settings = _reloaded(settings, reload)
            if stop and not forwarded:
                forwarded = True
                deadline = time.monotonic() + settings.limits.drain_seconds + KILL_GRACE
                log.info("stopping %d worker(s): draining in-flight requests", len(children))
                for pid in children:
                    _kill(pid, signal.SIGTERM)
            if forwarded and time.monotonic() > deadline:
                log.error("%d worker(s) did not stop after draining; killing them", len(children))
                for pid in children:
                    _kill(pid, signal.SIGKILL)
                deadline, code = float("inf"), 1
            readable, _, _ = select.select([ready_r], [], [], 0.1)
            if readable:
                ready += len(os.read(ready_r, 64))
                if ready >= workers and not announced:
                    announced = True
                    on_ready(f"http://{settings.host}:{settings.port}")
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid not in children:
                    continue
                children.pop(pid)
                exit_code = os.waitstatus_to_exitcode(status)
                if stop:
                    code = code or (exit_code if exit_code > 0 else 0)
                    continue
                now = time.monotonic()
                respawns = [t for t in respawns if now - t < RESPAWN_WINDOW] + [now]
                if not announced or len(respawns) > workers:
                    log.error("worker %d exited (%s); stopping all workers", pid, exit_code)
                    stop.append(signal.SIGTERM)
                    code = 1
                    continue
                log.error("worker %d exited (%s); starting a replacement", pid, exit_code)
                children[_spawn(settings, ready_w, inherited, reload)] = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for fd in (ready_r, ready_w):
            os.close(fd)
        holder.close()
    return code


def _reloaded(settings: Settings, reload: Reload) -> Settings:
    """The parent's copy after SIGHUP, for replacement workers (the port stays ours)."""
    if reload is None:
        return settings
    try:
        merged, _ = merge(settings, reload())
    except Exception as exc:  # the workers log the details of a config that fails
        log.error("config reload failed in the parent, keeping its copy: %s", exc)
        return settings
    return merged


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, sig)
