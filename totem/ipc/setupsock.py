"""Small operations on the setup socket shared by the client and the server side."""

from __future__ import annotations

import os
import socket

import trio


async def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send all of ``data`` on a non-blocking socket, waiting with trio when it is
    full; False when the peer is gone (no SIGPIPE)."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view, socket.MSG_NOSIGNAL):]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
        except OSError:
            return False
    return True


def close_socket(sock: socket.socket) -> None:
    """Shut a socket down both ways (the peer sees the hang-up at once) and close it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
