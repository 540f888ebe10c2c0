"""CPG (service 2): exec messages, the member table, the sync step and the clients.

Every node keeps the same table of group members, (nodeid, pid, group), built from
the PROCJOIN/PROCLEAVE/JOINLIST messages delivered in agreed order. At each sync a
node multicasts its DOWNLIST (nodes gone since the last sync) and a JOINLIST of
its own members; at activation it drops members of the nodes that left, adds those
announced by other nodes' joinlists and drops remote members nobody announced
(spec services-wire.md §3.4-3.5).

The client side follows corosync 3.1.7's exec/cpg.c: each libcpg connection has a
state (UNJOINED, JOIN_STARTED, JOIN_COMPLETED, LEAVE_STARTED); requests are answered
at once and the exec messages they cause take effect when delivered. Every change
of a group's membership is reported to the local connections of that group as a
CONFCHG event (and, for logs and tests, as a :class:`CpgConfchg` event), every
multicast as a DELIVER (or PARTIAL_DELIVER) event, every completed sync as a
TOTEM_CONFCHG (spec client-ipc.md §2.2). The protocol's bytes live in
:mod:`totem.lib.cpg`.

Group names keep the bytes a sender left after the name and in the padding of the
name structure (real senders leave garbage there), so a joinlist rebuilt from the
table, or the PROCJOIN made from a client's JOIN, carries exactly the bytes corosync
would copy into it.
"""

from __future__ import annotations

import enum
import functools
import itertools
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..lib.common import CsError, response_header
from ..lib.cpg import (
    CPG_MAX_NAME_LENGTH,
    JOIN_FLAG_INITIAL_TOTEM_CONF,
    MEMBERSHIP_MAX,
    Address,
    ConfchgCallback,
    CpgName,
    CpgReason,
    CpgRequestId,
    CpgResponseId,
    DeliverCallback,
    IterationNextResponse,
    IterationType,
    MembershipResponse,
    PartialDeliverCallback,
    PartialType,
    TotemConfchgCallback,
    iteration_initialize_response,
    local_get_response,
    parse_iteration_handle_untrusted,
    parse_iteration_initialize_untrusted,
    parse_join_untrusted,
    parse_leave_untrusted,
    parse_mcast_untrusted as parse_mcast_request_untrusted,
    parse_membership_request_untrusted,
    parse_partial_mcast_untrusted as parse_partial_mcast_request_untrusted,
    status_response,
)
from ..pg import MESSAGE_SIZE_MAX
from ..wire import ENVELOPE_A, RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import LibConnection, LibDisconnect, Service
from .layouts import PROCESSOR_COUNT_MAX, layouts

SERVICE_ID = 2
PROCJOIN_SIZE = 168
JOINLIST_HEADER_SIZE = 24
JOINLIST_ENTRY_SIZE = 144
MCAST_HEADER_SIZE = 184
PARTIAL_MCAST_HEADER_SIZE = 200
DOWNLIST_SIZE = 1568
DOWNLIST_OLD_SIZE = 1560
EXEC_SIZE_MAX = MESSAGE_SIZE_MAX - len(ENVELOPE_A)
"""The largest exec message totempg carries on group ``a``."""
PENDING_LIMIT_BYTES = 16 * 1024 * 1024
"""Refused exec messages one connection may have waiting (see :class:`CpgService`)."""


class CpgFn(enum.IntEnum):
    PROCJOIN = 0
    PROCLEAVE = 1
    JOINLIST = 2
    MCAST = 3
    DOWNLIST_OLD = 4
    DOWNLIST = 5
    PARTIAL_MCAST = 6


# -- messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcJoin:
    """PROCJOIN (fn 0) or PROCLEAVE (fn 1): one process joins or leaves a group."""

    group: CpgName
    pid: int
    reason: int
    fn: int = CpgFn.PROCJOIN
    header: ServiceHeader | None = None
    pad0: bytes = bytes(4)
    pad1: bytes = bytes(4)

    def pack(self) -> bytes:
        h = self.header or ServiceHeader.for_function(SERVICE_ID, self.fn, PROCJOIN_SIZE)
        g = self.group
        return _S.procjoin.pack(h.id, h.pad0, h.size, h.pad1, g.length, g.pad, g.value,
                                self.pid, self.pad0, self.reason, self.pad1)


@dataclass(frozen=True, slots=True)
class JoinListEntry:
    pid: int
    group: CpgName
    pad: bytes = bytes(4)


@dataclass(frozen=True, slots=True)
class JoinList:
    """JOINLIST (fn 2): every (pid, group) of the sender's own processes."""

    entries: tuple[JoinListEntry, ...]
    header: tuple | None = None
    """(id, pad0, size, pad1, error, pad2) as received; None builds corosync's."""

    def pack(self) -> bytes:
        size = JOINLIST_HEADER_SIZE + JOINLIST_ENTRY_SIZE * len(self.entries)
        h = self.header or (SERVICE_ID << 16 | CpgFn.JOINLIST, bytes(4), size, bytes(4), 0, bytes(4))
        out = [_S.joinlist_header.pack(*h)]
        for e in self.entries:
            g = e.group
            out.append(_S.joinlist_entry.pack(e.pid, e.pad, g.length, g.pad, g.value))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class DownList:
    """DOWNLIST (fn 5): the sender's old CPG membership size and the nodes it lost."""

    old_members: int
    left_nodes: int
    nodeids: tuple[int, ...] = (0,) * PROCESSOR_COUNT_MAX
    """All 384 slots; only the first ``left_nodes`` mean anything, the rest may be
    stale from an earlier sync (corosync reuses the buffer)."""
    header: ServiceHeader | None = None
    pad0: bytes = bytes(4)
    pad1: bytes = bytes(4)

    @property
    def left(self) -> tuple[int, ...]:
        return self.nodeids[:self.left_nodes]

    def pack(self) -> bytes:
        if len(self.nodeids) != PROCESSOR_COUNT_MAX:
            raise ValueError(f"a downlist has {PROCESSOR_COUNT_MAX} nodeid slots")
        h = self.header or ServiceHeader.for_function(SERVICE_ID, CpgFn.DOWNLIST, DOWNLIST_SIZE)
        return _S.downlist.pack(h.id, h.pad0, h.size, h.pad1, self.old_members, self.pad0,
                                self.left_nodes, self.pad1, *self.nodeids)


@dataclass(frozen=True, slots=True)
class CpgMcast:
    """MCAST (fn 3): an application message from process ``pid`` to ``group``."""

    group: CpgName
    pid: int
    data: bytes
    source_nodeid: int = 0
    source_conn: int = 0
    msglen: int | None = None
    """As received (None: ``len(data)``)."""
    header: ServiceHeader | None = None
    pads: tuple[bytes, bytes, bytes] = (bytes(4), bytes(4), bytes(4))

    def pack(self) -> bytes:
        msglen = len(self.data) if self.msglen is None else self.msglen
        h = self.header or ServiceHeader.for_function(SERVICE_ID, CpgFn.MCAST, MCAST_HEADER_SIZE + len(self.data))
        g = self.group
        p0, p1, p2 = self.pads
        return _S.mcast.pack(h.id, h.pad0, h.size, h.pad1, g.length, g.pad, g.value, msglen, p0,
                             self.pid, p1, self.source_nodeid, p2, self.source_conn) + self.data


@dataclass(frozen=True, slots=True)
class CpgPartialMcast:
    """PARTIAL_MCAST (fn 6): one fragment of a large application message."""

    group: CpgName
    pid: int
    msglen: int
    """Length of the whole message."""
    type: int
    data: bytes
    """The fragment."""
    source_nodeid: int = 0
    source_conn: int = 0

    def pack(self) -> bytes:
        h = ServiceHeader.for_function(SERVICE_ID, CpgFn.PARTIAL_MCAST, PARTIAL_MCAST_HEADER_SIZE + len(self.data))
        g = self.group
        z = bytes(4)
        return _S.partial_mcast.pack(h.id, h.pad0, h.size, h.pad1, g.length, g.pad, g.value, self.msglen, z,
                                     len(self.data), z, self.pid, z, self.type, z, self.source_nodeid, z,
                                     self.source_conn) + self.data


class _Structs:
    def __init__(self) -> None:
        lay = layouts("<")
        hdr = ("header.id", "header.pad0", "header.size", "header.pad1")
        name = ("group_name.length", "group_name.pad", "group_name.value")
        source = ("source.nodeid", "source.pad", "source.conn")
        pj = flat_format(lay.cpg_procjoin)
        assert pj.names == hdr + name + ("pid", "pad0", "reason", "pad1"), pj.names
        jh = flat_format(lay.cpg_joinlist_fixed)
        assert jh.names == ("id", "pad0", "size", "pad1", "error", "pad2"), jh.names
        je = flat_format(lay.cpg_joinlist_entry)
        assert je.names == ("pid", "pad") + name, je.names
        dl = flat_format(lay.cpg_downlist)
        assert dl.names[:8] == hdr + ("old_members", "pad0", "left_nodes", "pad1"), dl.names[:8]
        assert len(dl.names) == 8 + PROCESSOR_COUNT_MAX
        mc = flat_format(lay.cpg_mcast_fixed)
        assert mc.names == hdr + name + ("msglen", "pad0", "pid", "pad1") + source, mc.names
        pm = flat_format(lay.cpg_partial_mcast_fixed)
        assert pm.names == hdr + name + ("msglen", "pad0", "fraglen", "pad1", "pid", "pad2", "type",
                                         "pad3") + source, pm.names
        self.procjoin = struct.Struct(pj.fmt)
        self.joinlist_header = struct.Struct(jh.fmt)
        self.joinlist_entry = struct.Struct(je.fmt)
        self.downlist = struct.Struct(dl.fmt)
        self.mcast = struct.Struct(mc.fmt)
        self.partial_mcast = struct.Struct(pm.fmt)
        assert self.procjoin.size == PROCJOIN_SIZE
        assert self.joinlist_header.size == JOINLIST_HEADER_SIZE
        assert self.joinlist_entry.size == JOINLIST_ENTRY_SIZE
        assert self.downlist.size == DOWNLIST_SIZE
        assert self.mcast.size == MCAST_HEADER_SIZE
        assert self.partial_mcast.size == PARTIAL_MCAST_HEADER_SIZE


_S = _Structs()


def _name(length: int, pad: bytes, value: bytes, offset: int) -> CpgName:
    if length > CPG_MAX_NAME_LENGTH:
        raise WireError(f"CPG group name length {length} exceeds {CPG_MAX_NAME_LENGTH}", offset)
    return CpgName(length, value, pad)


def parse_procjoin_untrusted(body: bytes) -> ProcJoin:
    """Decode a PROCJOIN or PROCLEAVE."""
    if len(body) < PROCJOIN_SIZE:
        raise WireError(f"CPG PROCJOIN needs {PROCJOIN_SIZE} bytes, has {len(body)}", len(body))
    id_, p0, size, p1, glen, gpad, gval, pid, pad0, reason, pad1 = _S.procjoin.unpack_from(body)
    return ProcJoin(_name(glen, gpad, gval, 16), pid, reason, id_ & 0xFFFF, ServiceHeader(id_, size, p0, p1),
                    pad0, pad1)


def parse_joinlist_untrusted(body: bytes) -> JoinList:
    """Decode a JOINLIST; its ``size`` (which receivers walk to) must fit in ``body``."""
    if len(body) < JOINLIST_HEADER_SIZE:
        raise WireError(f"CPG JOINLIST of {len(body)} bytes is shorter than its 24-byte header", 0)
    header = _S.joinlist_header.unpack_from(body)
    size = header[2]
    if not JOINLIST_HEADER_SIZE <= size <= len(body):
        raise WireError(f"CPG JOINLIST size {size} outside 24..{len(body)}", 8)
    if (size - JOINLIST_HEADER_SIZE) % JOINLIST_ENTRY_SIZE:
        raise WireError(f"CPG JOINLIST size {size} is not 24 + 144*n", 8)
    entries = []
    for pos in range(JOINLIST_HEADER_SIZE, size, JOINLIST_ENTRY_SIZE):
        pid, pad, glen, gpad, gval = _S.joinlist_entry.unpack_from(body, pos)
        entries.append(JoinListEntry(pid, _name(glen, gpad, gval, pos + 8), pad))
    return JoinList(tuple(entries), header)


def parse_downlist_untrusted(body: bytes) -> DownList:
    if len(body) < DOWNLIST_SIZE:
        raise WireError(f"CPG DOWNLIST needs {DOWNLIST_SIZE} bytes, has {len(body)}", len(body))
    vals = _S.downlist.unpack_from(body)
    id_, p0, size, p1, old, pad0, left, pad1 = vals[:8]
    if left > PROCESSOR_COUNT_MAX:
        raise WireError(f"CPG DOWNLIST names {left} nodes (at most {PROCESSOR_COUNT_MAX})", 24)
    return DownList(old, left, tuple(vals[8:]), ServiceHeader(id_, size, p0, p1), pad0, pad1)


def parse_mcast_untrusted(body: bytes) -> CpgMcast:
    """Decode a CPG MCAST; ``msglen`` bytes of payload must follow the 184-byte header."""
    if len(body) < MCAST_HEADER_SIZE:
        raise WireError(f"CPG MCAST of {len(body)} bytes is shorter than its 184-byte header", 0)
    id_, p0, size, p1, glen, gpad, gval, msglen, pad0, pid, pad1, snode, pad2, sconn = _S.mcast.unpack_from(body)
    if MCAST_HEADER_SIZE + msglen > len(body):
        raise WireError(f"CPG MCAST msglen {msglen} exceeds the {len(body) - MCAST_HEADER_SIZE} bytes present",
                        152)
    data = body[MCAST_HEADER_SIZE:MCAST_HEADER_SIZE + msglen]
    return CpgMcast(_name(glen, gpad, gval, 16), pid, data, snode, sconn, msglen,
                    ServiceHeader(id_, size, p0, p1), (pad0, pad1, pad2))


def parse_partial_mcast_untrusted(body: bytes) -> CpgPartialMcast:
    """Decode a PARTIAL_MCAST; ``fraglen`` bytes must follow the 200-byte header."""
    if len(body) < PARTIAL_MCAST_HEADER_SIZE:
        raise WireError(f"CPG PARTIAL_MCAST of {len(body)} bytes is shorter than its 200-byte header", 0)
    (_, _, _, _, glen, gpad, gval, msglen, _, fraglen, _, pid, _, type_, _, snode, _,
     sconn) = _S.partial_mcast.unpack_from(body)
    if PARTIAL_MCAST_HEADER_SIZE + fraglen > len(body):
        raise WireError(f"CPG PARTIAL_MCAST fraglen {fraglen} exceeds the "
                        f"{len(body) - PARTIAL_MCAST_HEADER_SIZE} bytes present", 160)
    data = body[PARTIAL_MCAST_HEADER_SIZE:PARTIAL_MCAST_HEADER_SIZE + fraglen]
    return CpgPartialMcast(_name(glen, gpad, gval, 16), pid, msglen, type_, data, snode, sconn)


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpgConfchg:
    """A group's membership changed, as a client of that group is told."""

    group: bytes
    members: tuple[tuple[int, int], ...]
    """(nodeid, pid) of every member after the change, in table order."""
    left: tuple[Address, ...] = ()
    joined: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class CpgTotemConfchg:
    """CPG's view of the ring after a sync (what clients get as totem confchg)."""

    ring_id: RingId
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CpgDelivered:
    """An MCAST from a process the table knows in that group, in agreed order."""

    group: bytes
    nodeid: int
    pid: int
    data: bytes


@dataclass(slots=True, order=True)
class ProcessInfo:
    nodeid: int
    pid: int
    group: CpgName = field(compare=False)


class _SyncState(enum.Enum):
    DOWNLIST = 0
    JOINLIST = 1


# -- client connections ----------------------------------------------------------------------


class CpdState(enum.IntEnum):
    """Where a connection is in joining or leaving its group (values as corosync logs them)."""

    UNJOINED = 0
    LEAVE_STARTED = 1
    JOIN_STARTED = 2
    JOIN_COMPLETED = 3


_JOINED = (CpdState.JOIN_STARTED, CpdState.JOIN_COMPLETED)
"""States in which a connection may multicast."""
_RECEIVING = (CpdState.JOIN_COMPLETED, CpdState.LEAVE_STARTED)
"""States in which a connection gets its group's events."""


@dataclass(eq=False, slots=True)
class _Client:
    """One libcpg connection (corosync's ``cpg_pd``)."""

    info: LibConnection
    serial: int
    """Unique for the service's lifetime (connection ids may be reused)."""
    state: CpdState = CpdState.UNJOINED
    group: CpgName = CpgName(0)
    pid: int = 0
    flags: int = 0
    initial_totem_conf_sent: bool = False
    transition_counter: int = 0
    """Confchg events sent to it: a fragmented send is interrupted when this moves."""
    initial_transition_counter: int = 0
    listed: bool = True
    """False after FINALIZE: it gets no more events and no longer counts for JOIN checks."""
    dropped: bool = False
    """Its backlog overflowed; the daemon was asked to close it."""

    @property
    def conn(self) -> int:
        return self.info.id


@dataclass(eq=False, slots=True)
class _Outbox:
    """Exec messages of one connection that :meth:`Service.multicast` refused, in order."""

    conn: int
    messages: deque[bytes] = field(default_factory=deque)
    size: int = 0


@dataclass(eq=False, slots=True)
class _Iteration:
    owner: int
    """Serial of the connection that opened it."""
    items: list[tuple[CpgName, int, int]]
    pos: int = -1
    """Index of the last item returned; -1 before the first (and after NO_SECTIONS)."""


_ERROR_TRY_AGAIN = response_header(0, 24, CsError.TRY_AGAIN)
"""corosync's generic refusal of a request that cannot be sent now (id 0)."""
_ERROR_INVALID = response_header(0, 24, CsError.INVALID_PARAM)
_ZC_RESPONSE_IDS = {
    CpgRequestId.ZC_ALLOC: 0,
    CpgRequestId.ZC_FREE: 0,
    CpgRequestId.ZC_EXECUTE: CpgResponseId.MCAST,
}
"""The ids corosync 3.1.7 puts on its zero-copy responses (not the ZC_* response ids)."""


# -- the service -----------------------------------------------------------------------


class CpgService(Service):
    """CPG for one node: the member table, its sync, and the libcpg connections.

    The daemon drives the client side through the :class:`Service` hooks
    (``lib_connect``, ``lib_request``, ``lib_disconnect``) and gets responses and
    events back as ``LibResponse``/``LibEvent`` (and ``LibDisconnect`` for a
    connection that overflowed its backlog).

    Sending contract. Exec messages caused by requests go out through
    :meth:`multicast`, which refuses them while a sync runs or the transport is
    full. JOIN and LEAVE are then answered TRY_AGAIN (as corosync answers requests
    it cannot send), so nothing is queued for them. An MCAST has no response and a
    PARTIAL_MCAST fragment is answered at once, so those are never refused: each
    connection has a FIFO of exec messages waiting to go out, and a message of a
    connection that has waiting messages queues behind them (JOIN and LEAVE of such
    a connection get TRY_AGAIN), so a connection's messages go out in request order.
    The PROCLEAVE of a connection that closes while joined is queued the same way,
    after its last multicasts. The daemon must:

    * call :meth:`flush_pending` after every step of its loop in which the transport
      may have room again (after each poll/token), outside sync; it sends waiting
      messages, round robin over connections, until one is refused;
    * watch :attr:`backlogged` (messages waiting, closed connections' included): the
      service host then holds client requests and raises libqb flow control to
      level 2, so libcpg answers further multicasts with TRY_AGAIN before sending;
    * close connections named in a ``LibDisconnect``: a connection that lets its
      FIFO grow past :data:`PENDING_LIMIT_BYTES` (it ignored flow control) loses
      the multicast that did not fit and is disconnected rather than have its
      later messages reordered or silently dropped. A fragment that does not fit is
      answered TRY_AGAIN instead (libcpg retries it).
    """

    service_id = SERVICE_ID
    name = "corosync cluster closed process group service v1.01"
    subsys = "CPG"
    exec_count = 7
    lib_name = "cpg"

    def __init__(self, nodeid: int) -> None:
        super().__init__(nodeid)
        self.process_info: list[ProcessInfo] = []
        """Every known member, sorted by nodeid then pid (ties: in order of arrival)."""
        self._joinlists: list[tuple[int, int, CpgName]] = []
        """(sender, pid, group) of this round's joinlists, newest first (as corosync lists them)."""
        self._member_list: tuple[int, ...] = ()
        self.old_member_list: tuple[int, ...] = ()
        self._downlist_nodeids = [0] * PROCESSOR_COUNT_MAX
        self._left_nodes = 0
        self._sent_old_members = 0
        self._sync_state = _SyncState.DOWNLIST
        self.last_sync_ring_id: RingId | None = None
        self._clients: dict[int, _Client] = {}
        """By connection id, oldest first."""
        self._serials = itertools.count(1)
        self._outboxes: dict[int, _Outbox] = {}
        """By connection serial, in the order they started waiting."""
        self._iterations: dict[int, _Iteration] = {}
        self._handles = itertools.count(1)
        self._handlers: dict[int, Callable[[_Client, bytes], None]] = {
            CpgRequestId.JOIN: self._lib_join,
            CpgRequestId.LEAVE: self._lib_leave,
            CpgRequestId.MCAST: self._lib_mcast,
            CpgRequestId.MEMBERSHIP: self._lib_membership,
            CpgRequestId.LOCAL_GET: self._lib_local_get,
            CpgRequestId.ITERATIONINITIALIZE: self._lib_iteration_initialize,
            CpgRequestId.ITERATIONNEXT: self._lib_iteration_next,
            CpgRequestId.ITERATIONFINALIZE: self._lib_iteration_finalize,
            CpgRequestId.FINALIZE: self._lib_finalize,
            **{zc: functools.partial(self._lib_zero_copy, res_id) for zc, res_id in _ZC_RESPONSE_IDS.items()},
            CpgRequestId.PARTIAL_MCAST: self._lib_partial_mcast,
        }

    # -- the table seen from outside ---------------------------------------------------------

    def local_members(self) -> list[ProcessInfo]:
        """This node's processes in the table (announced and delivered)."""
        return [p for p in self.process_info if p.nodeid == self.nodeid]

    def procjoin(self, group: bytes, pid: int) -> bytes:
        """The PROCJOIN for a process joining ``group`` (what a JOIN request sends)."""
        return ProcJoin(CpgName.of(group), pid, CpgReason.JOIN).pack()

    def procleave(self, group: bytes, pid: int, reason: int = CpgReason.LEAVE) -> bytes:
        """The PROCLEAVE for a local process (reason LEAVE, or PROCDOWN if it died)."""
        return ProcJoin(CpgName.of(group), pid, reason, CpgFn.PROCLEAVE).pack()

    def members_of(self, group: bytes) -> list[tuple[int, int]]:
        return [(p.nodeid, p.pid) for p in self.process_info if p.group.name == group]

    def connection_state(self, conn: int) -> CpdState | None:
        client = self._clients.get(conn)
        return None if client is None else client.state

    @property
    def backlog_bytes(self) -> int:
        """Bytes of exec messages waiting for :meth:`flush_pending`."""
        return sum(box.size for box in self._outboxes.values())

    @property
    def backlogged(self) -> bool:
        return bool(self._outboxes)

    # -- sync ---------------------------------------------------------------------------

    def downlist_message(self) -> bytes:
        self._sent_old_members = len(self.old_member_list)
        return DownList(self._sent_old_members, self._left_nodes, tuple(self._downlist_nodeids)).pack()

    def joinlist_message(self) -> bytes | None:
        own = self.local_members()
        if not own:
            return None
        return JoinList(tuple(JoinListEntry(p.pid, p.group) for p in own)).pack()

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._sync_state = _SyncState.DOWNLIST
        self._member_list = tuple(members)
        self.last_sync_ring_id = ring_id
        n = 0
        for node in self.old_member_list:
            if node not in trans:
                self._downlist_nodeids[n] = node
                n += 1
        self._left_nodes = n

    def sync_process(self) -> tuple[list[bytes], bool]:
        out = []
        if self._sync_state is _SyncState.DOWNLIST:
            out.append(self.downlist_message())
            self._sync_state = _SyncState.JOINLIST
        joinlist = self.joinlist_message()
        if joinlist is not None:
            out.append(joinlist)
        return out, True

    def sync_activate(self) -> None:
        self.old_member_list = self._member_list
        self._downlist_inform()
        self._joinlist_inform()
        self._joinlists.clear()
        ring = self._ring_id()
        self._emit(CpgTotemConfchg(ring, self._member_list))
        data = TotemConfchgCallback(ring, self._member_list).pack()
        for client in self._listed():
            self.event(client.conn, data)

    def sync_abort(self) -> None:
        self._joinlists.clear()

    def _ring_id(self) -> RingId:
        return self.last_sync_ring_id or RingId(0, 0)

    def _downlist_inform(self) -> None:
        self.log("debug", f"my downlist: members(old:{self._sent_old_members} left:{self._left_nodes})")
        gone = set(self._downlist_nodeids[:self._left_nodes])
        by_group: dict[bytes, tuple[CpgName, list[Address]]] = {}
        keep = []
        for p in self.process_info:
            if p.nodeid in gone:
                by_group.setdefault(p.group.name, (p.group, []))[1].append((p.nodeid, p.pid, CpgReason.NODEDOWN))
            else:
                keep.append(p)
        self.process_info = keep
        for key in sorted(by_group):
            group, left = by_group[key]
            self.log("debug", f"left_list_entries:{len(left)}")
            self._notify(group, left=left)

    def _joinlist_inform(self) -> None:
        joined: dict[bytes, tuple[CpgName, list[Address]]] = {}
        for i, (sender, pid, group) in enumerate(self._joinlists):
            self.log("debug", f"joinlist_messages[{i}] group:{group.printable()}, node:{sender}, pid:{pid}")
            if sender == self.nodeid:
                continue
            if self._add(sender, pid, group):
                joined.setdefault(group.name, (group, []))[1].append((sender, pid, CpgReason.NODEUP))
        for key in sorted(joined):
            group, entries = joined[key]
            self._notify(group, joined=entries)
        # zombies: remote processes that no joinlist of this round announced
        announced = {(s, pid, g) for s, pid, g in self._joinlists if s != self.nodeid}
        for p in list(self.process_info):
            if p.nodeid == self.nodeid or (p.nodeid, p.pid, p.group) in announced:
                continue
            self._leave(p.group, p.pid, p.nodeid, CpgReason.PROCDOWN)

    # -- the table ------------------------------------------------------------------------

    def _find(self, nodeid: int, pid: int, group: CpgName) -> ProcessInfo | None:
        for p in self.process_info:
            if p.nodeid == nodeid and p.pid == pid and p.group == group:
                return p
        return None

    def _add(self, nodeid: int, pid: int, group: CpgName) -> bool:
        if self._find(nodeid, pid, group) is not None:
            return False
        at = len(self.process_info)
        for i, p in enumerate(self.process_info):
            if p.nodeid > nodeid or (p.nodeid == nodeid and p.pid > pid):
                at = i
                break
        self.process_info.insert(at, ProcessInfo(nodeid, pid, group))
        return True

    def _leave(self, group: CpgName, pid: int, nodeid: int, reason: int) -> None:
        self._notify(group, left=[(nodeid, pid, reason)])
        self.process_info = [p for p in self.process_info
                             if not (p.nodeid == nodeid and p.pid == pid and p.group == group)]

    def _notify(self, group: CpgName, joined: list[Address] | None = None, left: list[Address] | None = None) -> None:
        """Report a change of ``group`` (corosync's notify_lib_joinlist): members are the
        table's entries of the group not in ``left``. A local joiner's connection becomes
        JOIN_COMPLETED first, so it gets the event too; a local leaver's (reason LEAVE)
        is UNJOINED after it."""
        joined_t, left_t = tuple(joined or ()), tuple(left or ())
        gone = {(nodeid, pid) for nodeid, pid, _ in left_t}
        members = tuple((p.nodeid, p.pid) for p in self.process_info
                        if p.group == group and (p.nodeid, p.pid) not in gone)
        self._emit(CpgConfchg(group.name, members, left=left_t, joined=joined_t))
        listed = self._listed()
        for nodeid, pid, _ in joined_t:
            if nodeid == self.nodeid:
                for c in listed:
                    if c.pid == pid and c.group == group:
                        c.state = CpdState.JOIN_COMPLETED
        data = None
        for c in listed:
            if c.state in _RECEIVING and c.group == group:
                data = data or ConfchgCallback(group, members, left_t, joined_t).pack()
                self.event(c.conn, data)
                c.transition_counter += 1
        for nodeid, pid, reason in left_t:
            if nodeid == self.nodeid and reason == CpgReason.LEAVE:
                for c in listed:
                    if c.pid == pid and c.group == group:
                        c.state, c.pid, c.group = CpdState.UNJOINED, 0, CpgName(0)
        for c in listed:
            if c.flags & JOIN_FLAG_INITIAL_TOTEM_CONF and not c.initial_totem_conf_sent:
                c.initial_totem_conf_sent = True
                self.event(c.conn, TotemConfchgCallback(self._ring_id(), self.old_member_list).pack())

    def _listed(self) -> list[_Client]:
        """Connections that get events, newest first (corosync's cpg_pd list order)."""
        return [c for c in reversed(self._clients.values()) if c.listed]

    def _knows(self, sender: int, group: CpgName) -> bool:
        """Whether the table has a process of node ``sender`` in ``group``."""
        return any(p.nodeid == sender and p.group == group for p in self.process_info)

    def _receivers(self, group: CpgName, known: bool) -> list[_Client]:
        """The local connections to deliver a multicast to ``group``: none, with a
        warning, when the sender is not ``known`` in the group."""
        out = [c for c in self._listed() if c.state in _RECEIVING and c.group == group]
        if out and not known:
            self.log("warning", "Unknown node -> we will not deliver message")
            return []
        return out

    # -- exec messages ---------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        if fn == CpgFn.PROCJOIN:
            m = parse_procjoin_untrusted(body)
            self.log("debug", f"got procjoin message from cluster node {sender} for pid {m.pid}")
            if self._add(sender, m.pid, m.group):
                self._notify(m.group, joined=[(sender, m.pid, CpgReason.JOIN)])
        elif fn == CpgFn.PROCLEAVE:
            m = parse_procjoin_untrusted(body)
            self.log("debug", f"got procleave message from cluster node {sender} for pid {m.pid}")
            self._leave(m.group, m.pid, sender, m.reason)
        elif fn == CpgFn.JOINLIST:
            jl = parse_joinlist_untrusted(body)
            self.log("debug", f"got joinlist message from node {sender}")
            for e in jl.entries:
                self._joinlists.insert(0, (sender, e.pid, e.group))
        elif fn == CpgFn.MCAST:
            mc = parse_mcast_untrusted(body)
            known = self._knows(sender, mc.group)
            if known:
                self._emit(CpgDelivered(mc.group.name, sender, mc.pid, mc.data))
            receivers = self._receivers(mc.group, known)
            if receivers:
                data = DeliverCallback(mc.group, sender, mc.pid, mc.data).pack()
                for c in receivers:
                    self.event(c.conn, data)
        elif fn == CpgFn.DOWNLIST_OLD:
            self.log("debug", f"downlist OLD from node {sender}")
        elif fn == CpgFn.DOWNLIST:
            d = parse_downlist_untrusted(body)
            self.log("debug", f"downlist left_list: {d.left_nodes} received")
        elif fn == CpgFn.PARTIAL_MCAST:
            pm = parse_partial_mcast_untrusted(body)
            self.log("debug", f"Got fragmented message from node {sender}, size = {len(pm.data)} bytes")
            receivers = self._receivers(pm.group, self._knows(sender, pm.group))
            if receivers:
                data = PartialDeliverCallback(pm.group, pm.msglen, sender, pm.pid, pm.type, pm.data).pack()
                for c in receivers:
                    self.event(c.conn, data)

    # -- client connections ------------------------------------------------------------------

    def lib_connect(self, conn: LibConnection) -> None:
        self._clients[conn.id] = _Client(conn, next(self._serials))
        self.log("debug", f"lib_init_fn: conn={conn.id}")

    def lib_disconnect(self, conn: int) -> None:
        """The connection is gone: a joined process leaves with reason PROCDOWN (after
        the multicasts it still has waiting)."""
        client = self._clients.pop(conn, None)
        if client is None:
            return
        self.log("debug", f"exit_fn for conn={conn}")
        if client.state in _JOINED:
            self._send_in_order(client, ProcJoin(client.group, client.pid, CpgReason.PROCDOWN,
                                                 CpgFn.PROCLEAVE).pack(), limited=False)
        for handle in [h for h, it in self._iterations.items() if it.owner == client.serial]:
            del self._iterations[handle]

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        """Serve one request. Raises WireError for a malformed one (except MCAST, which
        has no response: it is logged and dropped)."""
        client = self._clients.get(conn)
        if client is None:
            self.log("debug", f"request {msg_id} on unknown connection {conn} ignored")
            return
        handler = self._handlers.get(msg_id)
        if handler is None:
            self.respond(conn, _ERROR_INVALID)
            return
        handler(client, data)

    def flush_pending(self) -> None:
        """Send waiting exec messages, one per connection in turn, until one is refused
        (the next call goes on with the connection whose turn it was)."""
        boxes = self._outboxes
        while boxes:
            serial, box = next(iter(boxes.items()))
            if not self.multicast(box.messages[0]):
                return
            box.size -= len(box.messages.popleft())
            del boxes[serial]
            if box.messages:
                boxes[serial] = box  # to the back of the line

    def _send_in_order(self, client: _Client, body: bytes, limited: bool = True) -> bool:
        """Multicast ``body`` after what the connection has waiting, or make it wait.
        False (nothing done) if it would take the connection past its limit."""
        box = self._outboxes.get(client.serial)
        if box is None:
            if self.multicast(body):
                return True
            box = self._outboxes[client.serial] = _Outbox(client.conn)
        elif limited and box.size + len(body) > PENDING_LIMIT_BYTES:
            return False
        box.messages.append(body)
        box.size += len(body)
        return True

    def _send_now(self, client: _Client, body: bytes) -> bool:
        """Multicast ``body`` unless the connection has messages waiting or it is refused."""
        return client.serial not in self._outboxes and self.multicast(body)

    # -- requests ----------------------------------------------------------------------------

    def _join_error(self, client: _Client, group: CpgName, pid: int) -> CsError:
        if any(c.pid == pid and c.group == group for c in self._listed()):
            return CsError.EXIST
        if self._find(self.nodeid, pid, group) is not None:
            return CsError.TRY_AGAIN  # this pid's leave of that group is not delivered yet
        if group.length > CPG_MAX_NAME_LENGTH:
            return CsError.NAME_TOO_LONG
        if client.state is CpdState.LEAVE_STARTED:
            return CsError.BUSY
        if client.state in _JOINED:
            return CsError.EXIST
        return CsError.OK

    def _lib_join(self, client: _Client, data: bytes) -> None:
        req = parse_join_untrusted(data)
        error = self._join_error(client, req.group, req.pid)
        if error is CsError.OK:
            if not self._send_now(client, ProcJoin(req.group, req.pid, CpgReason.JOIN).pack()):
                self.respond(client.conn, _ERROR_TRY_AGAIN)
                return
            client.state, client.pid, client.group, client.flags = CpdState.JOIN_STARTED, req.pid, req.group, req.flags
        self.respond(client.conn, status_response(CpgResponseId.JOIN, error))

    def _lib_leave(self, client: _Client, data: bytes) -> None:
        req = parse_leave_untrusted(data)
        self.log("debug", f"got leave request on conn={client.conn}")
        if client.state is CpdState.JOIN_STARTED:
            error = CsError.BUSY
        elif client.state is not CpdState.JOIN_COMPLETED or req.group != client.group:
            error = CsError.NOT_EXIST
        elif not self._send_now(client, ProcJoin(client.group, client.pid, CpgReason.LEAVE, CpgFn.PROCLEAVE).pack()):
            self.respond(client.conn, _ERROR_TRY_AGAIN)
            return
        else:
            error = CsError.OK
            client.state = CpdState.LEAVE_STARTED
        self.respond(client.conn, status_response(CpgResponseId.LEAVE, error))

    def _cannot_mcast(self, client: _Client, error: CsError) -> None:
        self.log("error", f"*** conn={client.conn} can't mcast to group {client.group.printable()} "
                          f"state:{int(client.state)}, error:{int(error)}")

    def _lib_mcast(self, client: _Client, data: bytes) -> None:
        try:
            req = parse_mcast_request_untrusted(data)
        except WireError as exc:
            self.log("info", f"*** invalid mcast request on conn={client.conn}: {exc}")
            return
        if client.dropped:
            return
        if client.state not in _JOINED:
            self._cannot_mcast(client, CsError.NOT_EXIST)
            return
        body = CpgMcast(client.group, client.pid, req.data, self.nodeid).pack()
        if len(body) > EXEC_SIZE_MAX:
            self.log("info", f"*** mcast of {len(req.data)} bytes on conn={client.conn} is too large: dropped")
        elif not self._send_in_order(client, body):
            client.dropped = True
            self.log("error", f"conn={client.conn} has {PENDING_LIMIT_BYTES} bytes of multicasts waiting: "
                              "dropping the connection")
            self._emit(LibDisconnect(client.conn, "cpg multicast backlog over limit"))

    def _lib_partial_mcast(self, client: _Client, data: bytes) -> None:
        req = parse_partial_mcast_request_untrusted(data)
        self.log("debug", f"Sending fragmented message size = {len(req.data)} bytes")
        error = CsError.OK if client.state in _JOINED else CsError.NOT_EXIST
        if req.type == PartialType.FIRST:
            client.initial_transition_counter = client.transition_counter
        if client.transition_counter != client.initial_transition_counter:
            error = CsError.INTERRUPT
        if error is CsError.OK:
            body = CpgPartialMcast(client.group, client.pid, req.msglen, req.type, req.data, self.nodeid).pack()
            if len(body) > EXEC_SIZE_MAX:
                self.respond(client.conn, _ERROR_INVALID)
                return
            if not self._send_in_order(client, body):
                error = CsError.TRY_AGAIN
        else:
            self._cannot_mcast(client, error)
        self.respond(client.conn, status_response(CpgResponseId.PARTIAL_SEND, error))

    def _lib_membership(self, client: _Client, data: bytes) -> None:
        group = parse_membership_request_untrusted(data)
        members = tuple((p.nodeid, p.pid) for p in self.process_info if p.group == group)
        self.respond(client.conn, MembershipResponse(members[:MEMBERSHIP_MAX]).pack())

    def _lib_local_get(self, client: _Client, data: bytes) -> None:
        self.respond(client.conn, local_get_response(self.nodeid))

    def _iteration_items(self, kind: int, group: CpgName) -> list[tuple[CpgName, int, int]]:
        """The table as corosync copies it for an iteration: a group not seen yet goes to
        the front, a further member of a group right after the group's first entry."""
        items: list[tuple[CpgName, int, int]] = []
        for p in self.process_info:
            first = next((i for i, item in enumerate(items) if item[0] == p.group), None)
            if kind == IterationType.NAME_ONLY:
                if first is not None:
                    continue
                entry = (p.group, 0, 0)
            elif kind == IterationType.ONE_GROUP and p.group != group:
                continue
            else:
                entry = (p.group, p.nodeid, p.pid)
            items.insert(0 if first is None else first + 1, entry)
        return items

    def _lib_iteration_initialize(self, client: _Client, data: bytes) -> None:
        req = parse_iteration_initialize_untrusted(data)
        self.log("debug", "cpg iteration initialize")
        handle = next(self._handles)
        self._iterations[handle] = _Iteration(client.serial, self._iteration_items(req.type, req.group))
        self.respond(client.conn, iteration_initialize_response(handle))

    def _lib_iteration_next(self, client: _Client, data: bytes) -> None:
        handle = parse_iteration_handle_untrusted(data)
        self.log("debug", "cpg iteration next")
        it = self._iterations.get(handle)
        if it is None:
            res = IterationNextResponse(CpgName(0), 0, 0, CsError.LIBRARY)
        else:
            it.pos += 1
            if it.pos == len(it.items):
                it.pos = -1  # corosync's cursor is back on the list head: the next call starts over
                res = IterationNextResponse(CpgName(0), 0, 0, CsError.NO_SECTIONS)
            else:
                res = IterationNextResponse(*it.items[it.pos])
        self.respond(client.conn, res.pack())

    def _lib_iteration_finalize(self, client: _Client, data: bytes) -> None:
        handle = parse_iteration_handle_untrusted(data)
        self.log("debug", "cpg iteration finalize")
        error = CsError.OK if self._iterations.pop(handle, None) is not None else CsError.LIBRARY
        self.respond(client.conn, status_response(CpgResponseId.ITERATIONFINALIZE, error))

    def _lib_finalize(self, client: _Client, data: bytes) -> None:
        """The client is about to close: it gets no more events; leaving its group
        (PROCDOWN) waits for the disconnect, as in corosync."""
        self.log("debug", f"cpg finalize for conn={client.conn}")
        client.listed = False
        self.respond(client.conn, status_response(CpgResponseId.FINALIZE))

    def _lib_zero_copy(self, res_id: int, client: _Client, data: bytes) -> None:
        """The zero-copy API is not offered (libcpg falls back to nothing: the call fails)."""
        self.respond(client.conn, status_response(res_id, CsError.NOT_SUPPORTED))
