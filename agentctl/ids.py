"""Random ids on the request path: CSPRNG bytes read from the OS 4 KiB at a time.

`secrets.token_hex` is one `getrandom` system call per id, and every system call lets
the audit writer thread take the GIL for up to the switch interval (5 ms) before the
event loop gets it back. A request needs two ids (request and reservation); here they
cost a slice of a buffer, and the bytes are the same OS CSPRNG output, each used once,
so one id says nothing about another. After `fork` (`serve --workers`) the child drops
the buffer it inherited, so no two processes hand out the same bytes.

Not for secrets: agent tokens and key ids keep `secrets` (agentctl.store).
"""

from __future__ import annotations

import os

_CHUNK = 4096


class _Pool:
    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def hex(self, nbytes: int) -> str:
        pos = self._pos
        end = pos + nbytes
        if end > len(self._buf):
            self._buf, pos, end = os.urandom(_CHUNK), 0, nbytes
        self._pos = end
        return self._buf[pos:end].hex()

    def reset(self) -> None:
        self._buf, self._pos = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


def random_hex(nbytes: int) -> str:
    """`secrets.token_hex(nbytes)` without a system call per id (nbytes <= 4096)."""
    return _pool.hex(nbytes)
