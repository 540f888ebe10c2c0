"""The socket transport of one connection (spec client-ipc.md §1.7): a debugging mode.

Each message is one ``SOCK_DGRAM`` datagram. With base name ``<prefix>-<svc>`` the
server binds ``<base>-request`` (receives requests, sends responses) and
``<base>-event-tx`` (sends events); the client binds ``<base>-response`` connected to
``<base>-request`` and ``<base>-event`` connected to ``<base>-event-tx``. The names
start with ``/``, so libqb always puts them in the abstract namespace. The server
connects its two sockets on first send, since the client binds only after the
handshake. A 24-byte control file carries the flow-control word.

libqb also keeps "sent" counters in the control file with atomic increments; they are
statistics (a libqb server reads the request counter only to bound how many requests
it takes per wake-up, and copes with 0), so this module leaves them alone rather than
race with C atomics from Python.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import struct

from construct import Int32sl, Struct

from ..wire.layout import flat_format
from .handshake import IPC_SOCKET
from .names import abstract_address

_Pair = Struct("sent" / Int32sl, "flow_control" / Int32sl)
ControlBlock = Struct("request" / _Pair, "response" / _Pair, "event" / _Pair)
"""Three ``struct ipc_us_control`` {sent, flow_control} for request, response, event."""
CONTROL_SIZE = ControlBlock.sizeof()
_CTL = struct.Struct(flat_format(ControlBlock).fmt)
_FC = struct.Struct("<i")
_FC_OFFSET = 4
"""The request pair's flow_control: the only word either side acts on."""
assert CONTROL_SIZE == _CTL.size == 24

_DISCONNECTED = {errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN, errno.EPIPE,
                 errno.ECONNRESET}


def set_buffer_sizes(sock: socket.socket, max_msg_size: int) -> None:
    """Raise SO_SNDBUF/SO_RCVBUF to ``max_msg_size`` when they are not larger (libqb)."""
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        if sock.getsockopt(socket.SOL_SOCKET, opt) <= max_msg_size:
            sock.setsockopt(socket.SOL_SOCKET, opt, max_msg_size)


def _bound_dgram(name: str, max_msg_size: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        sock.bind(abstract_address(name))
        set_buffer_sizes(sock, max_msg_size)
    except BaseException:
        sock.close()
        raise
    return sock


class _Control:
    """The mapped control file."""

    def __init__(self, path: str, *, create: bool, uid: int = -1, gid: int = -1) -> None:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, CONTROL_SIZE)
                os.posix_fallocate(fd, 0, CONTROL_SIZE)
                if uid >= 0 or gid >= 0:
                    os.fchown(fd, uid, gid)
                os.fchmod(fd, 0o600)
            elif os.fstat(fd).st_size < CONTROL_SIZE:
                raise OSError(errno.EBADMSG, f"control file {path} is too short")
            self.map = mmap.mmap(fd, CONTROL_SIZE)
        except BaseException:
            if create:
                os.unlink(path)
            raise
        finally:
            os.close(fd)
        self.path = path
        if create:
            self.map[:] = _CTL.pack(0, 0, 0, 0, 0, 0)

    @property
    def flow_control(self) -> int:
        return _FC.unpack_from(self.map, _FC_OFFSET)[0]

    @flow_control.setter
    def flow_control(self, level: int) -> None:
        _FC.pack_into(self.map, _FC_OFFSET, level)

    def close(self, *, unlink: bool) -> None:
        if not self.map.closed:
            self.map.close()
        if unlink:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class SocketServerChannels:
    """The server's side of one socket-transport connection."""

    connection_type = IPC_SOCKET
    wakeup_bytes = False

    def __init__(self, prefix: str, service: str, max_msg_size: int, uid: int, gid: int) -> None:
        self.max_msg_size = max_msg_size
        self.base = f"{prefix}-{service}"
        self.control = _Control(f"{prefix}-control-{service}", create=True, uid=uid, gid=gid)
        self.request_sock: socket.socket | None = None
        self.event_sock: socket.socket | None = None
        try:
            self.request_sock = _bound_dgram(self.base + "-request", max_msg_size)
            self.event_sock = _bound_dgram(self.base + "-event-tx", max_msg_size)
        except BaseException:
            self.close()
            raise
        self._connected = {"response": False, "event": False}
        self.names = (self.control.path, self.base, "")
        self.request_fd: int | None = self.request_sock.fileno()

    def take_request(self) -> bytes | None:
        """One request datagram, or None when none is waiting."""
        assert self.request_sock is not None
        try:
            return self.request_sock.recv(self.max_msg_size + 1)
        except BlockingIOError:
            return None

    def _send(self, sock: socket.socket | None, peer: str, data: bytes) -> bool:
        assert sock is not None
        try:
            if not self._connected[peer]:
                sock.connect(abstract_address(f"{self.base}-{peer}"))
                self._connected[peer] = True
            sock.send(data)
            return True
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            return False  # the client is busy or has not bound yet: retry later
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                return False
            raise

    def put_response(self, data: bytes) -> bool:
        return self._send(self.request_sock, "response", data)

    def put_event(self, data: bytes) -> bool:
        return self._send(self.event_sock, "event", data)

    def set_flow_control(self, level: int) -> None:
        self.control.flow_control = level

    def intact(self) -> bool:
        return True  # a 24-byte control file; the server never reads it back

    def close(self) -> None:
        for sock in (self.request_sock, self.event_sock):
            if sock is not None:
                sock.close()
        self.control.close(unlink=True)


class SocketClientChannels:
    """The client's side: binds its two datagram sockets and maps the control file."""

    connection_type = IPC_SOCKET

    def __init__(self, control_path: str, base: str, max_msg_size: int) -> None:
        self.control = _Control(control_path, create=False)
        self.request_sock: socket.socket | None = None
        self.event_sock: socket.socket | None = None
        try:
            self.request_sock = _bound_dgram(base + "-response", max_msg_size)
            self.request_sock.connect(abstract_address(base + "-request"))
            self.event_sock = _bound_dgram(base + "-event", max_msg_size)
            self.event_sock.connect(abstract_address(base + "-event-tx"))
        except BaseException:
            self.close(server_gone=False)
            raise
        self.max_msg_size = max_msg_size

    @property
    def flow_control(self) -> int:
        return self.control.flow_control

    def server_attached(self) -> bool:
        return True  # liveness is the setup socket's business in this transport

    def put_request(self, data: bytes) -> bool:
        """Send one request datagram; False when the socket buffer is full."""
        assert self.request_sock is not None
        try:
            self.request_sock.send(data)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                return False
            if exc.errno in _DISCONNECTED:
                raise ConnectionResetError(exc.errno, "the daemon's request socket is gone") from exc
            raise

    def close(self, *, server_gone: bool) -> None:
        for sock in (self.request_sock, self.event_sock):
            if sock is not None:
                sock.close()
        # libqb's client always unlinks the control file (the server does too).
        self.control.close(unlink=True)
