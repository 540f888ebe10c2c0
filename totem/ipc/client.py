"""The client side of libqb IPC, for our own tools and libraries (trio).

It speaks to totemd's :class:`~totem.ipc.server.IpcServer` and to real corosync
(libqb 2.0.x) alike: handshake on the setup socket, then the transport the server
chose (shm normally; the socket transport when the server is configured for it).

Waiting without blocking the trio thread
----------------------------------------
Events are announced by one byte on the setup socket, so :meth:`receive_event` waits
for readability with trio and then takes the chunk whose semaphore is already posted.
Responses are *not* announced on any socket: the only signal is the response ring's
semaphore. After a few checkpoints (which let a server in the same trio run answer)
:meth:`request` therefore waits in a worker thread with ``sem_clockwait`` in short
slices (:data:`WAIT_SLICE`). The thread is never abandoned: a count it takes is always
handed back to us, so cancelling a request never loses or steals a semaphore count
(a cancelled request's response is read and discarded before the next request, to
keep libqb's positional request/response pairing). Between slices the setup socket is
polled for hang-up, so a dead daemon is noticed within one slice (libqb: 2 s), and
cancellation takes effect within one slice. Busy polling with ``sem_trywait`` and
sleeps was rejected: it costs either latency or CPU for every request.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from typing import Protocol

import trio

from ..lib.common import IPC_REQUEST_SIZE
from ..wire.errors import WireError
from .credentials import CMSG_SPACE, Credentials, from_ancillary, pass_credentials, peer_credentials
from .dgram import SocketClientChannels
from .errors import ConnectionClosed, DaemonUnavailable, IpcError, IpcRefused, TryAgain
from .handshake import (
    CONNECTION_RESPONSE_SIZE,
    IPC_SHM,
    IPC_SOCKET,
    MIN_MSG_SIZE,
    pack_connection_request,
    parse_connection_response_untrusted,
)
from .names import describe, setup_address
from .ringbuffer import Ring
from .shm import ShmClientChannels
from .setupsock import close_socket, pid_alive, send_all

__all__ = ["IpcClient", "WAIT_SLICE"]

WAIT_SLICE = 0.1
"""Seconds one worker-thread semaphore wait lasts before liveness is checked again."""
SPIN_CHECKPOINTS = 3
"""Checkpoints tried before a thread wait: enough for a server in the same trio run."""
CONNECT_RETRY = 5.0
"""Seconds to keep retrying while the daemon's listen backlog is full."""
_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL | select.POLLRDHUP


class _Channels(Protocol):
    connection_type: int

    @property
    def flow_control(self) -> int: ...
    def server_attached(self) -> bool: ...
    def put_request(self, data: bytes) -> bool: ...
    def close(self, *, server_gone: bool) -> None: ...


class IpcClient:
    """One connection to a daemon's IPC service (``cpg``, ``cmap``, ``quorum``, ...)."""

    def __init__(self, service: str, sock: socket.socket, channels: _Channels,
                 server_creds: Credentials, max_msg_size: int) -> None:
        self.service = service
        self.server_creds = server_creds
        """The daemon's pid/uid/gid, as the kernel reported them during the handshake."""
        self.max_msg_size = max_msg_size
        """The negotiated size: no request or response is larger."""
        self.transport = "shm" if channels.connection_type == IPC_SHM else "socket"
        self._sock = sock
        self._ch = channels
        self._request_lock = trio.Lock()
        self._event_lock = trio.Lock()
        self._wakeup_lock = trio.Lock()
        self._owed_responses = 0
        self._owed_wakeups = 0
        self._waiters = 0
        self._closed = False
        self._dead: str | None = None

    # -- connecting --------------------------------------------------------------------

    @classmethod
    async def connect(cls, service: str, *, max_msg_size: int = IPC_REQUEST_SIZE,
                      socket_dir: str | None = None) -> "IpcClient":
        """Connect to ``service`` and complete the handshake.

        Raises :class:`DaemonUnavailable` when nothing listens (or the daemon hangs up
        during the handshake) and :class:`IpcRefused` when the daemon refuses.
        """
        addr = setup_address(service, socket_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            await _connect(sock, addr, service)
            pass_credentials(sock, True)
            if not await send_all(sock, pack_connection_request(max(max_msg_size, MIN_MSG_SIZE))):
                raise DaemonUnavailable(f"the daemon closed the '{service}' IPC connection "
                                        f"({describe(addr)}) before the handshake")
            raw, creds = await _recv_handshake(sock, service)
            pass_credentials(sock, False)
            try:
                resp = parse_connection_response_untrusted(raw)
            except WireError as exc:
                raise IpcError(f"bad connection response from the '{service}' daemon: {exc}") from exc
            if resp.error:
                raise IpcRefused(service, resp.error)
            creds = creds or peer_credentials(sock)
            try:
                channels: _Channels
                if resp.connection_type == IPC_SHM:
                    channels = ShmClientChannels((resp.request, resp.response, resp.event),
                                                 resp.max_msg_size)
                elif resp.connection_type == IPC_SOCKET:
                    channels = SocketClientChannels(resp.request, resp.response, resp.max_msg_size)
                else:
                    raise IpcError(f"the '{service}' daemon chose IPC transport "
                                   f"{resp.connection_type}, which libqb clients do not support")
            except (OSError, WireError) as exc:
                raise IpcError(f"cannot open the '{service}' IPC channels: {exc}") from exc
        except BaseException:
            close_socket(sock)
            raise
        return cls(service, sock, channels, creds, resp.max_msg_size)

    # -- requests ----------------------------------------------------------------------

    async def request(self, data: bytes) -> bytes:
        """Send one request and return its whole response (requests are serialised).

        Raises :class:`TryAgain` when flow control (level 1) or a full request ring
        refuses the request, :class:`ConnectionClosed` when the daemon went away.
        """
        async with self._request_lock:
            await self._announce()  # bytes a cancelled call could not send yet
            while self._owed_responses:
                await self._next_response()  # a cancelled request's: not ours
            self._send_now(data, fc_max=1)
            self._owed_responses += 1
            await self._announce()
            return await self._next_response()

    async def send(self, data: bytes, *, fc_max: int = 1) -> None:
        """Send a request the daemon does not answer (cpg MCAST). Raises
        :class:`TryAgain` when the flow-control word ``v`` has ``0 < v <= fc_max``
        (libcpg uses ``fc_max=2`` for multicasts), as libqb's client does."""
        self._send_now(data, fc_max=fc_max)
        await self._announce()

    def _send_now(self, data: bytes, *, fc_max: int) -> None:
        self._check_open()
        if len(data) > self.max_msg_size:
            raise ValueError(f"a {len(data)}-byte request exceeds max_msg_size {self.max_msg_size}")
        if not self._ch.server_attached():
            raise self._died("the daemon dropped the connection")
        level = self._ch.flow_control
        if 0 < level <= fc_max:
            raise TryAgain(f"the '{self.service}' daemon applies flow control (level {level})")
        try:
            written = self._ch.put_request(data)
        except ConnectionResetError as exc:
            raise self._died(str(exc)) from exc
        if not written:
            raise TryAgain(f"the '{self.service}' daemon's request queue is full")
        if self.transport == "shm":
            self._owed_wakeups += 1
            self._send_wakeups()

    def _send_wakeups(self) -> bool:
        """Send the owed wake-up bytes now; False when the socket is full."""
        while self._owed_wakeups:
            try:
                sent = self._sock.send(b"\x01" * self._owed_wakeups,
                                       socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return False
            except OSError as exc:
                raise self._died(f"the setup socket failed: {exc}") from exc
            self._owed_wakeups -= sent
        return True

    async def _announce(self) -> None:
        """Make sure every committed request's byte reached the setup socket (a byte
        left unsent would make the daemon read each later request one byte late)."""
        if self._send_wakeups():
            return
        async with self._wakeup_lock:  # one task at a time may wait for writability
            while not self._send_wakeups():
                await self._wait(trio.lowlevel.wait_writable, self._sock)

    async def _next_response(self) -> bytes:
        if isinstance(self._ch, ShmClientChannels):
            await self._wait_chunk(self._ch.response)
            data = self._take(self._ch.response)
        else:
            assert isinstance(self._ch, SocketClientChannels) and self._ch.request_sock
            data = await self._recv_datagram(self._ch.request_sock)
        self._owed_responses -= 1
        return data

    # -- events ------------------------------------------------------------------------

    async def receive_event(self) -> bytes:
        """The next event. Raises :class:`ConnectionClosed` when the daemon goes away."""
        async with self._event_lock:
            if isinstance(self._ch, SocketClientChannels):
                assert self._ch.event_sock is not None
                return await self._recv_datagram(self._ch.event_sock)
            assert isinstance(self._ch, ShmClientChannels)
            while True:  # the wake-up byte: peeked now, taken with its chunk
                self._check_open()
                await self._wait(trio.lowlevel.wait_readable, self._sock)
                try:
                    byte = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    byte = b""
                if not byte:
                    raise self._died("the daemon closed the connection")
                break
            await self._wait_chunk(self._ch.event)
            data = self._take(self._ch.event)
            self._sock.recv(1, socket.MSG_DONTWAIT)
            return data

    # -- waiting -----------------------------------------------------------------------

    async def _wait_chunk(self, ring: Ring) -> None:
        """Take one count of ``ring``'s semaphore (see the module docstring)."""
        if ring.sem.try_acquire():
            return
        for _ in range(SPIN_CHECKPOINTS):
            await trio.lowlevel.checkpoint()
            self._check_open()
            if ring.sem.try_acquire():
                return
        while True:
            self._check_alive()
            self._waiters += 1
            try:
                got = await trio.to_thread.run_sync(ring.sem.acquire, WAIT_SLICE)
            finally:
                self._waiters -= 1
            if self._closed:
                raise ConnectionClosed(f"the '{self.service}' IPC client was closed")
            if got:
                return

    def _take(self, ring: Ring) -> bytes:
        try:
            return ring.read()
        except WireError as exc:
            raise self._died(f"broken ring from the daemon: {exc}") from exc

    async def _recv_datagram(self, sock: socket.socket) -> bytes:
        while True:
            self._check_alive()
            try:
                return sock.recv(self.max_msg_size + 1)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise self._died(f"the daemon's socket failed: {exc}") from exc
            with trio.move_on_after(WAIT_SLICE):
                await self._wait(trio.lowlevel.wait_readable, sock)

    async def _wait(self, wait, sock: socket.socket) -> None:
        try:
            await wait(sock)
        except trio.ClosedResourceError:
            raise ConnectionClosed(f"the '{self.service}' IPC client was closed") from None

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed(f"the '{self.service}' IPC client was closed")
        if self._dead is not None:
            raise ConnectionClosed(self._dead)

    def _check_alive(self) -> None:
        """Raise ConnectionClosed if the daemon hung up the setup socket."""
        self._check_open()
        poller = select.poll()
        poller.register(self._sock, _HANGUP)
        if any(ev & _HANGUP for _fd, ev in poller.poll(0)):
            raise self._died("the daemon closed the connection")

    def _died(self, why: str) -> ConnectionClosed:
        if self._dead is None:
            self._dead = f"'{self.service}' IPC connection lost: {why}"
        return ConnectionClosed(self._dead)

    # -- closing -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the connection; pending calls in other tasks raise ConnectionClosed."""
        if self._closed:
            return
        self._closed = True
        socks = [self._sock]
        if isinstance(self._ch, SocketClientChannels):
            socks += [s for s in (self._ch.request_sock, self._ch.event_sock) if s is not None]
        for s in socks:
            trio.lowlevel.notify_closing(s)
        with trio.CancelScope(shield=True):
            while self._waiters:  # a worker thread still uses the mapping
                await trio.sleep(WAIT_SLICE / 10)
        # As libqb's client: if the daemon died, remove the files it cannot remove.
        pid = self.server_creds.pid
        server_gone = self._dead is not None and pid > 0 and not pid_alive(pid)
        close_socket(self._sock)
        self._ch.close(server_gone=server_gone)
        if server_gone and isinstance(self._ch, ShmClientChannels):
            try:
                os.rmdir(os.path.dirname(self._ch.request.name))
            except OSError:
                pass

    async def __aenter__(self) -> "IpcClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _connect(sock: socket.socket, addr: bytes | str, service: str) -> None:
    deadline = trio.current_time() + CONNECT_RETRY
    while True:
        try:
            sock.connect(addr)
            return
        except BlockingIOError:  # listen backlog full: the daemon is busy
            if trio.current_time() > deadline:
                raise DaemonUnavailable(f"the daemon does not accept connections on the "
                                        f"'{service}' IPC socket ({describe(addr)})") from None
            await trio.sleep(0.01)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonUnavailable(f"no daemon listening on the '{service}' IPC socket "
                                    f"({describe(addr)}): is totemd or corosync running "
                                    f"(in this network namespace)?") from None
        except OSError as exc:
            raise DaemonUnavailable(f"cannot connect to the '{service}' IPC socket "
                                    f"({describe(addr)}): {exc}") from None




async def _recv_handshake(sock: socket.socket, service: str) -> tuple[bytes, Credentials | None]:
    """Read the whole connection response, and the server's SCM_CREDENTIALS."""
    buf = bytearray()
    creds: Credentials | None = None
    while len(buf) < CONNECTION_RESPONSE_SIZE:
        await trio.lowlevel.wait_readable(sock)
        try:
            data, anc, _flags, _addr = sock.recvmsg(CONNECTION_RESPONSE_SIZE - len(buf), CMSG_SPACE)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            data, anc = b"", []
        if not data:
            raise DaemonUnavailable(f"the daemon closed the '{service}' IPC connection during "
                                    f"the handshake")
        creds = creds or from_ancillary(anc)
        buf += data
    return bytes(buf), creds
