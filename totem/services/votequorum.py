"""votequorum (service 5): NODEINFO, and a table of what the other nodes announced.

In its sync step a node multicasts NODEINFO for itself (nodeid, votes, expected
votes, flags) and, as every corosync node does, NODEINFO for the quorum-device
slot (nodeid 0) right after it (spec services-wire.md §4.1-4.4). Real nodes count
this node's votes from that message. This module does not compute quorum: it
keeps the table the way corosync's receive handler updates it, so that a later
quorum computation can start from it, and sends flags 0 (never QUORATE) unless
told otherwise.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..wire import RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import Service
from .layouts import layouts

SERVICE_ID = 5
NODEINFO_SIZE = 32
QDEVICE_NODEID = 0


class VqFn(enum.IntEnum):
    NODEINFO = 0
    RECONFIGURE = 1
    QDEVICE_REG = 2
    QDEVICE_RECONFIGURE = 3


class NodeFlags(enum.IntFlag):
    QUORATE = 0x01
    LEAVING = 0x02
    WFASTATUS = 0x04
    FIRST = 0x08
    QDEVICE_REGISTERED = 0x10
    QDEVICE_ALIVE = 0x20
    QDEVICE_CAST_VOTE = 0x40
    QDEVICE_MASTER_WINS = 0x80


class NodeState(enum.IntEnum):
    MEMBER = 1
    DEAD = 2
    LEAVING = 3


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


@dataclass(slots=True)
class VqNode:
    votes: int
    expected_votes: int
    flags: int
    state: NodeState


class VotequorumService(Service):
    service_id = SERVICE_ID
    name = "corosync vote quorum service v1.0"
    subsys = "VOTEQ"
    exec_count = 4

    def __init__(self, nodeid: int, expected_votes: int, votes: int = 1, flags: int = 0,
                 *, send_device_slot: bool = True) -> None:
        super().__init__(nodeid)
        self.votes = votes
        self.expected_votes = expected_votes
        self.flags = flags
        self.send_device_slot = send_device_slot
        """Also send NODEINFO for nodeid 0 (votes 0) after the own one, as corosync does."""
        self.quorate = False
        """Never computed here (always False); used only as corosync's receive handler uses it."""
        self.nodes: dict[int, VqNode] = {
            nodeid: VqNode(votes, expected_votes, flags, NodeState.MEMBER),
            QDEVICE_NODEID: VqNode(0, 0, 0, NodeState.DEAD),
        }
        self.members: tuple[int, ...] = ()
        self.ring_id: RingId | None = None
        self._nodeinfo_sent = False

    # -- what this node says -----------------------------------------------------------------

    def nodeinfo_message(self) -> bytes:
        return NodeInfo(self.nodeid, self.votes, self.expected_votes, self.flags).pack()

    def device_nodeinfo_message(self) -> bytes:
        d = self.nodes[QDEVICE_NODEID]
        return NodeInfo(QDEVICE_NODEID, d.votes, d.expected_votes, d.flags).pack()

    @property
    def total_votes(self) -> int:
        """Votes of the nodes in MEMBER state (no device)."""
        return sum(n.votes for nid, n in self.nodes.items() if nid != QDEVICE_NODEID and n.state == NodeState.MEMBER)

    # -- sync --------------------------------------------------------------------------------

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._nodeinfo_sent = False
        if len(members) > 1:
            self.flags &= ~NodeFlags.FIRST
            self.nodes[self.nodeid].flags = self.flags
        for old in self.members:
            if old not in members and old in self.nodes:
                self.nodes[old].state = NodeState.DEAD
        self.members = tuple(members)
        self.ring_id = ring_id

    def sync_process(self) -> tuple[list[bytes], bool]:
        if self._nodeinfo_sent:
            return [], True
        self._nodeinfo_sent = True
        out = [self.nodeinfo_message()]
        if self.send_device_slot:
            out.append(self.device_nodeinfo_message())
        return out, True

    # -- exec messages -------------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        if fn != VqFn.NODEINFO:
            self.log("debug", f"ignoring votequorum message {VqFn(fn).name} from node {sender}")
            return
        m = parse_nodeinfo_untrusted(body)
        self.log("debug", f"got nodeinfo message from cluster node {sender}")
        self.log("debug", f"nodeinfo message[{m.nodeid}]: votes: {m.votes}, expected: {m.expected_votes} "
                          f"flags: {m.flags}")
        node = self.nodes.get(m.nodeid)
        if m.nodeid == QDEVICE_NODEID:
            sender_node = self.nodes.get(sender)
            if sender_node is None:
                # corosync asserts here and dies; a device slot from an unknown sender is dropped
                self.log("error", f"device nodeinfo from node {sender} before its own nodeinfo - ignored")
                return
            assert node is not None
            if not self.quorate and sender_node.flags & NodeFlags.QUORATE:
                node.votes = m.votes
            else:
                node.votes = max(node.votes, m.votes)
            return
        if node is None:
            node = self.nodes[m.nodeid] = VqNode(0, 0, 0, NodeState.DEAD)
        node.flags = m.flags
        node.votes = m.votes
        node.state = NodeState.LEAVING if m.flags & NodeFlags.LEAVING else NodeState.MEMBER
        if not self.quorate and m.flags & NodeFlags.QUORATE:
            self.expected_votes = m.expected_votes
            self.nodes[self.nodeid].expected_votes = m.expected_votes
        if m.flags & NodeFlags.QUORATE:
            node.expected_votes = m.expected_votes
        else:
            node.expected_votes = self.expected_votes
