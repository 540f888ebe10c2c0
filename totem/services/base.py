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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..wire import RingId


@dataclass(frozen=True, slots=True)
class ServiceLog:
    """A line corosync would log: level (``debug``, ``info``, ``notice``, ``warning``,
    ``error``), subsystem tag as corosync prints it (``SYNC``, ``CPG``, ...) and text."""

    level: str
    subsys: str
    text: str


Emit = Callable[[object], None]


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

    def __init__(self, nodeid: int) -> None:
        self.nodeid = nodeid
        self._pending: list[object] = []
        self._emit: Emit = self._pending.append

    # -- wiring ---------------------------------------------------------------------

    def attach(self, emit: Emit) -> None:
        """Send events to ``emit`` from now on (events emitted before are handed over)."""
        pending, self._pending = self._pending, []
        self._emit = emit
        for ev in pending:
            emit(ev)

    def take_events(self) -> list[object]:
        """Events emitted while not attached to an engine (for standalone use and tests)."""
        out = list(self._pending)
        self._pending.clear()
        return out

    def log(self, level: str, text: str) -> None:
        self._emit(ServiceLog(level, self.subsys, text))

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
