"""The server side of libqb IPC: what lets corosync's client libraries talk to totemd.

One listening setup socket per service; per accepted connection a handshake (spec
client-ipc.md §1.2-1.4), then the shm transport (three rings in a private /dev/shm
directory, requests and events announced by one byte each on the setup socket) or the
socket transport (datagrams; a debugging mode, Pacemaker refuses it, §3.3).

Design rules:

* The server never blocks on a client. Every socket is non-blocking, ring writes
  never wait: a response or event that does not fit is queued and retried by one
  timer task (clients do not say when they free ring space), and wake-up bytes the
  socket cannot take are remembered. A client whose queue grows past
  ``event_backlog_limit`` is disconnected.
* Each connection is one task. Everything a client sends is checked before it is
  used; a malformed message is logged once and drops that connection only. Handler
  exceptions are logged and drop the connection they happened on.
* ``ipc_disconnect`` is called exactly once for every ``ipc_connect`` that returned 0,
  after the connection's socket is closed and its files are removed.

Accepted connections are refused nothing by the server itself: access policy is the
handler's answer to ``ipc_connect``.
"""

from __future__ import annotations

import enum
import errno
import itertools
import logging
import os
import socket
import stat
from collections import deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Protocol, Sequence

import trio

from ..lib.common import IPC_REQUEST_SIZE, parse_request_header_untrusted
from ..wire.errors import WireError
from . import shmdir
from .credentials import CMSG_SPACE, Credentials, from_ancillary, pass_credentials, peer_credentials
from .dgram import SocketServerChannels
from .handshake import (
    CONNECTION_REQUEST_SIZE,
    MIN_MSG_SIZE,
    MSG_AUTHENTICATE,
    MSG_DISCONNECT,
    ConnRequest,
    ConnResponse,
    pack_connection_response,
    parse_connection_request_untrusted,
)
from .names import describe, setup_address
from .shm import ShmServerChannels
from .setupsock import close_socket, send_all

__all__ = ["ConnectionInfo", "Credentials", "IpcHandler", "IpcServer"]

SERVER_BACKLOG = 128
"""``listen`` backlog, as libqb's."""
HANDSHAKE_TIMEOUT = 5.0
"""Seconds a new connection has to send its request and take the response."""
MAX_MSG_SIZE_CEILING = 64 * 1024 * 1024
"""A client asking for larger messages is refused (-EMSGSIZE): each connection costs
three rings of that size in /dev/shm. corosync's libraries ask for 1 MiB."""
WAKEUPS_PER_READ = 64
"""Requests taken from one connection before other tasks get a turn."""
FILE_CHECK_INTERVAL = 5.0
"""Seconds between checks that a client has not truncated its shm files."""
RETRY_MIN, RETRY_MAX = 0.002, 0.05
"""Back-off (seconds) of the task that retries queued responses and events."""


class IpcHandler(Protocol):
    """What the server calls; all calls are synchronous, from the trio thread."""

    def ipc_connect(self, conn_id: int, service: str, creds: Credentials) -> int:
        """0 to accept, else a negative errno sent back in the connection response."""
        ...

    def ipc_request(self, conn_id: int, data: bytes) -> None:
        """One whole request (header included), in order per connection. Answer now or
        later with :meth:`IpcServer.respond`."""
        ...

    def ipc_disconnect(self, conn_id: int) -> None:
        """The connection is gone (called once per accepted connection)."""
        ...


@dataclass
class ConnectionInfo:
    """What the server knows about one accepted connection, updated in place."""

    conn_id: int
    service: str
    creds: Credentials
    transport: str
    max_msg_size: int
    directory: str
    """The connection's /dev/shm directory."""
    requests: int = 0
    responses: int = 0
    events: int = 0
    queued_bytes: int = 0
    """Responses and events waiting for ring (or socket) space."""
    queued_messages: int = 0
    flow_control: int = 0


class _State(enum.Enum):
    HANDSHAKE = 1
    ACTIVE = 2
    CLOSING = 3


class _Channels(Protocol):
    connection_type: int
    wakeup_bytes: bool
    request_fd: int | None
    names: tuple[str, str, str]

    def take_request(self) -> bytes | None: ...
    def put_response(self, data: bytes) -> bool: ...
    def put_event(self, data: bytes) -> bool: ...
    def set_flow_control(self, level: int) -> None: ...
    def intact(self) -> bool: ...
    def close(self) -> None: ...


class _Conn:
    """One connection's private state."""

    def __init__(self, conn_id: int, service: str, sock: socket.socket, creds: Credentials,
                 transport: str) -> None:
        self.id = conn_id
        self.sock = sock
        self.scope = trio.CancelScope()
        self.state = _State.HANDSHAKE
        self.accepted = False
        self.channels: _Channels | None = None
        self.info = ConnectionInfo(conn_id, service, creds, transport, 0, "")
        self.responses: deque[bytes] = deque()
        self.events: deque[bytes] = deque()
        self.owed_wakeups = 0
        self.stray_wakeups = 0
        self.next_file_check = 0.0
        self.reason = ""
        self.cleaned = False

    def __str__(self) -> str:
        c = self.info.creds
        return f"{self.info.service} connection {self.id} (pid {c.pid}, uid {c.uid})"


class IpcServer:
    """Serves ``services`` (setup socket names such as ``cpg``) to ``handler``.

    ``transport``: "shm" (libqb's native transport on Linux, required by Pacemaker) or
    "socket" (debugging). ``max_msg_size``: the least message size granted; a client
    asking more gets more (as libqb's server, up to :data:`MAX_MSG_SIZE_CEILING`).
    ``socket_dir``: None follows libqb's rule for setup sockets (abstract names, or
    filesystem sockets in /tmp when /etc/libqb/force-filesystem-sockets exists); a
    directory always uses filesystem sockets there. ``shm_dir``: where connection
    directories go (swept of dead servers' directories at start).
    ``event_backlog_limit``: bytes of queued responses and events after which a client
    that does not read is disconnected.
    """

    def __init__(self, services: Sequence[str], handler: IpcHandler, *,
                 transport: str = "shm", max_msg_size: int = IPC_REQUEST_SIZE,
                 socket_dir: str | None = None, shm_dir: str = "/dev/shm",
                 event_backlog_limit: int = 64 * 1024 * 1024,
                 logger: logging.Logger | None = None) -> None:
        if transport not in ("shm", "socket"):
            raise ValueError(f"transport must be 'shm' or 'socket', not {transport!r}")
        if not services or len(set(services)) != len(services):
            raise ValueError(f"services must be distinct names, got {list(services)!r}")
        self.services = tuple(services)
        self.handler = handler
        self.transport = transport
        self.max_msg_size = max_msg_size
        self.socket_dir = socket_dir
        self.shm_dir = shm_dir
        self.event_backlog_limit = event_backlog_limit
        self.log = logger or logging.getLogger("totem.ipc")
        self.addresses: dict[str, bytes | str] = {}
        """Where each service listens, once :meth:`serve` has started."""
        self._conns: dict[int, _Conn] = {}
        self._active: dict[int, ConnectionInfo] = {}
        self.connections: Mapping[int, ConnectionInfo] = MappingProxyType(self._active)
        """Accepted connections by id."""
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self._retry_wanted: trio.Event | None = None
        self._owing: set[int] = set()
        """Connections owed wake-up bytes, sent together once the caller yields."""
        self._wakeups_due: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._pid = os.getpid()

    # -- running ---------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on every service's setup socket and serve until cancelled; then close
        every connection (removing its files) and the listening sockets."""
        if self._nursery is not None:
            raise RuntimeError("this IpcServer is already serving")
        swept = shmdir.sweep_stale(self.shm_dir)
        if swept:
            self.log.info("removed %d IPC directories of dead servers from %s", len(swept),
                          self.shm_dir)
        listeners: list[tuple[str, socket.socket]] = []
        try:
            for service in self.services:
                listeners.append((service, self._listen(service)))
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._retry_wanted = trio.Event()
                for service, sock in listeners:
                    nursery.start_soon(self._accept_loop, service, sock)
                self._wakeups_due = trio.Event()
                nursery.start_soon(self._retry_loop)
                nursery.start_soon(self._wakeup_loop)
                task_status.started()
        finally:
            self._nursery = None
            self._wakeups_due = None
            for service, sock in listeners:
                sock.close()
                addr = self.addresses.pop(service, None)
                if isinstance(addr, str):
                    _unlink_quietly(addr)

    def _listen(self, service: str) -> socket.socket:
        addr = setup_address(service, self.socket_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            if isinstance(addr, str):
                _take_over_stale_socket(addr)
            try:
                sock.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE,
                                  f"the '{service}' IPC socket {describe(addr)} is already in use "
                                  f"(is corosync or another totemd running in this network "
                                  f"namespace?)") from exc
                raise
            if isinstance(addr, str):
                os.chmod(addr, 0o777)  # access control is the handshake's business
            pass_credentials(sock, True)
            sock.listen(SERVER_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self.addresses[service] = addr
        return sock

    async def _accept_loop(self, service: str, lsock: socket.socket) -> None:
        assert self._nursery is not None
        warned = False
        while True:
            await trio.lowlevel.wait_readable(lsock)
            while True:
                try:
                    sock, _ = lsock.accept()
                except BlockingIOError:
                    break
                except OSError as exc:  # EMFILE and friends: back off, keep serving
                    if not warned:
                        self.log.error("cannot accept %s IPC connections: %s", service, exc)
                        warned = True
                    await trio.sleep(0.1)
                    break
                warned = False
                sock.setblocking(False)
                self._nursery.start_soon(self._connection, service, sock)

    # -- one connection ----------------------------------------------------------------

    async def _connection(self, service: str, sock: socket.socket) -> None:
        conn: _Conn | None = None
        try:
            got = None
            with trio.move_on_after(HANDSHAKE_TIMEOUT):
                got = await self._read_connection_request(sock)
            if got is None:
                self.log.debug("%s IPC client went away before its connection request", service)
                return
            request, creds = got
            if request.msg_id != MSG_AUTHENTICATE:
                self.log.warning("%s IPC client pid %d sent message id %d instead of a "
                                 "connection request; closed", service, creds.pid, request.msg_id)
                return
            conn = _Conn(next(self._ids), service, sock, creds, self.transport)
            self._conns[conn.id] = conn
            with conn.scope:
                if await self._handshake(conn, request.max_msg_size):
                    await self._serve_connection(conn)
        finally:
            if conn is None:
                close_socket(sock)
            else:
                self._cleanup(conn)

    async def _read_connection_request(
            self, sock: socket.socket) -> tuple[ConnRequest, Credentials] | None:
        """The 24-byte request and the kernel's credentials for it; None if the client
        goes away first."""
        buf = b""
        creds: Credentials | None = None
        while len(buf) < CONNECTION_REQUEST_SIZE:
            await trio.lowlevel.wait_readable(sock)
            try:
                data, anc, _flags, _addr = sock.recvmsg(CONNECTION_REQUEST_SIZE - len(buf), CMSG_SPACE)
            except BlockingIOError:
                continue
            except OSError:
                return None
            if not data:
                return None
            creds = creds or from_ancillary(anc)
            buf += data
        try:
            pass_credentials(sock, False)
            creds = creds or peer_credentials(sock)
        except OSError:
            return None
        return parse_connection_request_untrusted(buf), creds

    async def _handshake(self, conn: _Conn, wish: int) -> bool:
        """Ask the handler, create the connection's files, send the response. True when
        the connection is established."""
        creds, service = conn.info.creds, conn.info.service
        negotiated = max(wish, MIN_MSG_SIZE, self.max_msg_size)
        err = 0
        if wish > MAX_MSG_SIZE_CEILING:
            self.log.warning("%s: refused, asks for %d-byte messages (at most %d)", conn, wish,
                             MAX_MSG_SIZE_CEILING)
            err = -errno.EMSGSIZE
        else:
            err = self._ask_handler(conn)
        response = ConnResponse(err)
        payload = b""
        if err == 0:
            conn.accepted = True
            try:
                directory = shmdir.make_connection_dir(self.shm_dir, self._pid, creds.pid,
                                                       conn.sock.fileno(), creds.uid, creds.gid)
                conn.info.directory = directory
                kind = ShmServerChannels if self.transport == "shm" else SocketServerChannels
                conn.channels = kind(os.path.join(directory, "qb"), service, negotiated,
                                     creds.uid, creds.gid)
                conn.channels.set_flow_control(conn.info.flow_control)
                conn.info.max_msg_size = negotiated
                response = ConnResponse(0, conn.channels.connection_type, negotiated, conn.id,
                                        *conn.channels.names)
                payload = pack_connection_response(response)
            except (OSError, ValueError) as exc:
                err = -(getattr(exc, "errno", None) or errno.ENAMETOOLONG)
                self.log.error("%s: cannot set up its IPC files: %s", conn, exc)
                response = ConnResponse(err)
        if err != 0:
            payload = pack_connection_response(response)
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            if await send_all(conn.sock, payload):
                if err != 0:
                    conn.reason = f"refused with {errno.errorcode.get(-err, err)}"
                    self.log.debug("%s: %s", conn, conn.reason)
                    return False
                if conn.state is _State.CLOSING:  # disconnected from within ipc_connect
                    return False
                conn.state = _State.ACTIVE
                self._active[conn.id] = conn.info
                self.log.debug("%s: connected (%s, max_msg_size %d, %s)", conn, self.transport,
                               negotiated, conn.info.directory)
                if conn.responses or conn.events:
                    self._flush(conn)
                return True
        conn.reason = "client went away during the handshake"
        return False

    def _ask_handler(self, conn: _Conn) -> int:
        try:
            err = int(self.handler.ipc_connect(conn.id, conn.info.service, conn.info.creds))
        except Exception:
            self.log.exception("%s: ipc_connect failed; refusing", conn)
            return -errno.EIO
        if err > 0:
            self.log.error("%s: ipc_connect returned %d, not 0 or -errno; refusing", conn, err)
            return -errno.EINVAL
        return err

    async def _serve_connection(self, conn: _Conn) -> None:
        channels = conn.channels
        assert channels is not None
        if channels.request_fd is None:
            await self._serve_shm(conn, channels)
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_setup_socket, conn, nursery.cancel_scope)
                await self._serve_datagrams(conn, channels, channels.request_fd)
                nursery.cancel_scope.cancel()

    async def _serve_shm(self, conn: _Conn, channels: _Channels) -> None:
        """Each byte on the setup socket announces one committed request chunk."""
        sock = conn.sock
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                wakeups = sock.recv(WAKEUPS_PER_READ)
            except BlockingIOError:
                continue
            except OSError:
                wakeups = b""
            if not wakeups:
                conn.reason = "client closed the connection"
                return
            now = trio.current_time()
            if now >= conn.next_file_check:
                # libqb clients truncate the files to their own sizes when they open
                # them, before their first request: checked then, and every few
                # seconds after (6 stats cost ~15 us, too much for every request).
                conn.next_file_check = now + FILE_CHECK_INTERVAL
                if not channels.intact():
                    self._drop(conn, "its shm files were truncated or removed")
                    return
            for _ in range(len(wakeups)):
                try:
                    msg = channels.take_request()
                except WireError as exc:
                    self._drop(conn, f"broken request ring: {exc}")
                    return
                if msg is None:
                    conn.stray_wakeups += 1  # a byte without a chunk: harmless, ignored
                    continue
                if not self._dispatch(conn, msg):
                    return

    async def _serve_datagrams(self, conn: _Conn, channels: _Channels, fd: int) -> None:
        while True:
            await trio.lowlevel.wait_readable(fd)
            for _ in range(WAKEUPS_PER_READ):
                try:
                    msg = channels.take_request()
                except OSError as exc:
                    self._drop(conn, f"request socket failed: {exc}")
                    return
                if msg is None:
                    break
                if not self._dispatch(conn, msg):
                    return

    async def _watch_setup_socket(self, conn: _Conn, done: trio.CancelScope) -> None:
        """Socket transport: the setup socket only tells that the client went away."""
        while True:
            await trio.lowlevel.wait_readable(conn.sock)
            try:
                data = conn.sock.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                conn.reason = "client closed the connection"
                done.cancel()
                return

    def _dispatch(self, conn: _Conn, msg: bytes) -> bool:
        """Hand one request to the handler; False when the connection must end."""
        try:
            msg_id, _size = parse_request_header_untrusted(msg)
        except WireError as exc:
            self._drop(conn, f"malformed request: {exc}")
            return False
        if msg_id < 0:
            if msg_id == MSG_DISCONNECT:
                conn.reason = "client asked to disconnect"
                conn.state = _State.CLOSING
            else:
                self._drop(conn, f"unknown internal message id {msg_id}")
            return False
        conn.info.requests += 1
        try:
            self.handler.ipc_request(conn.id, msg)
        except Exception:
            self.log.exception("%s: ipc_request failed", conn)
            self._drop(conn, "its request made the handler fail")
            return False
        return conn.state is not _State.CLOSING

    def _cleanup(self, conn: _Conn) -> None:
        """Close the socket, remove the files, tell the handler (once)."""
        if conn.cleaned:
            return
        conn.cleaned = True
        conn.state = _State.CLOSING
        self._conns.pop(conn.id, None)
        self._active.pop(conn.id, None)
        self._pending.discard(conn.id)
        close_socket(conn.sock)
        if conn.channels is not None:
            try:
                conn.channels.close()
            except Exception:
                self.log.exception("%s: closing its channels failed", conn)
        if conn.info.directory:
            shmdir.remove_connection_dir(conn.info.directory)
        if conn.accepted:
            self.log.debug("%s: closed (%s)", conn, conn.reason or "server shutdown")
            try:
                self.handler.ipc_disconnect(conn.id)
            except Exception:
                self.log.exception("%s: ipc_disconnect failed", conn)

    def _drop(self, conn: _Conn, why: str) -> None:
        """End a connection because of something the client did (one warning)."""
        if conn.state is _State.CLOSING:
            return
        self.log.warning("%s: disconnected, %s", conn, why)
        conn.reason = why
        conn.state = _State.CLOSING
        conn.scope.cancel()

    # -- the handler's side ------------------------------------------------------------

    def respond(self, conn_id: int, data: bytes) -> None:
        """Send a response (never blocks: written into the response ring, or queued)."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.state is _State.CLOSING:
            return
        if not self._fits(conn, data):
            return
        if conn.responses or conn.state is not _State.ACTIVE or not self._put(conn, False, data):
            self._enqueue(conn, conn.responses, data)

    def send_event(self, conn_id: int, data: bytes) -> None:
        """Send an event (never blocks): commit the chunk, post, then the wake-up byte."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.state is _State.CLOSING:
            return
        if not self._fits(conn, data):
            return
        if conn.events or conn.state is not _State.ACTIVE or not self._put(conn, True, data):
            self._enqueue(conn, conn.events, data)

    def set_flow_control(self, level: int, conn_ids: Iterable[int] | None = None) -> None:
        """Set the request ring's flow-control word: 0 send, 1 block every request,
        2 block cpg multicasts only (None: every connection, also those connecting)."""
        if level not in (0, 1, 2):
            raise ValueError(f"flow-control level must be 0, 1 or 2, not {level}")
        conns = list(self._conns.values()) if conn_ids is None else [
            c for c in (self._conns.get(i) for i in conn_ids) if c is not None]
        for conn in conns:
            conn.info.flow_control = level
            if conn.channels is not None and conn.state is not _State.CLOSING:
                conn.channels.set_flow_control(level)

    def disconnect(self, conn_id: int, reason: str) -> None:
        """Close a connection (the handler's ``ipc_disconnect`` follows soon after)."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.state is _State.CLOSING:
            return
        self.log.info("%s: disconnecting, %s", conn, reason)
        conn.reason = reason
        conn.state = _State.CLOSING
        conn.scope.cancel()

    def _fits(self, conn: _Conn, data: bytes) -> bool:
        """A message above the negotiated size can never be delivered (the client reads
        into a buffer of that size), and skipping it would pair the wrong response with
        the next request: the connection is dropped instead."""
        limit = conn.info.max_msg_size or max(self.max_msg_size, MIN_MSG_SIZE)
        if len(data) <= limit:
            return True
        self.log.error("%s: disconnected, the service sent a %d-byte message, more than the "
                       "negotiated max_msg_size %d", conn, len(data), limit)
        conn.reason = "oversized message"
        conn.state = _State.CLOSING
        conn.scope.cancel()
        return False

    def _put(self, conn: _Conn, event: bool, data: bytes) -> bool:
        """Write one message now; False when there is no room. A broken channel drops
        the connection (and counts as written)."""
        channels = conn.channels
        assert channels is not None
        try:
            if not (channels.put_event(data) if event else channels.put_response(data)):
                return False
        except (WireError, OSError) as exc:
            self._drop(conn, f"cannot write to it: {exc}")
            return True
        if event:
            conn.info.events += 1
            if channels.wakeup_bytes:
                conn.owed_wakeups += 1
                if self._wakeups_due is None:
                    if not self._send_wakeups(conn):
                        self._want_retry(conn)
                elif conn.id not in self._owing:
                    self._owing.add(conn.id)
                    self._wakeups_due.set()
        else:
            conn.info.responses += 1
        return True

    async def _wakeup_loop(self) -> None:
        """Send the wake-up bytes of every event written since the last turn, one
        ``send`` per connection: a node delivering a burst of messages to a client pays
        one system call for the burst, not one per message (the client takes one chunk
        per byte either way)."""
        while True:
            assert self._wakeups_due is not None
            await self._wakeups_due.wait()
            self._wakeups_due = trio.Event()
            owing, self._owing = self._owing, set()
            for conn_id in owing:
                conn = self._conns.get(conn_id)
                if conn is not None and conn.owed_wakeups and not self._send_wakeups(conn):
                    self._want_retry(conn)

    def _send_wakeups(self, conn: _Conn) -> bool:
        """Send the wake-up bytes owed; False when the socket is full."""
        while conn.owed_wakeups > 0:
            try:
                sent = conn.sock.send(b"\x01" * min(conn.owed_wakeups, 4096),
                                      socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                conn.owed_wakeups = 0  # gone: the connection task sees the hang-up
                return True
            conn.owed_wakeups -= sent
        return True

    def _enqueue(self, conn: _Conn, queue: deque[bytes], data: bytes) -> None:
        queue.append(bytes(data))
        conn.info.queued_bytes += len(data)
        conn.info.queued_messages += 1
        if conn.info.queued_bytes > self.event_backlog_limit:
            self._drop(conn, f"it does not read: {conn.info.queued_bytes} bytes queued exceed "
                             f"the backlog limit of {self.event_backlog_limit}")
            return
        self._want_retry(conn)

    def _want_retry(self, conn: _Conn) -> None:
        self._pending.add(conn.id)
        if self._retry_wanted is not None:
            self._retry_wanted.set()

    def _flush(self, conn: _Conn) -> bool:
        """Write what is queued, in order; True when nothing is left."""
        if conn.state is not _State.ACTIVE:
            return conn.state is _State.CLOSING
        for queue, event in ((conn.responses, False), (conn.events, True)):
            while queue:
                data = queue[0]
                if not self._put(conn, event, data):
                    break
                queue.popleft()
                conn.info.queued_bytes -= len(data)
                conn.info.queued_messages -= 1
        if conn.owed_wakeups:
            self._send_wakeups(conn)
        return not (conn.responses or conn.events or conn.owed_wakeups)

    async def _retry_loop(self) -> None:
        """Retry queued output with back-off while any connection has some."""
        delay = RETRY_MIN
        while True:
            if not self._pending:
                self._retry_wanted = trio.Event()
                await self._retry_wanted.wait()
                delay = RETRY_MIN
            await trio.sleep(delay)
            progress = False
            for conn_id in list(self._pending):
                conn = self._conns.get(conn_id)
                if conn is None:
                    self._pending.discard(conn_id)
                    continue
                before = conn.info.queued_bytes + conn.owed_wakeups
                if self._flush(conn):
                    self._pending.discard(conn_id)
                if conn.info.queued_bytes + conn.owed_wakeups < before:
                    progress = True
            delay = RETRY_MIN if progress else min(delay * 2, RETRY_MAX)






def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _take_over_stale_socket(path: str) -> None:
    """A filesystem socket left by a dead server is removed (libqb unlinks it blindly);
    one that still answers is somebody else's and is left alone (bind then fails)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except OSError:
        _unlink_quietly(path)
    finally:
        probe.close()
