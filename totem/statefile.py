"""The state directory: the persisted ring seq and the lock that keeps it to one daemon."""

from __future__ import annotations

import fcntl
import os
import struct
import time
from pathlib import Path

from .srp import RingSeqStore


def fresh_ring_seq(now: float | None = None) -> int:
    """The ring seq of a node without a stored one: 4 x the Unix time in milliseconds.

    corosync starts such a node at 0, so a node whose state directory was lost can
    reuse ring ids it created before and mistake another ring's token for its own.
    Starting from the clock makes that impossible unless the cluster formed more than
    one ring per millisecond over its whole life; nothing on the wire changes (ring
    seqs are 64-bit and every node adopts the highest it has seen).
    """
    return int((time.time() if now is None else now) * 1000) * 4


class StateDirLocked(RuntimeError):
    pass


class FileRingSeqStore(RingSeqStore):
    """``ringid_<nodeid>`` in the state directory: the ring seq as a u64 in host byte order,
    the file corosync keeps, so a node can move between corosync and totemd."""

    def __init__(self, state_dir: str | Path, nodeid: int) -> None:
        self.path = Path(state_dir) / f"ringid_{nodeid}"
        super().__init__(self._read())

    def _read(self) -> int:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) < 8:
            return fresh_ring_seq()
        return struct.unpack("=Q", data[:8])[0]


    def save(self, seq: int) -> None:
        super().save(seq)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("=Q", seq))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class StateDirLock:
    """An exclusive lock on ``<state_dir>/totemd.lock``, held for the daemon's life."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "totemd.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.path.read_text().strip() or "another process"
            raise StateDirLocked(f"state directory {self.path.parent} is in use by pid {holder}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
