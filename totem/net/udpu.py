"""The udpu transport on trio: one UDP socket, the token to one node, "multicast" to all.

Only bytes move here. Datagrams are read with a drain loop (everything that is ready
before yielding to trio) and sent with a plain ``sendto``; we wait for writability
only when the kernel says the socket buffer is full.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field

import trio

RECV_MAX = 136192
"""Largest datagram corosync 3.x reads (spec totem-wire.md §1.1)."""


@dataclass
class UdpuStats:
    rx: int = 0
    tx: int = 0
    tx_errors: int = 0
    rejected_unlisted: int = 0
    truncated: int = 0
    sources_logged: set = field(default_factory=set)


class UdpuTransport:
    """A non-blocking UDP socket bound to this node's ring0 address and the totem port."""

    def __init__(self, local_addr: str, port: int, members: dict[int, str], *,
                 block_unlisted: bool = True) -> None:
        family = socket.AF_INET6 if ":" in local_addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for opt, size in ((socket.SO_RCVBUF, 4 << 20), (socket.SO_SNDBUF, 4 << 20)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass
        self.sock.bind((local_addr, port))
        self.sock.setblocking(False)
        self.port = port
        self.block_unlisted = block_unlisted
        self.stats = UdpuStats()
        self.set_members(members)

    def set_members(self, members: dict[int, str]) -> None:
        self.members = dict(members)
        self.targets = [(addr, self.port) for addr in members.values()]
        self.allowed = set(members.values())

    def close(self) -> None:
        self.sock.close()

    # -- sending ---------------------------------------------------------------------

    async def send_to(self, nodeid: int, data: bytes) -> None:
        addr = self.members.get(nodeid)
        if addr is not None:
            await self._send(data, (addr, self.port))

    async def broadcast(self, data: bytes) -> None:
        for target in self.targets:
            await self._send(data, target)

    async def _send(self, data: bytes, target: tuple[str, int]) -> None:
        while True:
            try:
                self.sock.sendto(data, target)
                self.stats.tx += 1
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)
            except OSError as exc:
                # unreachable peers, no route: udpu keeps going like corosync does
                self.stats.tx_errors += 1
                if exc.errno not in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH,
                                     errno.EPERM, errno.EINVAL, errno.EADDRNOTAVAIL):
                    raise
                return

    # -- receiving -------------------------------------------------------------------

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self.sock)

    def drain(self, limit: int = 256) -> list[tuple[bytes, str]]:
        """Every datagram already queued on the socket (at most ``limit``)."""
        out = []
        recv = self.sock.recvfrom
        for _ in range(limit):
            try:
                data, (addr, *_rest) = recv(RECV_MAX)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP errors surface here on Linux (ECONNREFUSED); nothing to read
                continue
            self.stats.rx += 1
            if self.block_unlisted and addr not in self.allowed:
                self.stats.rejected_unlisted += 1
                continue
            out.append((data, addr))
        return out
