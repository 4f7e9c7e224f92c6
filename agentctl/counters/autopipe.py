"""`AutoPipeline`: counters calls that arrive while one is in flight go out together.

A busy gateway has many requests in flight, each awaiting its own counters call; sent
one by one, every call costs a send and a wake-up on both sides (most of the client's
CPU per call on loopback). Here at most one round trip per process is in flight: a
call that finds the line free goes out at once as a plain EVALSHA (no added latency
when idle); calls arriving meanwhile queue, and when the round trip returns they go
out together as one non-transactional pipeline. Each script is still atomic, and
queued calls were concurrent anyway, so their relative order never mattered. Batches
grow with load and round-trip time by themselves.

NOSCRIPT (a restarted or flushed Redis) is answered per call by redis-py's `Script`,
which loads the script and retries. A connection error fails every call of the batch
with that error; the caller maps it to `CountersUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


class AutoPipeline:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._queue: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy = False
        self.batches = 0
        self.calls = 0

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not self._busy:
            self._busy = True
            self.batches += 1
            self.calls += 1
            try:
                return await script(keys=list(keys), args=list(args))
            finally:
                self._busy = False
                self._next()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, list(keys), list(args), future))
        return await future

    def _next(self) -> None:
        batch = [item for item in self._queue if not item[3].done()]  # skip cancelled
        self._queue = []
        if not batch:
            return
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, batch: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]]
    ) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            if len(batch) == 1:
                script, keys, args, future = batch[0]
                await _settle(future, script(keys=keys, args=args))
                return
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for script, keys, args, _ in batch:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                for *_, future in batch:
                    _resolve(future, exc=exc)
                return
            for (script, keys, args, future), reply in zip(batch, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    await _settle(future, script(keys=keys, args=args))  # loads, then runs
                elif isinstance(reply, Exception):
                    _resolve(future, exc=reply)
                else:
                    _resolve(future, value=reply)
        finally:
            for *_, future in batch:  # never leave a caller waiting (e.g. cancelled send)
                if not future.done():
                    future.cancel()
            self._busy = False
            self._next()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _settle(future: asyncio.Future[Any], call: Any) -> None:
    try:
        value = await call
    except Exception as exc:
        _resolve(future, exc=exc)
    else:
        _resolve(future, value=value)


def _resolve(
    future: asyncio.Future[Any], *, value: Any = None, exc: Exception | None = None
) -> None:
    if future.done():  # the caller was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)
