"""Change notifications: operator changes reach every gateway within a second.

The store is the truth and is always polled (`policy_poll_ms`, the backstop that needs
nothing but the database). With Redis counters, writers also PUBLISH the changed topic
on `<prefix>changes` right after their store commit, and each gateway's watcher wakes
on it instead of waiting out its poll interval. A lost message costs at most one poll
interval; a message never carries state, only "look again".

`announce` is the writers' one-line call (CLI: agents disable/enable, policy apply);
it is best effort and never fails the command, since the store write already happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from agentctl.config import Settings, load_settings

log = logging.getLogger("agentctl.changes")
CHANNEL = "changes"


def _target(settings: Settings) -> tuple[str, str] | None:
    """(redis URL, channel) when the counters are Redis, else None."""
    url = settings.counters
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        return None
    from agentctl.counters.redis import split_url

    target, prefix = split_url(url, settings.counters_options.prefix)
    return target, prefix + CHANNEL


def announce(topic: str, *, settings: Settings | None = None, config: Path | None = None) -> bool:
    """Tell running gateways that `topic` changed in the store. True when published."""
    try:
        settings = settings or load_settings(config=config)
        target = _target(settings)
        if target is None:
            return False
        import redis

        url, channel = target
        timeout = max(1.0, settings.counters_options.timeout_ms / 1000)
        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as r:
            r.publish(channel, topic)
        return True
    except Exception as exc:  # the gateways' poll picks the change up anyway
        log.warning(
            "could not announce the change (%s); gateways will see it on their next poll", exc
        )
        return False


class ChangeFeed:
    """A subscriber: `wait(timeout)` returns True early when a change is announced."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.received = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def for_settings(cls, settings: Settings) -> ChangeFeed | None:
        target = _target(settings)
        return None if target is None else cls(*target)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        failures = 0
        while not self._closing:
            client: Any = aioredis.Redis.from_url(self.url, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    failures = 0
                    self._event.set()  # (re)subscribed: anything may have been missed
                    while not self._closing:  # bounded reads: never rely on cancellation
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message.get("type") == "message":
                            self.received += 1
                            self._event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                failures += 1
                if failures == 1:
                    log.warning("change feed lost (%s); polling the store until it is back", exc)
                await asyncio.sleep(min(5.0, 0.25 * failures))
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def wait(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2)  # a stuck read must not stop shutdown
