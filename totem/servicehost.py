"""Where client connections meet the services: corosync's ipc_glue as pure code.

The IPC server (:mod:`totem.ipc.server`) moves libqb messages; this class decides
what they mean for the node, exactly as corosync 3.1.7's glue does:

* a connection is refused with ``-EAGAIN`` until the first service synchronisation
  has completed, and with ``-EACCES`` unless the client is root (uid or gid 0) or
  allowed by a ``uidgid`` entry (spec client-ipc.md §1.3);
* while a sync runs, the totem send queue is nearly full, or a service has
  multicasts totem refused waiting, requests are held in arrival order (corosync
  stops reading them) and the flow-control word of the
  connections is 2, so libcpg refuses multicasts with TRY_AGAIN before sending;
  votequorum keeps being served during sync, as in corosync;
* responses and events the services emit are handed to the server, which queues
  what a client cannot take yet.

It holds no sockets: the node calls :meth:`ServiceHost.events` with every service
event and :meth:`ServiceHost.update` after every step of its loop.
"""

from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from .lib.common import CsError, parse_request_header_untrusted, response_header
from .services.base import LibConnection, LibDisconnect, LibEvent, LibResponse, Service
from .wire.errors import WireError

HOLD_EXEMPT = frozenset({"votequorum"})
"""Services whose requests are served during sync (corosync's VOTEQUORUM_SERVICE case)."""

FC_OFF = 0
FC_MCAST_BLOCKED = 2
"""libqb's flow-control word: 2 stops cpg multicasts only (QB_IPCS_RATE_OFF_2)."""


class Server(Protocol):
    """What the host needs of :class:`totem.ipc.server.IpcServer`."""

    def respond(self, conn_id: int, data: bytes) -> None: ...
    def send_event(self, conn_id: int, data: bytes) -> None: ...
    def set_flow_control(self, level: int, conn_ids: Iterable[int] | None = None) -> None: ...
    def disconnect(self, conn_id: int, reason: str) -> None: ...


@dataclass
class _Conn:
    service: Service
    info: LibConnection
    held: deque[bytes] = field(default_factory=deque)


Access = Callable[[int, int], bool]
"""(uid, gid) -> whether a non-root client may connect (the uidgid entries)."""


class ServiceHost:
    """Routes client connections to the services of one node (an IpcHandler)."""

    def __init__(self, services: Iterable[Service], access: Access | None = None) -> None:
        self.services: dict[str, Service] = {s.lib_name: s for s in services if s.lib_name}
        self.access: Access = access or (lambda uid, gid: False)
        self.server: Server | None = None
        self.ready = False
        """Connections are accepted once the first sync completed (corosync's
        ``cs_ipc_allow_connections``)."""
        self.holding = True
        """Requests wait (sync running or totem queue critical)."""
        self.conns: dict[int, _Conn] = {}
        self._fc_level = FC_OFF
        self.stats = {"refused_not_ready": 0, "refused_access": 0, "malformed": 0, "held": 0}

    # -- the IpcHandler side -------------------------------------------------------------

    def ipc_connect(self, conn_id: int, service: str, creds) -> int:
        svc = self.services.get(service)
        if svc is None:
            return -errno.ENOENT
        if not self.ready:
            self.stats["refused_not_ready"] += 1
            return -errno.EAGAIN
        if creds.uid != 0 and creds.gid != 0 and not self.access(creds.uid, creds.gid):
            self.stats["refused_access"] += 1
            return -errno.EACCES
        info = LibConnection(conn_id, creds.pid, creds.uid, creds.gid)
        self.conns[conn_id] = _Conn(svc, info)
        svc.lib_connect(info)
        if self._fc_level and self.server is not None and service not in HOLD_EXEMPT:
            self.server.set_flow_control(self._fc_level, [conn_id])
        return 0

    def ipc_request(self, conn_id: int, data: bytes) -> None:
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        if conn.held or ((self.holding or self.backlogged())
                         and conn.service.lib_name not in HOLD_EXEMPT):
            conn.held.append(data)
            self.stats["held"] += 1
            return
        self._serve(conn_id, conn, data)

    def ipc_disconnect(self, conn_id: int) -> None:
        conn = self.conns.pop(conn_id, None)
        if conn is not None:
            conn.service.lib_disconnect(conn_id)

    # -- driven by the node ----------------------------------------------------------------

    def update(self, *, holding: bool, ready: bool) -> None:
        """The node's state after a step: whether requests must wait, whether the
        first sync completed. Releases held requests in order when they may go."""
        self.ready = self.ready or ready
        self.holding = holding
        level = FC_MCAST_BLOCKED if holding else FC_OFF
        if level != self._fc_level and self.server is not None:
            self._fc_level = level
            self.server.set_flow_control(level, [cid for cid, c in self.conns.items()
                                                 if c.service.lib_name not in HOLD_EXEMPT])
        if holding:
            return
        for conn_id, conn in list(self.conns.items()):
            while conn.held and not self.holding and self.conns.get(conn_id) is conn:
                if self.backlogged():
                    # a released request filled a service's outbox: hold the rest
                    self.update(holding=True, ready=ready)
                    return
                self._serve(conn_id, conn, conn.held.popleft())

    def backlogged(self) -> bool:
        """Whether a service has exec messages waiting that totem refused."""
        return any(s.backlogged for s in self.services.values())

    def event(self, ev: object) -> bool:
        """Carry a service's response, event or disconnect to the server; False for
        events that are not about client connections."""
        server = self.server
        if isinstance(ev, LibResponse):
            if server is not None and ev.conn in self.conns:
                server.respond(ev.conn, ev.data)
            return True
        if isinstance(ev, LibEvent):
            if server is not None and ev.conn in self.conns:
                server.send_event(ev.conn, ev.data)
            return True
        if isinstance(ev, LibDisconnect):
            if server is not None and ev.conn in self.conns:
                server.disconnect(ev.conn, ev.reason)
            return True
        return False

    def _serve(self, conn_id: int, conn: _Conn, data: bytes) -> None:
        try:
            msg_id, _size = parse_request_header_untrusted(data)
        except WireError as exc:
            self.stats["malformed"] += 1
            if self.server is not None:
                self.server.disconnect(conn_id, f"malformed request: {exc}")
            return
        try:
            conn.service.lib_request(conn_id, msg_id, data)
        except WireError:
            # a request whose body does not decode: corosync's generic refusal
            self.stats["malformed"] += 1
            conn.service.respond(conn_id, response_header(0, 24, CsError.INVALID_PARAM))
