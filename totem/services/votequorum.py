"""votequorum (service 5): corosync 3.1.7's vote quorum as a pure service.

The arithmetic (votes, expected votes, quorum, two_node, wait_for_all,
last_man_standing, auto_tie_breaker, allow_downscale, expected-votes tracking) is
:class:`quorum.arithmetic.Votequorum`; this module puts it on the wire and behind
libvotequorum (spec services-wire.md §4, client-ipc.md §2.4):

* exec messages: NODEINFO (votes, expected votes and flags of one node), RECONFIGURE
  (new expected votes, new votes of a node, cancel wait_for_all) and the quorum
  device's QDEVICE_REG / QDEVICE_RECONFIGURE, with corosync's receive semantics, so
  real corosync nodes in a mixed ring and this node agree on quorate, total votes
  and expected votes;
* its sync step: NODEINFO for itself, then for the device slot (nodeid 0), then
  QDEVICE_REG if a device name is known; the result is published at activation;
* the ``votequorum`` client library: GETINFO, SETEXPECTED, SETVOTES, TRACKSTART /
  TRACKSTOP with QUORUM, NODELIST and EXPECTEDVOTES notifications, and the qdevice
  requests answered as a corosync without a registered device answers them.

What the daemon glue calls (besides the :class:`~totem.services.base.Service` hooks):

* ``clock`` (constructor): the clock the LMS window runs on, seconds; the glue's own
  loop clock. :meth:`next_deadline` is the time at which :meth:`handle_timer` must be
  called (None: no timer);
* :meth:`add_observer`: called with every :class:`QuorumChanged` (the quorum service
  links itself here, see :mod:`totem.services.quorum`); the same event is emitted for
  the daemon;
* :meth:`reload` after a configuration reload, :meth:`cancel_wait_for_all` for the cmap
  trigger ``quorum.cancel_wait_for_all``, :meth:`leave_message` in the shutdown path
  (allow_downscale), :meth:`quorum_status` and :meth:`runtime_cmap` for status and cmap.

The ev_tracking file goes through an :class:`EvTrackingStore` (the file corosync
keeps, or memory). Exec messages a client request causes (RECONFIGURE) are queued
when :meth:`multicast` refuses them (during a sync) and sent by :meth:`flush_pending`:
corosync sends them at once, and its tools expect an immediate OK.

Where this differs from corosync 3.1.7, and why:

* no NODEINFO is multicast at start-up, before the first ring: the sync step of that
  ring sends the same values (and the engine holds application traffic until then);
* quorum devices are not hosted: QDEVICE_REGISTER is refused with CS_ERR_ACCESS (what
  corosync answers when its configuration disables devices); the other qdevice
  requests get NOT_EXIST as on a corosync without a registered device. Devices on
  other nodes are honoured (their slot's votes, names, renames), as corosync does;
* a device-slot NODEINFO from a node without an entry is dropped with an error line
  (corosync fails an assertion and exits);
* what start-up computes is logged at the first entry point (non-debug lines only;
  the sync engine attaches services before it can take events).

Everything else, down to votequorum.c's quirks (8-bit quorum, tie breakers learnt
from quorate views only, the signed member-count test of auto_tie_breaker, the order
of its node list), follows the C code: tests replay captures of real nodes and match
their NODEINFOs byte for byte and their VOTEQ/QUORUM log lines line for line.
"""

from __future__ import annotations

import enum
import os
import struct
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from quorum.arithmetic import (
    ClusterNode,
    NodeFlags,
    NodeState,
    Note,
    QuorumConfig,
    QuorumConfigError,
    Votequorum,
)

from ..lib import votequorum as vqlib
from ..lib.common import TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT, CsError, response_header
from ..wire import RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import LibConnection, Service
from .layouts import QDEVICE_NAME_MAX, layouts

SERVICE_ID = 5
NODEINFO_SIZE = 32
QDEVICE_NODEID = 0
UNSENT_MAX = 64
"""RECONFIGUREs kept while the ring cannot take them; more are refused (NO_RESOURCES)."""

__all__ = [
    "EvTrackingStore", "FileEvTrackingStore", "MemoryEvTrackingStore", "NodeFlags", "NodeInfo", "NodeState",
    "QdeviceReg", "QdeviceReconfigure", "QuorumChanged", "ReconfigParam", "Reconfigure", "VotequorumService",
    "VqFn", "arithmetic_config", "parse_nodeinfo_untrusted",
]


class VqFn(enum.IntEnum):
    NODEINFO = 0
    RECONFIGURE = 1
    QDEVICE_REG = 2
    QDEVICE_RECONFIGURE = 3


class ReconfigParam(enum.IntEnum):
    EXPECTED_VOTES = 1
    NODE_VOTES = 2
    CANCEL_WFA = 3


QDEVICE_UNREGISTER = 0
QDEVICE_REGISTER = 1


# -- exec messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeInfo:
    nodeid: int
    votes: int
    expected_votes: int
    flags: int
    header: ServiceHeader | None = None

    def pack(self) -> bytes:
        h = self.header or ServiceHeader.for_function(SERVICE_ID, VqFn.NODEINFO, NODEINFO_SIZE)
        return _NODEINFO.pack(h.id, h.pad0, h.size, h.pad1, self.nodeid, self.votes, self.expected_votes,
                              self.flags)


def _nodeinfo_struct() -> struct.Struct:
    flat = flat_format(layouts("<").votequorum_nodeinfo)
    assert flat.names == ("header.id", "header.pad0", "header.size", "header.pad1", "nodeid", "votes",
                          "expected_votes", "flags"), flat.names
    s = struct.Struct(flat.fmt)
    assert s.size == NODEINFO_SIZE
    return s


_NODEINFO = _nodeinfo_struct()


def parse_nodeinfo_untrusted(body: bytes) -> NodeInfo:
    if len(body) < NODEINFO_SIZE:
        raise WireError(f"votequorum NODEINFO needs {NODEINFO_SIZE} bytes, has {len(body)}", len(body))
    id_, p0, size, p1, nodeid, votes, expected, flags = _NODEINFO.unpack_from(body)
    return NodeInfo(nodeid, votes, expected, flags, ServiceHeader(id_, size, p0, p1))


def _exec_header(fn: VqFn, layout: Any) -> dict[str, Any]:
    return {"id": SERVICE_ID << 16 | fn, "pad0": bytes(4), "size": layout.sizeof(), "pad1": bytes(4)}


def _parse_exec(layout: Any, body: bytes, what: str) -> Any:
    size = layout.sizeof()
    if len(body) < size:
        raise WireError(f"votequorum {what} needs {size} bytes, has {len(body)}", len(body))
    return layout.parse(body[:size])


def _c_string(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _name_buffer(name: bytes) -> bytes:
    if len(name) >= QDEVICE_NAME_MAX:
        raise ValueError(f"qdevice name of {len(name)} bytes is too long")
    return name.ljust(QDEVICE_NAME_MAX, b"\0")


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """RECONFIGURE: ``nodeid`` is the target of NODE_VOTES, the sender otherwise."""

    nodeid: int
    value: int
    param: int

    def pack(self) -> bytes:
        lay = layouts("<").votequorum_reconfigure
        return lay.build({"header": _exec_header(VqFn.RECONFIGURE, lay), "nodeid": self.nodeid,
                          "value": self.value, "param": self.param, "pad0": bytes(3), "tail": bytes(4)})

    @classmethod
    def parse_untrusted(cls, body: bytes) -> "Reconfigure":
        m = _parse_exec(layouts("<").votequorum_reconfigure, body, "RECONFIGURE")
        return cls(m.nodeid, m.value, m.param)


@dataclass(frozen=True, slots=True)
class QdeviceReg:
    """QDEVICE_REG: a node's device ``name`` (un)registered."""

    operation: int
    name: bytes

    def pack(self) -> bytes:
        lay = layouts("<").votequorum_qdevice_reg
        return lay.build({"header": _exec_header(VqFn.QDEVICE_REG, lay), "operation": self.operation,
                          "name": _name_buffer(self.name), "tail": bytes(5)})

    @classmethod
    def parse_untrusted(cls, body: bytes) -> "QdeviceReg":
        m = _parse_exec(layouts("<").votequorum_qdevice_reg, body, "QDEVICE_REG")
        return cls(m.operation, _c_string(m.name))


@dataclass(frozen=True, slots=True)
class QdeviceReconfigure:
    """QDEVICE_RECONFIGURE: the device was renamed."""

    oldname: bytes
    newname: bytes

    def pack(self) -> bytes:
        lay = layouts("<").votequorum_qdevice_reconfigure
        return lay.build({"header": _exec_header(VqFn.QDEVICE_RECONFIGURE, lay),
                          "oldname": _name_buffer(self.oldname), "newname": _name_buffer(self.newname),
                          "tail": bytes(2)})

    @classmethod
    def parse_untrusted(cls, body: bytes) -> "QdeviceReconfigure":
        m = _parse_exec(layouts("<").votequorum_qdevice_reconfigure, body, "QDEVICE_RECONFIGURE")
        return cls(_c_string(m.oldname), _c_string(m.newname))


def flags_text(flags: int) -> str:
    """A NODEINFO's flags as corosync's debug log spells them out."""
    def yn(bit: NodeFlags) -> str:
        return "Yes" if flags & bit else "No"
    return (f"flags: quorate: {yn(NodeFlags.QUORATE)} Leaving: {yn(NodeFlags.LEAVING)} "
            f"WFA Status: {yn(NodeFlags.WFASTATUS)} First: {yn(NodeFlags.FIRST)} "
            f"Qdevice: {yn(NodeFlags.QDEVICE_REGISTERED)} QdeviceAlive: {yn(NodeFlags.QDEVICE_ALIVE)} "
            f"QdeviceCastVote: {yn(NodeFlags.QDEVICE_CAST_VOTE)} "
            f"QdeviceMasterWins: {yn(NodeFlags.QDEVICE_MASTER_WINS)}")


# -- what the service reports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """votequorum's decision, published at every sync activation and whenever the
    quorate flag changes outside a sync (corosync's quorum callback)."""

    quorate: bool
    members: tuple[int, ...]
    ring_id: RingId


Observer = Callable[[QuorumChanged], None]


# -- the ev_tracking file ------------------------------------------------------------------------


class EvTrackingStore(Protocol):
    """Where the expected-votes tracking barrier lives between runs."""

    def load(self) -> int:
        """The stored barrier (0 when there is none; creates it). Raises OSError when
        it can be neither read nor created."""
        ...

    def save(self, value: int) -> None:
        ...


class MemoryEvTrackingStore:
    """An ev_tracking barrier kept in memory (tests, simulations)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def load(self) -> int:
        return self.value

    def save(self, value: int) -> None:
        self.value = value


class FileEvTrackingStore:
    """``<state_dir>/ev_tracking`` as corosync keeps it: the barrier as a host-order
    u32, so a node can move between corosync and totemd."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "ev_tracking"

    def load(self) -> int:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) >= 4:
            return int(struct.unpack("=I", data[:4])[0])
        self.save(0)
        return 0

    def save(self, value: int) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o700)
        try:
            os.write(fd, struct.pack("=I", value & 0xFFFFFFFF))
            os.fdatasync(fd)
        finally:
            os.close(fd)


def arithmetic_config(cluster: Any) -> QuorumConfig:
    """The votequorum inputs of a :class:`totem.config.ClusterConfig` (its nodelist
    votes and ``quorum {}`` section)."""
    q = cluster.quorum
    return QuorumConfig(
        nodelist={n.nodeid: n.votes for n in cluster.nodes} if cluster.nodes else None,
        expected_votes=q.expected_votes or 0,
        votes=1 if q.votes is None else q.votes,
        two_node=q.two_node,
        wait_for_all=q.wait_for_all,
        last_man_standing=q.last_man_standing,
        last_man_standing_window=q.last_man_standing_window,
        auto_tie_breaker=q.auto_tie_breaker,
        auto_tie_breaker_node=q.auto_tie_breaker_node,
        allow_downscale=q.allow_downscale,
        expected_votes_tracking=q.expected_votes_tracking,
    )


# -- the service ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Client:
    tracking: bool = False
    track_flags: int = 0
    context: int = 0


class VotequorumService(Service):
    service_id = SERVICE_ID
    name = "corosync vote quorum service v1.0"
    subsys = "VOTEQ"
    exec_count = 4
    lib_name = "votequorum"

    def __init__(self, nodeid: int, expected_votes: int | None = None, votes: int = 1, *,
                 config: QuorumConfig | None = None, ev_store: EvTrackingStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``config`` (from :func:`arithmetic_config`), or just ``expected_votes`` and
        ``votes`` as corosync reads them without a nodelist. ``ev_store`` is used when
        the config tracks expected votes (in memory if None)."""
        super().__init__(nodeid)
        if config is None:
            config = QuorumConfig(expected_votes=expected_votes or 0, votes=votes)
        self.clock = clock
        self.ev_store: EvTrackingStore = ev_store if ev_store is not None else MemoryEvTrackingStore()
        barrier = 0
        if config.tracks_expected_votes:
            try:
                barrier = self.ev_store.load()
            except OSError as exc:
                raise QuorumConfigError(f"Unable to load ev_tracking file! ({exc})") from None
        self.vq = Votequorum(nodeid, config, ev_tracking_barrier=barrier)
        self.ring_id = RingId(0, 0)
        """The ring of the last sync (corosync's quorum_ringid)."""
        self.qdevice_name = b""
        """A device name learnt from another node's QDEVICE_REG (never registered here)."""
        self.observers: list[Observer] = []
        self.clients: dict[int, _Client] = {}
        self.trackers: list[int] = []
        """Tracking connections, most recent first (the order corosync notifies them in)."""
        self._nodeinfo_sent = False
        self._unsent: deque[bytes] = deque()
        # What the start-up computation produced is held back until the first entry
        # point: the sync engine attaches services before it can take events. Its
        # quorum callback is not replayed (nobody can track yet; the quorum service
        # reads the start-up decision in set_provider), nor its debug lines.
        self._held: list[Note] = []
        for note in self.vq.take_notes():
            if note.kind == "ev_tracking":
                self._save_barrier(note.value, self._held.append)
            elif note.kind == "log" and note.level != "debug":
                self._held.append(note)

    # -- views ------------------------------------------------------------------------------------

    @property
    def nodes(self) -> dict[int, ClusterNode]:
        """Every node votequorum knows (not the device slot), by nodeid."""
        return self.vq.nodes

    @property
    def quorate(self) -> bool:
        return self.vq.cluster_is_quorate

    @property
    def total_votes(self) -> int:
        """Votes of the nodes in MEMBER state (no device)."""
        return sum(n.votes for n in self.vq.nodes.values() if n.state == NodeState.MEMBER)

    def add_observer(self, fn: Observer) -> None:
        self.observers.append(fn)

    def nodeinfo_message(self) -> bytes:
        m = self.vq.local_nodeinfo()
        return NodeInfo(m.nodeid, m.votes, m.expected_votes, m.flags).pack()

    def _own_nodeinfo(self) -> bytes:
        """This node's NODEINFO, logged as corosync logs one it sends."""
        self.log("debug", flags_text(self.vq.us.flags))
        return self.nodeinfo_message()

    def device_nodeinfo_message(self) -> bytes:
        m = self.vq.device_nodeinfo()
        return NodeInfo(m.nodeid, m.votes, m.expected_votes, m.flags).pack()

    def quorum_status(self) -> dict[str, Any]:
        """What ``totemctl status`` / ``totemctl quorum`` show (JSON-ready)."""
        vq = self.vq
        info = vq.info()
        return {
            "nodeid": self.nodeid,
            "ring_id": str(self.ring_id),
            "quorate": info.quorate,
            "members": list(vq.quorum_members),
            "total_votes": info.total_votes,
            "expected_votes": info.expected_votes,
            "highest_expected": info.highest_expected,
            "quorum": info.quorum,
            "flags": list(info.flag_names),
            "wait_for_all_status": info.wait_for_all_status,
            "ev_barrier": info.ev_barrier,
            "ev_tracking_barrier": info.ev_tracking_barrier if vq.ev_tracking else None,
            "lms_deadline": self.next_deadline(),
            "qdevice_votes": info.qdevice_votes,
            "nodes": [
                {"nodeid": n, "votes": s.votes, "expected_votes": s.expected_votes,
                 "state": NodeState(s.state).name, "flags": [f.name for f in NodeFlags if s.flags & f]}
                for n, s in sorted(vq.nodes.items())
            ],
        }

    def runtime_cmap(self) -> dict[str, tuple[str, int]]:
        """The ``runtime.votequorum.*`` keys corosync would hold now: key -> (type, value)."""
        vq = self.vq
        out: dict[str, tuple[str, int]] = {
            "runtime.votequorum.this_node_id": ("u32", self.nodeid),
            "runtime.votequorum.two_node": ("u8", int(vq.two_node)),
            "runtime.votequorum.ev_barrier": ("u32", vq.ev_barrier),
        }
        if vq.wait_for_all:
            out["runtime.votequorum.wait_for_all_status"] = ("u8", int(vq.wait_for_all_status))
        if vq.initial_atb or vq.atb:
            out["runtime.votequorum.atb_type"] = ("u32", int(vq.atb))
        if vq.lowest_node_id >= 0:
            out["runtime.votequorum.lowest_node_id"] = ("u32", vq.lowest_node_id)
            out["runtime.votequorum.highest_node_id"] = ("u32", vq.highest_node_id)
        if vq.ev_tracking:
            out["runtime.votequorum.ev_tracking_barrier"] = ("u32", vq.ev_tracking_barrier)
        return out

    # -- time -----------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is due (the last_man_standing window), on ``clock``."""
        deadline = self.vq.lms_deadline
        return None if deadline is None else deadline / 1000.0

    def handle_timer(self, now: float) -> None:
        """Fire the last_man_standing window if ``now`` (on ``clock``) has reached it."""
        due = self.next_deadline()
        deadline = self.vq.lms_deadline
        if due is None or deadline is None or now < due:
            return
        self.vq.tick(deadline)
        self._drain()

    # -- what the arithmetic asks for ------------------------------------------------------------------

    def _drain(self) -> None:
        notes = self.vq.take_notes()
        if self._held:
            notes, self._held = self._held + notes, []
        for note in notes:
            self._handle(note)

    def _handle(self, note: Note) -> None:
        if note.kind == "log":
            self.log(note.level, note.text)
        elif note.kind == "expected":
            self.log("debug", "Sending expected votes callback")
            for conn, context in self._tracking():
                self.event(conn, vqlib.encode_expectedvotes_notification(context, note.value))
        elif note.kind == "quorum":
            self._publish()
        elif note.kind == "ev_tracking":
            self._save_barrier(note.value, self._handle)

    def _save_barrier(self, value: int, report: Callable[[Note], None]) -> None:
        try:
            self.ev_store.save(value)
        except OSError:
            report(Note("log", level="warning", text="Unable to update ev_tracking_barrier on disk data!!!"))

    def _publish(self) -> None:
        ev = QuorumChanged(self.vq.cluster_is_quorate, self.vq.quorum_members, self.ring_id)
        for fn in self.observers:
            fn(ev)
        self._emit(ev)
        self._notify_quorum(self._tracking())

    def _tracking(self) -> list[tuple[int, int]]:
        """(connection, context) of every tracking client, in notification order."""
        return [(conn, self.clients[conn].context) for conn in self.trackers]

    def _notification_nodes(self) -> tuple[tuple[int, int], ...]:
        vq = self.vq
        nodes = tuple((n, int(vq.nodes[n].state)) for n in vq.order)
        if vq.us.flags & NodeFlags.QDEVICE_REGISTERED:
            nodes += ((QDEVICE_NODEID, int(vq.device.state)),)
        return nodes

    def _notify_quorum(self, targets: list[tuple[int, int]]) -> None:
        quorate = self.vq.cluster_is_quorate
        self.log("debug", f"Sending quorum callback, quorate = {int(quorate)}")
        nodes = self._notification_nodes()
        for conn, context in targets:
            self.event(conn, vqlib.encode_quorum_notification(quorate, context, nodes))

    def _notify_nodelist(self, targets: list[tuple[int, int]]) -> None:
        self.log("debug", f"Sending nodelist callback. ring_id = {self.ring_id}")
        for conn, context in targets:
            self.event(conn, vqlib.encode_nodelist_notification(context, self.ring_id, self.vq.quorum_members))

    def _mcast(self, body: bytes) -> bool:
        """Multicast, or keep it for :meth:`flush_pending`; False when nothing more fits."""
        if not self._unsent and self.multicast(body):
            return True
        if len(self._unsent) >= UNSENT_MAX:
            return False
        self._unsent.append(body)
        return True

    def flush_pending(self) -> None:
        while self._unsent and self.multicast(self._unsent[0]):
            self._unsent.popleft()

    # -- sync ---------------------------------------------------------------------------------------------

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._nodeinfo_sent = False
        self.vq.membership_changed(members, self.clock() * 1000.0)
        self.ring_id = ring_id
        self._drain()

    def sync_process(self) -> tuple[list[bytes], bool]:
        if self._nodeinfo_sent:
            return [], True
        self._nodeinfo_sent = True
        out = [self._own_nodeinfo(), self.device_nodeinfo_message()]
        if self.qdevice_name:
            out.append(QdeviceReg(QDEVICE_REGISTER, self.qdevice_name).pack())
        self._notify_nodelist(self._tracking())
        return out, True

    def sync_activate(self) -> None:
        self.vq.sync_activate()
        self._drain()

    # -- exec messages ------------------------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        if fn == VqFn.NODEINFO:
            self._deliver_nodeinfo(sender, parse_nodeinfo_untrusted(body))
        elif fn == VqFn.RECONFIGURE:
            self._deliver_reconfigure(sender, Reconfigure.parse_untrusted(body))
        elif fn == VqFn.QDEVICE_REG:
            self._deliver_qdevice_reg(sender, QdeviceReg.parse_untrusted(body))
        elif fn == VqFn.QDEVICE_RECONFIGURE:
            m = QdeviceReconfigure.parse_untrusted(body)
            self.log("debug", f"Received qdevice name change req from node {sender} "
                              f"[from: {m.oldname.decode(errors='replace')} to: {m.newname.decode(errors='replace')}]")
            if m.oldname == self.qdevice_name:
                self.log("debug", "Allowing qdevice rename")
                self.qdevice_name = m.newname
        self._drain()

    def _deliver_nodeinfo(self, sender: int, m: NodeInfo) -> None:
        self.log("debug", f"got nodeinfo message from cluster node {sender}")
        self.log("debug", f"nodeinfo message[{m.nodeid}]: votes: {m.votes}, expected: {m.expected_votes} "
                          f"flags: {m.flags}")
        if m.nodeid != QDEVICE_NODEID:
            self.log("debug", flags_text(m.flags))
        if not self.vq.node_info(m.nodeid, m.votes, m.expected_votes, m.flags, sender=sender):
            # corosync fails an assertion here and dies; the message is dropped instead
            self.log("error", f"device nodeinfo from node {sender} before its own nodeinfo - ignored")

    def _deliver_reconfigure(self, sender: int, m: Reconfigure) -> None:
        self.log("debug", f"got reconfigure message from cluster node {sender} for {m.nodeid}")
        if m.param == ReconfigParam.EXPECTED_VOTES:
            self.vq.set_expected(m.value)
        elif m.param == ReconfigParam.NODE_VOTES:
            self.vq.set_votes(m.nodeid, m.value)
        elif m.param == ReconfigParam.CANCEL_WFA:
            self.vq.cancel_wait_for_all(m.nodeid)

    def _deliver_qdevice_reg(self, sender: int, m: QdeviceReg) -> None:
        name = m.name.decode(errors="replace")
        self.log("debug", f"Received qdevice op {m.operation} req from node {sender} [{name}]")
        if m.operation == QDEVICE_REGISTER:
            if sender != self.nodeid:
                if not self.qdevice_name:
                    self.log("debug", "Remote qdevice name recorded")
                    self.qdevice_name = m.name
            elif not self.vq.us.flags & NodeFlags.QDEVICE_REGISTERED:
                # our own sync re-announcing a remote name: no registration is under way here
                self.log("warning", "Unable to determine origin of the qdevice register call!")
        elif m.operation == QDEVICE_UNREGISTER:
            if not any(s.state == NodeState.MEMBER and s.flags & NodeFlags.QDEVICE_REGISTERED
                       for s in self.vq.nodes.values()):
                self.qdevice_name = b""

    # -- operator actions ---------------------------------------------------------------------------------

    def reload(self, config: QuorumConfig) -> None:
        """The configuration was reloaded (``corosync-cfgtool -R``, nodelist or quorum
        keys changed): re-read what votequorum re-reads and announce it."""
        us = self.vq.us
        old_votes, old_expected = us.votes, us.expected_votes
        self.vq.read_config(config, runtime=True)
        self._drain()
        self._mcast(self._own_nodeinfo())
        self._mcast(self.device_nodeinfo_message())
        if us.votes != old_votes and not self._mcast(
                Reconfigure(self.nodeid, us.votes, ReconfigParam.NODE_VOTES).pack()):
            self.log("error", "Failed to send new votes message to other nodes")
        if us.expected_votes != old_expected and not self._mcast(
                Reconfigure(self.nodeid, us.expected_votes, ReconfigParam.EXPECTED_VOTES).pack()):
            self.log("error", "Failed to send expected votes message to other nodes")

    def cancel_wait_for_all(self) -> None:
        """cmap ``quorum.cancel_wait_for_all`` set to 1: tell every node to stop waiting."""
        if not self._mcast(Reconfigure(self.nodeid, 0, ReconfigParam.CANCEL_WFA).pack()):
            self.log("error", "Failed to send Cancel WFA message to other nodes")

    def leave_message(self) -> bytes | None:
        """The NODEINFO with LEAVING to multicast before a clean shutdown (only with
        allow_downscale), or None."""
        return None if self.vq.leave() is None else self._own_nodeinfo()

    # -- client library ----------------------------------------------------------------------------------

    def lib_connect(self, conn: LibConnection) -> None:
        self.clients[conn.id] = _Client()

    def lib_disconnect(self, conn: int) -> None:
        self.clients.pop(conn, None)
        if conn in self.trackers:
            self.trackers.remove(conn)

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        client = self.clients.setdefault(conn, _Client())
        if msg_id == vqlib.ReqId.GETINFO:
            self._lib_getinfo(conn, vqlib.decode_getinfo(data))
        elif msg_id == vqlib.ReqId.SETEXPECTED:
            self._lib_setexpected(conn, vqlib.decode_setexpected(data))
        elif msg_id == vqlib.ReqId.SETVOTES:
            self._lib_setvotes(conn, *vqlib.decode_setvotes(data))
        elif msg_id == vqlib.ReqId.TRACKSTART:
            self._lib_trackstart(conn, client, *vqlib.decode_trackstart(data))
        elif msg_id == vqlib.ReqId.TRACKSTOP:
            error = CsError.OK if client.tracking else CsError.NOT_EXIST
            if client.tracking:
                client.tracking = False
                self.trackers.remove(conn)
            self.respond(conn, vqlib.encode_status(error))
        elif vqlib.ReqId.QDEVICE_REGISTER <= msg_id <= vqlib.ReqId.QDEVICE_MASTER_WINS:
            vqlib.decode_qdevice(msg_id, data)
            if msg_id == vqlib.ReqId.QDEVICE_REGISTER:
                self.log("info", "Registration of quorum device refused: totemd does not host quorum devices")
                self.respond(conn, vqlib.encode_status(CsError.ACCESS))
            else:
                # nothing is registered here, as in corosync without a device
                self.respond(conn, vqlib.encode_status(CsError.NOT_EXIST))
        else:
            self.respond(conn, response_header(0, 24, CsError.INVALID_PARAM))

    def _lib_getinfo(self, conn: int, nodeid: int) -> None:
        self.log("debug", f"got getinfo request on {conn} for node {nodeid}")
        info = self.vq.getinfo(nodeid)
        if info is None:
            res = vqlib.GetInfo(CsError.NOT_EXIST)
        else:
            res = vqlib.GetInfo(CsError.OK, info.nodeid, info.state, info.node_votes, info.expected_votes,
                                info.highest_expected, info.total_votes, info.quorum, info.flags,
                                info.qdevice_votes, self.qdevice_name)
        self.respond(conn, vqlib.encode_getinfo_response(res))
        self.log("debug", f"getinfo response error: {int(res.error)}")

    def _lib_setexpected(self, conn: int, expected: int) -> None:
        error = CsError.OK
        if not self.vq.lib_set_expected(expected):
            error = CsError.INVALID_PARAM
        elif not self._mcast(Reconfigure(self.nodeid, expected, ReconfigParam.EXPECTED_VOTES).pack()):
            error = CsError.NO_RESOURCES
        self.respond(conn, vqlib.encode_status(error))

    def _lib_setvotes(self, conn: int, nodeid: int, votes: int) -> None:
        ok = self.vq.lib_set_votes(nodeid, votes)
        if ok is None:
            error = CsError.NAME_NOT_FOUND
        elif not ok:
            error = CsError.INVALID_PARAM
        elif not self._mcast(Reconfigure(nodeid, votes, ReconfigParam.NODE_VOTES).pack()):
            error = CsError.NO_RESOURCES
        else:
            error = CsError.OK
        self.respond(conn, vqlib.encode_status(error))

    def _lib_trackstart(self, conn: int, client: _Client, context: int, flags: int) -> None:
        if flags & (TRACK_CURRENT | TRACK_CHANGES):
            self.log("debug", f"sending initial status to {conn}")
            self._notify_nodelist([(conn, context)])
            self._notify_quorum([(conn, context)])
        error = CsError.OK
        if client.tracking:
            error = CsError.EXIST
        elif flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY):
            client.tracking, client.track_flags, client.context = True, flags, context
            self.trackers.insert(0, conn)
        self.respond(conn, vqlib.encode_status(error))

