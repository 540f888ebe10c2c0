"""Who is at the other end of a setup socket (spec client-ipc.md §1.3).

libqb turns ``SO_PASSCRED`` on while the handshake message is read and takes pid, uid
and gid from the ``SCM_CREDENTIALS`` message the kernel attaches; both sides do this,
so the client learns the server's credentials the same way. ``SO_PEERCRED`` (the
credentials at ``connect`` time) is the fallback.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_UCRED = struct.Struct("iII")
"""``struct ucred``: pid_t pid, uid_t uid, gid_t gid."""
CMSG_SPACE = socket.CMSG_SPACE(_UCRED.size)
"""Ancillary buffer size that holds one ``SCM_CREDENTIALS`` message."""


@dataclass(frozen=True)
class Credentials:
    """A peer's process id, user id and group id."""

    pid: int
    uid: int
    gid: int


def from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> Credentials | None:
    """The credentials in ``recvmsg``'s ancillary data, if the kernel attached any."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            return Credentials(*_UCRED.unpack_from(data))
    return None


def peer_credentials(sock: socket.socket) -> Credentials:
    """``SO_PEERCRED`` of a connected AF_UNIX socket."""
    return Credentials(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                     _UCRED.size)))


def pass_credentials(sock: socket.socket, on: bool) -> None:
    """Switch ``SO_PASSCRED`` (on for the handshake only, as libqb does)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1 if on else 0)
