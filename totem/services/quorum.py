"""quorum (service 3): corosync 3.1.7's provider-independent quorum layer (vsf_quorum).

It has no exec messages. Its sync step sends nothing (the node just sends its
barrier); sync_init computes the joined and left lists that libquorum V1 clients get
at activation (spec services-wire.md §4.7). The quorate flag and the member list
come from the provider, votequorum: link the two with :meth:`QuorumService.set_provider`
(the provider then calls :meth:`QuorumService.quorum_changed` with each of its
:class:`~totem.services.votequorum.QuorumChanged` decisions). Without a provider, as
corosync without ``quorum.provider``, the node is always quorate and GETTYPE answers
QUORUM_FREE.

The ``quorum`` client library (spec client-ipc.md §2.3): GETQUORATE, TRACKSTART
(V0 NOTIFICATION, or V1 QUORUM and NODELIST notifications, by the model the client
chose with MODEL_GETTYPE), TRACKSTOP, GETTYPE, MODEL_GETTYPE. Pacemaker's controld
uses GETTYPE (it requires QUORUM_SET), GETQUORATE and TRACKSTART, and takes its node
membership from the V0 notification.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ..lib import quorum as qlib
from ..lib.common import TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT, CsError, response_header
from ..wire import RingId
from .base import LibConnection, Service
from .votequorum import (
    EvTrackingStore,
    FileEvTrackingStore,
    QuorumChanged,
    VotequorumService,
    arithmetic_config,
)

SERVICE_ID = 3
VIEW_LINE_MAX = 63
"""Characters of node ids corosync puts on one log line (a 64-byte buffer)."""
PRIMARY = "This node is within the primary component and will provide service."
NON_PRIMARY = "This node is within the non-primary component and will NOT provide any services."


def view_lines(kind: str, nodes: tuple[int, ...]) -> list[str]:
    """corosync's log lines for a node list, e.g. ``Members[3]: 1 2 3``. Long lists are
    cut into several lines ending in a backslash; the entry that did not fit is
    printed cut off at the end of the line and again whole on the next one, as
    corosync's truncating snprintf leaves it."""
    lines: list[str] = []
    i, total = 0, len(nodes)
    while True:
        buf = ""
        while i < total:
            entry = f" {nodes[i]}"
            if len(buf) + len(entry) > VIEW_LINE_MAX:
                buf = (buf + entry)[:VIEW_LINE_MAX]
                break
            buf += entry
            i += 1
        more = "\\" if i < total else ""
        lines.append(f"{kind}[{total}]:{buf}{more}")
        if i == total:
            return lines


def _ptr(conn: int | None) -> str:
    """A connection as corosync's log lines print it (a pointer, ``(nil)`` for all)."""
    return "(nil)" if conn is None else str(conn)


@dataclass(slots=True)
class _Client:
    model: int = qlib.Model.V0
    tracking: bool = False
    track_flags: int = 0


class QuorumService(Service):
    service_id = SERVICE_ID
    name = "corosync cluster quorum service v0.1"
    subsys = "QUORUM"
    exec_count = 0
    lib_name = "quorum"

    def __init__(self, nodeid: int, provider: VotequorumService | None = None) -> None:
        super().__init__(nodeid)
        self.members: tuple[int, ...] = ()
        self.old_members: tuple[int, ...] = ()
        self.joined: tuple[int, ...] = ()
        self.left: tuple[int, ...] = ()
        self.ring_id: RingId | None = None
        """The ring of the last sync_init (the nodelist notifications carry it)."""
        self.quorum_type = qlib.QUORUM_FREE
        self.primary_designated = True
        """Quorate as the provider last said (always, without a provider)."""
        self.view: tuple[int, ...] = ()
        self.view_ring_id = RingId(0, 0)
        """Members and ring of the provider's last decision."""
        self.clients: dict[int, _Client] = {}
        self.trackers: list[int] = []
        """Tracking connections, most recent first (corosync's notification order)."""
        self._held: list[str] = []
        if provider is not None:
            self.set_provider(provider)

    def set_provider(self, provider: VotequorumService) -> None:
        """Take quorum decisions from votequorum (corosync_votequorum as quorum.provider).
        If the provider already decided the node is quorate (it does so at start for a
        one-vote cluster), that decision is applied at once; its log lines wait for the
        next entry point (the sync engine attaches services before it takes events)."""
        self.quorum_type = qlib.QUORUM_SET
        self.primary_designated = provider.quorate
        provider.add_observer(self.quorum_changed)
        if provider.quorate:
            self.view, self.view_ring_id = provider.vq.quorum_members, provider.ring_id
            self._held = [PRIMARY, *view_lines("Members", self.view)]

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for line in held:
            self.log("notice", line)

    @property
    def quorate(self) -> bool:
        return self.primary_designated

    # -- the provider's decisions -------------------------------------------------------------------

    def quorum_changed(self, ev: QuorumChanged) -> None:
        """The provider's decision (every sync activation, and quorate changes between)."""
        self._release_held()
        was = self.primary_designated
        self.primary_designated = ev.quorate
        if ev.quorate and not was:
            self.log("notice", PRIMARY)
        elif was and not ev.quorate:
            self.log("notice", NON_PRIMARY)
        self.view, self.view_ring_id = ev.members, ev.ring_id
        self._log_view("Members", ev.members)
        self._notify_quorum(None)

    # -- sync ---------------------------------------------------------------------------------------------

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._release_held()
        self.members = tuple(members)
        self.ring_id = ring_id
        # left: old members not in the transitional list, or in it but not in the new ring
        left = [n for n in self.old_members if n not in trans or n not in members]
        # joined: members not in the old list, or in it but also counted as left
        joined = [n for n in members if n not in self.old_members or n in left]
        self.left, self.joined = tuple(left), tuple(joined)
        self._log_view("Sync members", self.members)
        if joined:
            self._log_view("Sync joined", self.joined)
        if left:
            self._log_view("Sync left", self.left)

    def sync_activate(self) -> None:
        self.old_members = self.members
        self._notify_nodelist(None, with_changes=True)

    def _log_view(self, what: str, nodes: tuple[int, ...]) -> None:
        for line in view_lines(what, nodes):
            self.log("notice", line)

    # -- client library ----------------------------------------------------------------------------------

    def _notify_quorum(self, conn: int | None) -> None:
        """The quorum notification to ``conn``, or to every tracking client (None), in
        the form of each client's model."""
        v0 = qlib.encode_notification_v0(self.primary_designated, self.view_ring_id.seq, self.view)
        v1 = qlib.encode_quorum_notification_v1(self.primary_designated, self.view_ring_id, self.view)
        self.log("debug", f"sending quorum notification to {_ptr(conn)}, length = {len(v0)}/{len(v1)}")
        for c in self.trackers if conn is None else [conn]:
            self.event(c, v0 if self.clients[c].model == qlib.Model.V0 else v1)

    def _notify_nodelist(self, conn: int | None, *, with_changes: bool) -> None:
        """The V1 nodelist notification (V0 clients get none)."""
        joined, left = (self.joined, self.left) if with_changes else ((), ())
        data = qlib.encode_nodelist_notification_v1(self.ring_id, self.members, joined, left)
        self.log("debug", f"sending nodelist notification to {_ptr(conn)}, length = {len(data)}")
        for c in self.trackers if conn is None else [conn]:
            if self.clients[c].model == qlib.Model.V1:
                self.event(c, data)

    def lib_connect(self, conn: LibConnection) -> None:
        # (corosync's lib_init_fn has a debug line too, but it never shows in its logs)
        self.clients[conn.id] = _Client()

    def lib_disconnect(self, conn: int) -> None:
        self.log("debug", f"lib_exit_fn: conn={conn}")
        self.clients.pop(conn, None)
        if conn in self.trackers:
            self.trackers.remove(conn)

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        self._release_held()
        client = self.clients.setdefault(conn, _Client())
        if msg_id == qlib.ReqId.GETQUORATE:
            self.log("debug", f"got quorate request on {conn}")
            self.respond(conn, qlib.encode_getquorate(self.primary_designated))
        elif msg_id == qlib.ReqId.TRACKSTART:
            self._trackstart(conn, client, qlib.decode_trackstart(data))
        elif msg_id == qlib.ReqId.TRACKSTOP:
            self.log("debug", f"got trackstop request on {conn}")
            if client.tracking:
                client.tracking = False
                self.trackers.remove(conn)
            # corosync answers OK even when nothing was tracked
            self.respond(conn, qlib.encode_status(qlib.ResId.TRACKSTOP))
        elif msg_id == qlib.ReqId.GETTYPE:
            self.log("debug", f"got quorum_type request on {conn}")
            self.respond(conn, qlib.encode_type(qlib.ResId.GETTYPE, self.quorum_type))
        elif msg_id == qlib.ReqId.MODEL_GETTYPE:
            model = qlib.decode_model_gettype(data)
            self.log("debug", f"got quorum_model_type request on {conn}")
            error = CsError.OK
            if model in (qlib.Model.V0, qlib.Model.V1):
                client.model = model
            else:
                self.log("error", f"quorum_model_type request for unsupported model {model}")
                error = CsError.INVALID_PARAM
            self.respond(conn, qlib.encode_type(qlib.ResId.MODEL_GETTYPE, self.quorum_type, error))
        else:
            self.respond(conn, response_header(0, 24, CsError.INVALID_PARAM))

    def _trackstart(self, conn: int, client: _Client, flags: int) -> None:
        self.log("debug", f"got trackstart request on {conn}")
        if flags & (TRACK_CURRENT | TRACK_CHANGES):
            self.log("debug", f"sending initial status to {conn}")
            self._notify_nodelist(conn, with_changes=False)
            self._notify_quorum(conn)
        error = CsError.OK
        if client.tracking:
            error = CsError.EXIST
        elif flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY):
            client.tracking, client.track_flags = True, flags
            self.trackers.insert(0, conn)
        self.respond(conn, qlib.encode_status(qlib.ResId.TRACKSTART, error))


def quorum_services(nodeid: int, *, cluster: Any = None, expected_votes: int | None = None, votes: int = 1,
                    clock: Callable[[], float] = time.monotonic,
                    ev_store: EvTrackingStore | None = None) -> list[Service]:
    """The quorum layer as corosync 3.1.7 loads it, linked: ``[quorum, votequorum]``
    when ``quorum.provider`` is corosync_votequorum, ``[quorum]`` alone without a
    provider (always quorate, QUORUM_FREE; the sync list is then [0, 2, 3]).

    With ``cluster`` (a :class:`totem.config.ClusterConfig`) everything comes from its
    nodelist and ``quorum {}``, and the ev_tracking file lives in its state directory
    unless ``ev_store`` says otherwise; without it, ``expected_votes`` and ``votes``
    are used as corosync uses them without a nodelist. ``clock`` is the daemon loop's
    clock (the last_man_standing window runs on it).
    """
    if cluster is not None:
        if not cluster.quorum.enabled:
            return [QuorumService(nodeid)]
        config = arithmetic_config(cluster)
        if ev_store is None and config.tracks_expected_votes:
            ev_store = FileEvTrackingStore(cluster.state_dir)
        vq = VotequorumService(nodeid, config=config, ev_store=ev_store, clock=clock)
    else:
        vq = VotequorumService(nodeid, expected_votes, votes, ev_store=ev_store, clock=clock)
    return [QuorumService(nodeid, vq), vq]
