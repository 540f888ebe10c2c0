"""CPG (service 2): its exec messages, the member table and the sync step.

Every node keeps the same table of group members, (nodeid, pid, group), built from
the PROCJOIN/PROCLEAVE/JOINLIST messages delivered in agreed order. At each sync a
node multicasts its DOWNLIST (nodes gone since the last sync) and a JOINLIST of
its own members; at activation it drops members of the nodes that left, adds those
announced by other nodes' joinlists and drops remote members nobody announced
(spec services-wire.md §3.4-3.5). Changes are reported as :class:`CpgConfchg`
events, as corosync would send them to the clients of that group.

Group names keep the bytes a sender left after the name and in the padding of the
name structure (real senders leave garbage there), so a joinlist rebuilt from the
table carries exactly the bytes corosync would copy into it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from ..wire import RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import Service
from .layouts import CPG_NAME_MAX, PROCESSOR_COUNT_MAX, layouts

SERVICE_ID = 2
PROCJOIN_SIZE = 168
JOINLIST_HEADER_SIZE = 24
JOINLIST_ENTRY_SIZE = 144
MCAST_HEADER_SIZE = 184
DOWNLIST_SIZE = 1568
DOWNLIST_OLD_SIZE = 1560


class CpgFn(enum.IntEnum):
    PROCJOIN = 0
    PROCLEAVE = 1
    JOINLIST = 2
    MCAST = 3
    DOWNLIST_OLD = 4
    DOWNLIST = 5
    PARTIAL_MCAST = 6


class CpgReason(enum.IntEnum):
    JOIN = 1
    LEAVE = 2
    NODEDOWN = 3
    NODEUP = 4
    PROCDOWN = 5


@dataclass(frozen=True, slots=True, eq=False)
class CpgName:
    """A group name as on the wire (``mar_cpg_name_t``): equal by length and name bytes."""

    length: int
    value: bytes = bytes(CPG_NAME_MAX)
    """The whole 128-byte buffer; bytes after ``length`` are whatever the sender had."""
    pad: bytes = bytes(4)

    @classmethod
    def of(cls, name: bytes) -> "CpgName":
        if len(name) > CPG_NAME_MAX:
            raise ValueError(f"CPG group names are at most {CPG_NAME_MAX} bytes")
        return cls(len(name), name.ljust(CPG_NAME_MAX, b"\0"))

    @property
    def name(self) -> bytes:
        return self.value[:self.length]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CpgName) and other.length == self.length and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"CpgName({self.name!r})"

    def printable(self) -> str:
        """The name as corosync logs it (non-printable bytes as \\xNN)."""
        out = []
        for b in self.name:
            c = chr(b)
            if c == "\\":
                out.append("\\\\")
            elif 0x20 <= b < 0x7F:
                out.append(c)
            else:
                out.append(f"\\x{b:02X}")
        return "".join(out)


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


class _Structs:
    def __init__(self) -> None:
        lay = layouts("<")
        hdr = ("header.id", "header.pad0", "header.size", "header.pad1")
        name = ("group_name.length", "group_name.pad", "group_name.value")
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
        assert mc.names == hdr + name + ("msglen", "pad0", "pid", "pad1", "source.nodeid", "source.pad",
                                         "source.conn"), mc.names
        self.procjoin = struct.Struct(pj.fmt)
        self.joinlist_header = struct.Struct(jh.fmt)
        self.joinlist_entry = struct.Struct(je.fmt)
        self.downlist = struct.Struct(dl.fmt)
        self.mcast = struct.Struct(mc.fmt)
        assert self.procjoin.size == PROCJOIN_SIZE
        assert self.joinlist_header.size == JOINLIST_HEADER_SIZE
        assert self.joinlist_entry.size == JOINLIST_ENTRY_SIZE
        assert self.downlist.size == DOWNLIST_SIZE
        assert self.mcast.size == MCAST_HEADER_SIZE


_S = _Structs()


def _name(length: int, pad: bytes, value: bytes, offset: int) -> CpgName:
    if length > CPG_NAME_MAX:
        raise WireError(f"CPG group name length {length} exceeds {CPG_NAME_MAX}", offset)
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


# -- events ----------------------------------------------------------------------------


Address = tuple[int, int, int]
"""(nodeid, pid, reason), as corosync's ``cpg_address``."""


@dataclass(frozen=True, slots=True)
class CpgConfchg:
    """A group's membership changed, as a client of that group would be told."""

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


# -- the service -----------------------------------------------------------------------


class CpgService(Service):
    service_id = SERVICE_ID
    name = "corosync cluster closed process group service v1.01"
    subsys = "CPG"
    exec_count = 7

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

    # -- local members (the API the IPC side will use) ---------------------------------------

    def local_members(self) -> list[ProcessInfo]:
        """This node's processes in the table (announced and delivered)."""
        return [p for p in self.process_info if p.nodeid == self.nodeid]

    def procjoin(self, group: bytes, pid: int) -> bytes:
        """The PROCJOIN to multicast for a local process joining ``group``; it counts
        as a member once delivered. Send it only outside sync (spec §2.6)."""
        return ProcJoin(CpgName.of(group), pid, CpgReason.JOIN).pack()

    def procleave(self, group: bytes, pid: int, reason: int = CpgReason.LEAVE) -> bytes:
        """The PROCLEAVE for a local process (reason LEAVE, or PROCDOWN if it died)."""
        return ProcJoin(CpgName.of(group), pid, reason, CpgFn.PROCLEAVE).pack()

    def members_of(self, group: bytes) -> list[tuple[int, int]]:
        return [(p.nodeid, p.pid) for p in self.process_info if p.group.name == group]

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
        assert self.last_sync_ring_id is not None
        self._emit(CpgTotemConfchg(self.last_sync_ring_id, self._member_list))

    def sync_abort(self) -> None:
        self._joinlists.clear()

    def _downlist_inform(self) -> None:
        self.log("debug", f"my downlist: members(old:{self._sent_old_members} left:{self._left_nodes})")
        gone = set(self._downlist_nodeids[:self._left_nodes])
        by_group: dict[bytes, list[Address]] = {}
        keep = []
        for p in self.process_info:
            if p.nodeid in gone:
                by_group.setdefault(p.group.name, []).append((p.nodeid, p.pid, CpgReason.NODEDOWN))
            else:
                keep.append(p)
        self.process_info = keep
        for group in sorted(by_group):
            left = tuple(by_group[group])
            self.log("debug", f"left_list_entries:{len(left)}")
            self._emit(CpgConfchg(group, tuple(self.members_of(group)), left=left))

    def _joinlist_inform(self) -> None:
        joined: dict[bytes, list[Address]] = {}
        for i, (sender, pid, group) in enumerate(self._joinlists):
            self.log("debug", f"joinlist_messages[{i}] group:{group.printable()}, node:{sender}, pid:{pid}")
            if sender == self.nodeid:
                continue
            if self._add(sender, pid, group):
                joined.setdefault(group.name, []).append((sender, pid, CpgReason.NODEUP))
        for group in sorted(joined):
            self._emit(CpgConfchg(group, tuple(self.members_of(group)), joined=tuple(joined[group])))
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
        members = tuple((p.nodeid, p.pid) for p in self.process_info
                        if p.group == group and not (p.nodeid == nodeid and p.pid == pid))
        self._emit(CpgConfchg(group.name, members, left=((nodeid, pid, reason),)))
        self.process_info = [p for p in self.process_info
                             if not (p.nodeid == nodeid and p.pid == pid and p.group == group)]

    # -- exec messages ---------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        if fn == CpgFn.PROCJOIN:
            m = parse_procjoin_untrusted(body)
            self.log("debug", f"got procjoin message from cluster node {sender} for pid {m.pid}")
            if self._add(sender, m.pid, m.group):
                self._emit(CpgConfchg(m.group.name, tuple(self.members_of(m.group.name)),
                                      joined=((sender, m.pid, CpgReason.JOIN),)))
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
            m = parse_mcast_untrusted(body)
            if any(p.nodeid == sender and p.group == m.group for p in self.process_info):
                self._emit(CpgDelivered(m.group.name, sender, m.pid, m.data))
        elif fn == CpgFn.DOWNLIST_OLD:
            self.log("debug", f"downlist OLD from node {sender}")
        elif fn == CpgFn.DOWNLIST:
            d = parse_downlist_untrusted(body)
            self.log("debug", f"downlist left_list: {d.left_nodes} received")
        # PARTIAL_MCAST: reassembly belongs to the client side (not implemented yet)
