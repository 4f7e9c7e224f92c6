"""agentctl.ids: request-path ids from buffered CSPRNG bytes."""

from __future__ import annotations

import os
import re

from agentctl.ids import random_hex


def test_ids_are_hex_of_the_asked_size_and_never_repeat() -> None:
    ids = [random_hex(12) for _ in range(5000)] + [random_hex(16) for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids[:5000])
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[5000:])
    assert len(set(ids)) == len(ids)  # 140 KB of random bytes, several buffer refills


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    random_hex(12)  # the buffer is filled and part-used before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids and leave at once
        os.write(write, " ".join(random_hex(12) for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    parent = [random_hex(12) for _ in range(8)]
    assert len(child) == 8 and not set(child) & set(parent)
