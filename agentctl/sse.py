"""Server-sent events: split a byte stream into whole events without re-framing them.

The gateway relays upstream bytes as they arrive. It only needs event boundaries
to (a) read usage from the events that carry it and (b) drop the usage-only chunk
that it injected for a client that did not ask for it. Bytes of every event are
forwarded exactly as received; a partial event at the end of a network chunk is
held until its terminating blank line arrives. Any split of the stream (mid-line,
mid-UTF-8 sequence) yields the same events (property-tested).
"""

from __future__ import annotations

_TERMINATORS = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _boundary(buf: bytes | bytearray, start: int) -> tuple[int, int]:
    """(index, length) of the first event terminator at or after `start`, or (-1, 0)."""
    best, size = -1, 0
    for term in _TERMINATORS:
        idx = buf.find(term, start)
        if idx != -1 and (best == -1 or idx < best):
            best, size = idx, len(term)
    return best, size


class EventSplitter:
    """Feed network chunks, get complete raw events (terminator included)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        # Search from just before the old tail: a terminator may straddle chunks.
        start = max(len(buf) - 3, 0)
        buf += chunk
        events: list[bytes] = []
        pos = 0
        while True:
            idx, size = _boundary(buf, max(start, pos))
            if idx == -1:
                break
            end = idx + size
            events.append(bytes(buf[pos:end]))
            pos = end
            start = pos
        if pos:
            del buf[:pos]
        return events

    def remainder(self) -> bytes:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def parse_event(raw: bytes) -> tuple[str | None, bytes]:
    """(event type, data) of one raw event; multiple data lines are joined by LF."""
    event: str | None = None
    data: list[bytes] = []
    for line in raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    return event, b"\n".join(data)
