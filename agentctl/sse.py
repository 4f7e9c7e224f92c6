"""Server-sent events: split a byte stream into whole events without re-framing them.

The gateway relays upstream bytes as they arrive. It only needs event boundaries
to (a) read usage from the events that carry it and (b) drop the usage-only chunk
that it injected for a client that did not ask for it. Bytes of every event are
forwarded exactly as received; a partial event at the end of a network chunk is
held until its terminating blank line arrives. Any split of the stream (mid-line,
mid-UTF-8 sequence) yields the same events (property-tested).
"""

from __future__ import annotations


def _eol(buf: bytes | bytearray, i: int) -> int:
    """Length of the line ending at `i` (1 or 2), 0 if none, -1 if undecidable yet."""
    ch = buf[i]
    if ch == 0x0A:
        return 1
    if ch != 0x0D:
        return 0
    if i + 1 >= len(buf):
        return -1  # a CR at the end of the buffer may be the first half of CRLF
    return 2 if buf[i + 1] == 0x0A else 1


def _boundary(buf: bytes | bytearray, start: int) -> tuple[int, int]:
    """(index, length) of the first blank line (two line endings in a row), or (-1, 0).

    Line endings are CRLF, LF or CR, in any mix (WHATWG SSE). The fast path covers the
    usual LF-only stream."""
    if buf.find(b"\r", start) == -1:
        idx = buf.find(b"\n\n", start)
        return (idx, 2) if idx != -1 else (-1, 0)
    i = start
    n = len(buf)
    while i < n:
        cr = buf.find(b"\r", i)
        lf = buf.find(b"\n", i)
        i = min(x for x in (cr, lf) if x != -1) if cr != -1 or lf != -1 else -1
        if i == -1:
            return -1, 0
        first = _eol(buf, i)
        if first == -1:
            return -1, 0
        j = i + first
        if j >= n:
            return -1, 0
        second = _eol(buf, j)
        if second == -1:
            return -1, 0
        if second:
            return i, first + second
        i = j
    return -1, 0


class EventSplitter:
    """Feed network chunks, get complete raw events (terminator included)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        if not buf and type(chunk) is bytes and b"\r" not in chunk:
            # The usual chunk: exactly one whole LF-framed event, passed on uncopied.
            idx = chunk.find(b"\n\n")
            if idx != -1 and idx == len(chunk) - 2:
                return [chunk]
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
