"""What a service looks like to the sync engine and to the exec dispatcher.

A service (corosync's "service engine") has an id, a name as corosync prints it in
its logs, handlers for its exec messages on group ``a`` and, if it takes part in
synchronisation, four hooks called by :class:`totem.sync.SyncEngine` (spec
services-wire.md §2.3):

* ``sync_init(trans, members, ring_id)`` when a regular configuration starts a sync;
* ``sync_process()`` when its step begins: the messages to multicast on group ``a``
  before this node's barrier, and whether it is done (if not, it is called again
  later; it must not return the same messages twice);
* ``sync_activate()`` when every member's barrier for its step was delivered;
* ``sync_abort()`` when a configuration change interrupts its step.

Services are pure: they return bytes to send and report what happened as events
through the ``emit`` callable the engine attaches (log lines included), so the
engine's single event queue keeps corosync's order of log lines.

A service that serves client libraries (``lib_name`` set: ``cpg``, ``cmap``, ...)
also gets the requests of its client connections (libqb IPC, spec client-ipc.md §2)
through :meth:`Service.lib_connect`, :meth:`Service.lib_request` and
:meth:`Service.lib_disconnect`, and answers with :class:`LibResponse` and
:class:`LibEvent` events; the daemon's IPC server carries them to the client. Exec
messages a request causes go out with :meth:`Service.multicast`, which refuses
(returns False) while a sync is running or the send queue is full, as corosync
holds application traffic then (spec services-wire.md §2.6); the service then
answers TRY_AGAIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..lib.common import CS_ERR_NOT_SUPPORTED, response_header
from ..wire import RingId


@dataclass(frozen=True, slots=True)
class ServiceLog:
    """A line corosync would log: level (``debug``, ``info``, ``notice``, ``warning``,
    ``error``), subsystem tag as corosync prints it (``SYNC``, ``CPG``, ...) and text."""

    level: str
    subsys: str
    text: str


Emit = Callable[[object], None]
Send = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class LibConnection:
    """A client connection as a service sees it: the daemon's id for it and the
    client's credentials as the kernel reported them."""

    id: int
    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class LibResponse:
    """The one response to a request of connection ``conn``: a whole libqb message
    (24-byte response header included)."""

    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LibEvent:
    """An event (callback) message for connection ``conn``, header included."""

    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LibDisconnect:
    """The service wants connection ``conn`` closed (the client will see it go)."""

    conn: int
    reason: str


def _no_sender(body: bytes) -> bool:
    return False


class Service:
    """Base of the services: no exec messages, a sync step that sends nothing.

    Subclasses set ``service_id``, ``name``, ``subsys`` and ``exec_count`` (the
    number of exec functions; a message with a higher function number is discarded
    by the dispatcher, as corosync's main does).
    """

    service_id: int = -1
    name: str = ""
    subsys: str = "MAIN"
    exec_count: int = 0
    syncs: bool = True
    """Whether the service has sync hooks (is listed in SERVICE_BUILD)."""
    lib_name: str | None = None
    """The IPC service name clients connect to (``cpg``, ...), None without clients."""

    def __init__(self, nodeid: int) -> None:
        self.nodeid = nodeid
        self._pending: list[object] = []
        self._emit: Emit = self._pending.append
        self._send: Send = _no_sender

    # -- wiring ---------------------------------------------------------------------

    def attach(self, emit: Emit, send: Send | None = None) -> None:
        """Send events to ``emit`` from now on (events emitted before are handed over)
        and exec messages through ``send`` (see :meth:`multicast`)."""
        pending, self._pending = self._pending, []
        self._emit = emit
        if send is not None:
            self._send = send
        for ev in pending:
            emit(ev)

    def take_events(self) -> list[object]:
        """Events emitted while not attached to an engine (for standalone use and tests)."""
        out = list(self._pending)
        self._pending.clear()
        return out

    def log(self, level: str, text: str) -> None:
        self._emit(ServiceLog(level, self.subsys, text))

    def multicast(self, body: bytes) -> bool:
        """Queue an exec message (service header included) for agreed delivery on
        group ``a``. False when it cannot be sent now (sync running, queue full)."""
        return self._send(body)

    def respond(self, conn: int, data: bytes) -> None:
        self._emit(LibResponse(conn, data))

    def event(self, conn: int, data: bytes) -> None:
        self._emit(LibEvent(conn, data))

    # -- client connections (services with ``lib_name``) -------------------------------

    def lib_connect(self, conn: LibConnection) -> None:
        """A client connected (access was already checked by the daemon)."""

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        """A request of connection ``conn``: ``data`` is the whole libqb message,
        header included. Answer with exactly one :meth:`respond` if the client
        library waits for one (spec client-ipc.md §1.5)."""
        self.respond(conn, response_header(0, 24, CS_ERR_NOT_SUPPORTED))

    def lib_disconnect(self, conn: int) -> None:
        """Connection ``conn`` is gone (closed, crashed or dropped)."""

    def flush_pending(self) -> None:
        """Retry exec messages :meth:`multicast` refused earlier, in order; the daemon
        calls it whenever client requests may flow (after each step of its loop)."""

    @property
    def backlogged(self) -> bool:
        """Whether exec messages are waiting for :meth:`flush_pending`: client requests
        are then held (and multicasts flow-controlled), as corosync stops reading
        requests while totem cannot take more."""
        return False

    # -- sync hooks ---------------------------------------------------------------------

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        pass

    def sync_process(self) -> tuple[list[bytes], bool]:
        return [], True

    def sync_activate(self) -> None:
        pass

    def sync_abort(self) -> None:
        pass

    # -- exec messages ----------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        """An exec message for this service (``fn`` < ``exec_count``) from ``sender``,
        delivered in agreed order. Raises only :class:`~totem.wire.errors.WireError`
        for a body that does not decode."""
