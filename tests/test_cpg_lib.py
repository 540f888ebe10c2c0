"""libcpg's protocol (totem.lib.cpg) and CPG's client side (CpgService's lib hooks)
on one node.

Layouts are checked against the offsets and sizes the C compiler gave corosync
3.1.7's structs (spec client-ipc.md §2.2, reference/layout-corosync-3.1.7-x86_64.txt);
every request against its response id and size; the state machine of a connection
against exec/cpg.c's table; and what a JOIN, an MCAST and a disconnect multicast
against the bytes real corosync nodes sent in the CPG capture.
"""

from __future__ import annotations

import struct

import pytest
from construct import Construct, Renamed, Struct
from hypothesis import given, settings
from hypothesis import strategies as st

from test_services_wire import CPG_CAPTURE, of_kind
from totem.lib import cpg as lib
from totem.lib.common import CsError, parse_response_header_untrusted, request_header
from totem.lib.cpg import (
    ConfchgCallback,
    CpgName,
    CpgReason,
    CpgRequestId,
    CpgResponseId,
    DeliverCallback,
    IterationInitializeRequest,
    IterationType,
    JoinRequest,
    LeaveRequest,
    McastRequest,
    PartialDeliverCallback,
    PartialMcastRequest,
    PartialType,
    TotemConfchgCallback,
)
from totem.services.base import LibConnection, LibDisconnect, LibEvent, LibResponse, ServiceLog
from totem.services.cpg import (
    PENDING_LIMIT_BYTES,
    CpdState,
    CpgConfchg,
    CpgFn,
    CpgService,
    parse_procjoin_untrusted,
)
from totem.ipc.credentials import Credentials
from totem.servicehost import ServiceHost
from totem.wire import RingId
from totem.wire.errors import WireError

# -- layouts ---------------------------------------------------------------------------------

# (size, {field: offset}) of every libcpg struct as compiled for corosync 3.1.7 on x86_64
COMPILED = {
    "ReqJoin": (168, {"group_name": 16, "pid": 152, "flags": 160}),
    "ReqLeave": (160, {"group_name": 16, "pid": 152}),
    "ReqMcast": (40, {"guarantee": 24, "msglen": 32}),
    "ReqPartialMcast": (56, {"guarantee": 24, "msglen": 32, "fraglen": 40, "type": 48}),
    "ReqMembership": (152, {"group_name": 16}),
    "ReqIterationInitialize": (160, {"group_name": 16, "iteration_type": 152}),
    "ReqIterationHandle": (24, {"iteration_handle": 16}),
    "ReqZcAlloc": (152, {"map_size": 16, "path_to_file": 24}),
    "ReqZcFree": (32, {"map_size": 16, "server_address": 24}),
    "ReqZcExecute": (24, {"server_address": 16}),
    "ResMembership": (9248, {"member_count": 24, "member_list": 32}),
    "ResLocalGet": (32, {"local_nodeid": 24}),
    "ResIterationInitialize": (32, {"iteration_handle": 24}),
    "ResIterationNext": (168, {"group": 24, "nodeid": 160, "pid": 164}),
    "EvDeliver": (184, {"group_name": 24, "msglen": 160, "nodeid": 168, "pid": 176}),
    "EvPartialDeliver": (200, {"group_name": 24, "msglen": 160, "fraglen": 168, "nodeid": 176, "pid": 184,
                               "type": 192}),
    "EvConfchg": (184, {"group_name": 24, "member_list_entries": 160, "joined_list_entries": 168,
                        "left_list_entries": 176}),
    "EvTotemConfchg": (44, {"ring_id": 24, "member_list_entries": 40}),  # C sizeof 48: ids from 44
    "EvFlowControl": (32, {"flow_control_state": 24}),
    "CpgNameLayout": (136, {"length": 0, "value": 8}),
    "CpgAddressLayout": (24, {"nodeid": 0, "pid": 8, "reason": 16}),
}


def offsets(con: Construct) -> dict[str, int]:
    """Top-level field offsets of a construct Struct of fixed-size members."""
    assert isinstance(con, Struct)
    out, pos = {}, 0
    for sub in con.subcons:
        if isinstance(sub, Renamed) and sub.name:
            out[sub.name] = pos
        pos += sub.sizeof()
    return out


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_layouts_have_the_compiled_offsets_and_sizes(name: str) -> None:
    size, fields = COMPILED[name]
    con = getattr(lib, name)
    assert con.sizeof() == size
    got = offsets(con)
    for field, off in fields.items():
        assert got[field] == off, (name, field)


def test_the_codecs_agree_with_the_construct_layouts() -> None:
    g = CpgName(5, b"probe".ljust(128, b"\xaa"), b"\xfc\x7f\x00\x00")
    join = JoinRequest(g, 20779, 1).pack()
    c = lib.ReqJoin.parse(join)
    assert (c.header.id, c.header.size, c.pid, c.flags) == (0, 168, 20779, 1)
    assert (c.group_name.length, c.group_name.pad, c.group_name.value) == (g.length, g.pad, g.value)
    ev = ConfchgCallback(g, ((1, 10), (2, 20)), left=((3, 30, 3),), joined=((2, 20, 1),)).pack()
    c = lib.EvConfchg.parse(ev)
    assert (c.header.id, c.header.size, c.header.error) == (4, 184 + 4 * 24, 1)
    assert (c.member_list_entries, c.joined_list_entries, c.left_list_entries) == (2, 1, 1)
    # members, then left, then joined (the header file's comment has it the other way round)
    entries = [lib.CpgAddressLayout.parse(ev[184 + 24 * i:]) for i in range(4)]
    assert [(e.nodeid, e.pid, e.reason) for e in entries] == [(1, 10, 0), (2, 20, 0), (3, 30, 3), (2, 20, 1)]
    totem = TotemConfchgCallback(RingId(1, 0x13), (1, 2, 3)).pack()
    c = lib.EvTotemConfchg.parse(totem)
    assert (c.header.size, c.ring_id.nodeid, c.ring_id.seq, c.member_list_entries) == (60, 1, 0x13, 3)
    assert struct.unpack_from("<3I", totem, 44) == (1, 2, 3)
    deliver = DeliverCallback(g, 2, 99, b"hello").pack()
    c = lib.EvDeliver.parse(deliver)
    assert (c.header.id, c.header.size, c.msglen, c.nodeid, c.pid) == (5, 189, 5, 2, 99)
    assert deliver[184:] == b"hello"
    partial = PartialDeliverCallback(g, 10, 2, 99, PartialType.LAST, b"abc").pack()
    c = lib.EvPartialDeliver.parse(partial)
    assert (c.header.id, c.header.size, c.msglen, c.fraglen, c.nodeid, c.pid, c.type) == (17, 203, 10, 3, 2, 99, 3)
    mcast = McastRequest(b"xyz").pack()
    c = lib.ReqMcast.parse(mcast)
    assert (c.header.id, c.header.size, c.guarantee, c.msglen, mcast[40:]) == (2, 43, 2, 3, b"xyz")
    pm = PartialMcastRequest(100, PartialType.FIRST, b"ab").pack()
    c = lib.ReqPartialMcast.parse(pm)
    assert (c.header.id, c.header.size, c.msglen, c.fraglen, c.type, pm[56:]) == (12, 58, 100, 2, 1, b"ab")
    membership = lib.MembershipResponse(((1, 10), (4, 40))).pack()
    c = lib.ResMembership.parse(membership)
    assert (c.header.id, c.header.size, c.member_count) == (3, 9248, 2)
    assert [(e.nodeid, e.pid, e.reason) for e in c.member_list[:3]] == [(1, 10, 0), (4, 40, 0), (0, 0, 0)]


def test_round_trips() -> None:
    g = CpgName.of(b"crmd\0")
    assert lib.parse_join_untrusted(JoinRequest(g, 7, 1).pack()) == JoinRequest(g, 7, 1)
    assert lib.parse_leave_untrusted(LeaveRequest(g, 7).pack()) == LeaveRequest(g, 7)
    assert lib.parse_mcast_untrusted(McastRequest(b"m", 3).pack()) == McastRequest(b"m", 3)
    pm = PartialMcastRequest(9, PartialType.CONTINUED, b"abc")
    assert lib.parse_partial_mcast_untrusted(pm.pack()) == pm
    assert lib.parse_membership_request_untrusted(lib.membership_request(g)) == g
    ii = IterationInitializeRequest(IterationType.ONE_GROUP, g)
    assert lib.parse_iteration_initialize_untrusted(ii.pack()) == ii
    assert lib.parse_iteration_handle_untrusted(lib.iteration_request(CpgRequestId.ITERATIONNEXT, 2**40)) == 2**40
    assert lib.parse_local_get_response_untrusted(lib.local_get_response(5)) == (CsError.OK, 5)
    assert lib.parse_iteration_initialize_response_untrusted(lib.iteration_initialize_response(3)) == (1, 3)
    nxt = lib.IterationNextResponse(g, 2, 3)
    assert lib.parse_iteration_next_response_untrusted(nxt.pack()) == nxt
    mem = lib.MembershipResponse(((1, 2),))
    assert lib.parse_membership_response_untrusted(mem.pack()) == mem
    for ev in (ConfchgCallback(g, ((1, 2),), joined=((1, 2, 1),)), DeliverCallback(g, 1, 2, b"x" * 1000),
               TotemConfchgCallback(RingId(3, 7), (1, 3)), PartialDeliverCallback(g, 5, 1, 2, 1, b"ab"),
               lib.FlowControlCallback(1)):
        assert lib.parse_event_untrusted(ev.pack()) == ev
    assert lib.parse_status_untrusted(lib.status_response(CpgResponseId.LEAVE, CsError.BUSY)) == (1, CsError.BUSY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([4, 5, 8, 13, 17, 3, 99]))
def test_parsers_raise_only_wire_errors(blob: bytes, msg_id: int) -> None:
    # a plausible header in front of random bytes, and the raw bytes themselves
    for data in (blob, struct.pack("<i4xi4xi4x", msg_id, 24 + len(blob), 1) + blob):
        for parse in (lib.parse_event_untrusted, lib.parse_join_untrusted, lib.parse_leave_untrusted,
                      lib.parse_mcast_untrusted, lib.parse_partial_mcast_untrusted,
                      lib.parse_membership_request_untrusted, lib.parse_iteration_initialize_untrusted,
                      lib.parse_iteration_handle_untrusted, lib.parse_membership_response_untrusted,
                      lib.parse_local_get_response_untrusted, lib.parse_iteration_next_response_untrusted,
                      lib.parse_iteration_initialize_response_untrusted, lib.parse_status_untrusted):
            try:
                parse(data)
            except WireError:
                pass


def test_event_parser_refuses_what_libcpg_would_choke_on() -> None:
    g = CpgName.of(b"g")
    good = ConfchgCallback(g, ((1, 2),)).pack()
    with pytest.raises(WireError):
        lib.parse_event_untrusted(good[:-1])  # size field disagrees
    liar = bytearray(good)
    struct.pack_into("<I", liar, 160, 1000)  # more members than bytes
    with pytest.raises(WireError):
        lib.parse_event_untrusted(bytes(liar))
    long_name = bytearray(good)
    struct.pack_into("<I", long_name, 24, 129)
    with pytest.raises(WireError):
        lib.parse_event_untrusted(bytes(long_name))
    with pytest.raises(WireError):
        lib.parse_event_untrusted(lib.status_response(CpgResponseId.JOIN))  # a response is no event


# -- one node looped back ---------------------------------------------------------------------


class Loop:
    """A CpgService on a one-node ring: what it multicasts is delivered back to it, in
    order, when :meth:`deliver` is called (or refused while ``open`` is False)."""

    def __init__(self, nodeid: int = 1) -> None:
        self.nodeid = nodeid
        self.cpg = CpgService(nodeid)
        self.sent: list[bytes] = []
        self.open = True
        self.log: list[object] = []
        self.cpg.attach(self.log.append, self._send)
        self.ring_seq = 4
        self.sync()

    def _send(self, body: bytes) -> bool:
        if self.open:
            self.sent.append(body)
        return self.open

    def sync(self) -> None:
        """A whole sync round of this single node."""
        self.ring_seq += 4
        self.cpg.sync_init((self.nodeid,), (self.nodeid,), RingId(self.nodeid, self.ring_seq))
        msgs, done = self.cpg.sync_process()
        assert done
        for body in msgs:
            self.cpg.deliver(self.nodeid, struct.unpack_from("<i", body)[0] & 0xFFFF, body)
        self.cpg.sync_activate()

    def deliver(self) -> None:
        while self.sent:
            body = self.sent.pop(0)
            self.cpg.deliver(self.nodeid, struct.unpack_from("<i", body)[0] & 0xFFFF, body)

    def connect(self, conn: int, pid: int = 0) -> None:
        self.cpg.lib_connect(LibConnection(conn, pid, 0, 0))

    def request(self, conn: int, data: bytes) -> bytes | None:
        """Send a request; the one response it got (None if none), checked to be alone."""
        start = len(self.log)
        self.cpg.lib_request(conn, struct.unpack_from("<i", data)[0], data)
        resp = [e.data for e in self.log[start:] if isinstance(e, LibResponse) and e.conn == conn]
        assert len(resp) <= 1
        return resp[0] if resp else None

    def status(self, conn: int, data: bytes) -> tuple[int, int]:
        resp = self.request(conn, data)
        assert resp is not None and len(resp) == 24
        return lib.parse_status_untrusted(resp)

    def join(self, conn: int, group: bytes, pid: int, flags: int = 0) -> tuple[int, int]:
        return self.status(conn, JoinRequest(CpgName.of(group), pid, flags).pack())

    def leave(self, conn: int, group: bytes, pid: int) -> tuple[int, int]:
        return self.status(conn, LeaveRequest(CpgName.of(group), pid).pack())

    def mcast(self, conn: int, data: bytes) -> None:
        assert self.request(conn, McastRequest(data).pack()) is None

    def events(self, conn: int) -> list:
        return [lib.parse_event_untrusted(e.data) for e in self.log if isinstance(e, LibEvent) and e.conn == conn]

    def logs(self, level: str) -> list[str]:
        return [e.text for e in self.log if isinstance(e, ServiceLog) and e.level == level]


def test_join_mcast_leave_as_a_client_sees_them() -> None:
    n = Loop(3)
    n.connect(1)
    assert n.join(1, b"grp", 100, flags=lib.JOIN_FLAG_INITIAL_TOTEM_CONF) == (CpgResponseId.JOIN, CsError.OK)
    assert n.cpg.connection_state(1) is CpdState.JOIN_STARTED
    assert n.events(1) == []  # nothing until the PROCJOIN is delivered
    n.mcast(1, b"early")  # allowed while the join is in flight
    n.deliver()
    assert n.cpg.connection_state(1) is CpdState.JOIN_COMPLETED
    g = CpgName.of(b"grp")
    assert n.events(1) == [
        ConfchgCallback(g, ((3, 100),), joined=((3, 100, CpgReason.JOIN),)),
        TotemConfchgCallback(RingId(3, 8), (3,)),  # the initial one asked for by the flag
        DeliverCallback(g, 3, 100, b"early"),  # own messages are delivered too
    ]
    assert n.leave(1, b"grp", 100) == (CpgResponseId.LEAVE, CsError.OK)
    assert n.cpg.connection_state(1) is CpdState.LEAVE_STARTED
    n.deliver()
    assert n.events(1)[3:] == [ConfchgCallback(g, (), left=((3, 100, CpgReason.LEAVE),))]
    assert n.cpg.connection_state(1) is CpdState.UNJOINED
    # the connection may join again
    assert n.join(1, b"grp", 100) == (CpgResponseId.JOIN, CsError.OK)
    n.deliver()
    n.sync()
    assert n.events(1)[-1] == TotemConfchgCallback(RingId(3, 12), (3,))
    assert [e for e in n.log if isinstance(e, CpgConfchg)][-1] == CpgConfchg(b"grp", ((3, 100),),
                                                                               joined=((3, 100, 1),))


def test_join_errors_follow_the_state_table() -> None:
    n = Loop()
    for conn in (1, 2, 3):
        n.connect(conn)
    assert n.join(1, b"a", 10)[1] == CsError.OK
    assert n.join(1, b"b", 10)[1] == CsError.EXIST  # this connection's join is in flight
    assert n.join(2, b"a", 10)[1] == CsError.EXIST  # same pid and group on another connection
    too_long = CpgName(129, b"x" * 128)
    assert n.status(2, JoinRequest(too_long, 11).pack()) == (CpgResponseId.JOIN, CsError.NAME_TOO_LONG)
    n.deliver()
    assert n.join(1, b"b", 10)[1] == CsError.EXIST  # joined
    assert n.leave(2, b"a", 10) == (CpgResponseId.LEAVE, CsError.NOT_EXIST)  # never joined
    assert n.leave(1, b"a", 10)[1] == CsError.OK
    assert n.join(1, b"b", 10) == (CpgResponseId.JOIN, CsError.BUSY)  # its leave is in flight
    assert n.leave(1, b"a", 10)[1] == CsError.NOT_EXIST  # already leaving
    n.deliver()
    # a closed connection's PROCLEAVE not delivered yet: the same pid may not join yet
    assert n.join(2, b"c", 20)[1] == CsError.OK
    n.deliver()
    n.cpg.lib_disconnect(2)
    assert n.join(3, b"c", 20) == (CpgResponseId.JOIN, CsError.TRY_AGAIN)
    n.deliver()
    assert n.join(3, b"c", 20)[1] == CsError.OK


def test_leave_while_the_join_is_in_flight_is_busy() -> None:
    n = Loop()
    n.connect(1)
    n.join(1, b"a", 10)
    assert n.leave(1, b"a", 10) == (CpgResponseId.LEAVE, CsError.BUSY)
    n.deliver()
    assert n.leave(1, b"other", 10) == (CpgResponseId.LEAVE, CsError.NOT_EXIST)  # not its group
    assert n.leave(1, b"a", 10)[1] == CsError.OK


def test_mcast_when_not_joined_is_dropped_with_an_error_log() -> None:
    n = Loop()
    n.connect(1)
    n.mcast(1, b"lost")
    assert n.sent == [] and any("can't mcast" in t for t in n.logs("error"))
    n.join(1, b"a", 10)
    n.deliver()
    n.leave(1, b"a", 10)
    n.mcast(1, b"lost too")  # leaving: refused as well
    assert [parse_procjoin_untrusted(b).fn for b in n.sent] == [CpgFn.PROCLEAVE]
    # a malformed mcast gets no response (the client waits for none) and is dropped
    assert n.request(1, McastRequest(b"abc").pack()[:-1]) is None


def test_every_request_gets_its_response_id_and_size() -> None:
    n = Loop(7)
    n.connect(1)
    g = CpgName.of(b"grp")
    n.join(1, b"grp", 5)
    n.deliver()
    cases = [
        (JoinRequest(g, 6).pack(), 0, 24),
        (LeaveRequest(CpgName.of(b"nope"), 5).pack(), 1, 24),
        (lib.membership_request(g), 3, 9248),
        (lib.simple_request(CpgRequestId.LOCAL_GET), 7, 32),
        (IterationInitializeRequest(IterationType.ALL).pack(), 9, 32),
        (lib.iteration_request(CpgRequestId.ITERATIONNEXT, 1), 10, 168),
        (lib.iteration_request(CpgRequestId.ITERATIONFINALIZE, 1), 11, 24),
        (PartialMcastRequest(4, PartialType.FIRST, b"ab").pack(), 18, 24),
        (lib.zc_alloc_request(4096, b"/dev/shm/x"), 0, 24),
        (lib.zc_free_request(4096, 0x1000), 0, 24),
        (lib.zc_execute_request(0x1000), CpgResponseId.MCAST, 24),
        (lib.simple_request(CpgRequestId.FINALIZE), 12, 24),
        (request_header(13, 16), 0, 24),  # unknown request: generic INVALID_PARAM
    ]
    for data, res_id, size in cases:
        resp = n.request(1, data)
        assert resp is not None and len(resp) == size, data[:4]
        msg_id, got_size, error = parse_response_header_untrusted(resp)
        assert (msg_id, got_size) == (res_id, size)
    assert n.request(1, McastRequest(b"x").pack()) is None
    assert lib.parse_membership_response_untrusted(n.request(1, lib.membership_request(g))) == \
        lib.MembershipResponse(((7, 5),))
    assert lib.parse_local_get_response_untrusted(n.request(1, lib.simple_request(CpgRequestId.LOCAL_GET))) == \
        (CsError.OK, 7)
    for data in (lib.zc_alloc_request(1, b""), lib.zc_free_request(1, 1), lib.zc_execute_request(1)):
        assert parse_response_header_untrusted(n.request(1, data))[2] == CsError.NOT_SUPPORTED
    assert parse_response_header_untrusted(n.request(1, request_header(-5, 16)))[2] == CsError.INVALID_PARAM


def test_malformed_requests_raise_wire_errors_for_the_host_to_refuse() -> None:
    n = Loop()
    n.connect(1)
    for req in (JoinRequest(CpgName.of(b"a"), 1).pack(), LeaveRequest(CpgName.of(b"a"), 1).pack(),
                lib.membership_request(CpgName.of(b"a")), IterationInitializeRequest(1).pack(),
                lib.iteration_request(CpgRequestId.ITERATIONNEXT, 1),
                PartialMcastRequest(3, 1, b"abc").pack()):
        with pytest.raises(WireError):
            n.cpg.lib_request(1, struct.unpack_from("<i", req)[0], req[:-1])


def test_membership_lists_the_table_with_zero_reasons() -> None:
    n = Loop(2)
    for conn, pid in ((1, 30), (2, 10)):
        n.connect(conn)
        n.join(conn, b"g", pid)
    n.deliver()
    n.cpg.deliver(5, CpgFn.PROCJOIN, n.cpg.procjoin(b"g", 1))  # a remote process
    resp = n.request(1, lib.membership_request(CpgName.of(b"g")))
    assert lib.parse_membership_response_untrusted(resp).members == ((2, 10), (2, 30), (5, 1))
    assert n.request(1, lib.membership_request(CpgName.of(b"h")))[24:28] == bytes(4)


def iterate(n: Loop, kind: int, group: bytes = b"") -> list[tuple[bytes, int, int]]:
    resp = n.request(1, IterationInitializeRequest(kind, CpgName.of(group)).pack())
    error, handle = lib.parse_iteration_initialize_response_untrusted(resp)
    assert error == CsError.OK
    out = []
    while True:
        r = lib.parse_iteration_next_response_untrusted(n.request(1, lib.iteration_request(6, handle)))
        if r.error == CsError.NO_SECTIONS:
            break
        out.append((r.group.name, r.nodeid, r.pid))
    # the cursor is back at the start: corosync returns the first entry again
    again = lib.parse_iteration_next_response_untrusted(n.request(1, lib.iteration_request(6, handle)))
    assert (again.error == CsError.OK) == bool(out)
    assert n.status(1, lib.iteration_request(7, handle)) == (11, CsError.OK)
    assert n.status(1, lib.iteration_request(7, handle)) == (11, CsError.LIBRARY)
    bad = lib.parse_iteration_next_response_untrusted(n.request(1, lib.iteration_request(6, handle)))
    assert bad.error == CsError.LIBRARY
    return out


def test_iteration_orders_entries_as_corosync_copies_them() -> None:
    n = Loop(1)
    n.connect(1)
    # table (sorted by nodeid, pid): (1,5,A) (1,6,B) (2,1,A) (2,2,A) (3,1,B)
    for node, pid, group in ((1, 5, b"A"), (1, 6, b"B"), (2, 1, b"A"), (2, 2, b"A"), (3, 1, b"B")):
        n.cpg.deliver(node, CpgFn.PROCJOIN, n.cpg.procjoin(group, pid))
    # a new group goes to the front; later members right after the group's first entry
    assert iterate(n, IterationType.ALL) == [(b"B", 1, 6), (b"B", 3, 1), (b"A", 1, 5), (b"A", 2, 2), (b"A", 2, 1)]
    assert iterate(n, IterationType.NAME_ONLY) == [(b"B", 0, 0), (b"A", 0, 0)]
    assert iterate(n, IterationType.ONE_GROUP, b"A") == [(b"A", 1, 5), (b"A", 2, 2), (b"A", 2, 1)]
    assert iterate(n, IterationType.ONE_GROUP, b"C") == []


def test_finalize_stops_events_and_the_disconnect_leaves_with_procdown() -> None:
    n = Loop(4)
    n.connect(1)
    n.connect(2)
    n.join(1, b"g", 11)
    n.join(2, b"g", 22)
    n.deliver()
    before = len(n.events(1))
    assert n.status(1, lib.simple_request(CpgRequestId.FINALIZE)) == (12, CsError.OK)
    n.mcast(2, b"m")
    n.deliver()
    assert len(n.events(1)) == before  # finalized: no more events
    assert n.sent == []  # the leave waits for the disconnect
    n.cpg.lib_disconnect(1)
    n.deliver()
    g = CpgName.of(b"g")
    assert n.events(2)[-1] == ConfchgCallback(g, ((4, 22),), left=((4, 11, CpgReason.PROCDOWN),))
    n.cpg.lib_disconnect(2)
    n.cpg.lib_disconnect(2)  # twice is harmless
    n.deliver()
    assert n.cpg.members_of(b"g") == []


def test_a_connection_that_left_sends_no_procdown() -> None:
    n = Loop()
    n.connect(1)
    n.join(1, b"g", 1)
    n.deliver()
    n.leave(1, b"g", 1)
    n.cpg.lib_disconnect(1)  # the leave is in flight: no second leave
    assert [parse_procjoin_untrusted(b).reason for b in n.sent] == [CpgReason.LEAVE]


def test_partial_mcast_fragments_and_interruption() -> None:
    n = Loop(2)
    n.connect(1)
    n.connect(2)
    assert n.status(1, PartialMcastRequest(6, PartialType.FIRST, b"ab").pack()) == (18, CsError.NOT_EXIST)
    n.join(1, b"g", 10)
    n.join(2, b"g", 20)
    n.deliver()
    g = CpgName.of(b"g")
    for typ, frag in ((PartialType.FIRST, b"ab"), (PartialType.CONTINUED, b"cd"), (PartialType.LAST, b"ef")):
        assert n.status(1, PartialMcastRequest(6, typ, frag).pack()) == (18, CsError.OK)
    n.deliver()
    assert n.events(2)[-3:] == [PartialDeliverCallback(g, 6, 2, 10, PartialType.FIRST, b"ab"),
                                PartialDeliverCallback(g, 6, 2, 10, PartialType.CONTINUED, b"cd"),
                                PartialDeliverCallback(g, 6, 2, 10, PartialType.LAST, b"ef")]
    # a confchg reaching the sender between fragments interrupts the message
    assert n.status(1, PartialMcastRequest(6, PartialType.FIRST, b"ab").pack())[1] == CsError.OK
    n.connect(3)
    n.join(3, b"g", 30)
    n.deliver()
    assert n.status(1, PartialMcastRequest(6, PartialType.CONTINUED, b"cd").pack())[1] == CsError.INTERRUPT
    assert n.status(1, PartialMcastRequest(6, PartialType.FIRST, b"ab").pack())[1] == CsError.OK


def test_refused_sends_try_again_for_join_and_leave_and_queue_mcasts_in_order() -> None:
    n = Loop()
    n.connect(1)
    n.open = False  # a sync is running, or the transport is full
    assert n.join(1, b"g", 1) == (0, CsError.TRY_AGAIN)  # corosync's generic refusal
    assert n.cpg.connection_state(1) is CpdState.UNJOINED
    n.open = True
    n.join(1, b"g", 1)
    n.mcast(1, b"0")
    n.open = False
    for i in range(1, 5):
        n.mcast(1, str(i).encode())
    assert n.status(1, PartialMcastRequest(2, PartialType.FIRST, b"5").pack())[1] == CsError.OK
    assert n.cpg.backlog_bytes == 4 * (184 + 1) + 200 + 1
    n.deliver()
    assert n.leave(1, b"g", 1) == (0, CsError.TRY_AGAIN)  # messages waiting: the leave would overtake them
    n.open = True
    n.mcast(1, b"6")  # queues behind the waiting ones even though the transport has room now
    assert n.leave(1, b"g", 1) == (0, CsError.TRY_AGAIN)
    n.cpg.flush_pending()
    assert n.cpg.backlog_bytes == 0
    assert n.leave(1, b"g", 1)[1] == CsError.OK
    n.deliver()
    got = [e.data for e in n.events(1) if isinstance(e, (DeliverCallback, PartialDeliverCallback))]
    assert got == [b"0", b"1", b"2", b"3", b"4", b"5", b"6"]


def two_joined_then_closed() -> Loop:
    """Connections 1 and 2 (pids 1, 2) joined to g, then the transport refusing."""
    n = Loop()
    for conn in (1, 2):
        n.connect(conn)
        n.join(conn, b"g", conn)
    n.deliver()
    n.open = False
    return n


def test_flush_goes_round_robin_and_stops_at_the_first_refusal() -> None:
    n = two_joined_then_closed()
    for i in range(3):
        n.mcast(1, b"a%d" % i)
        n.mcast(2, b"b%d" % i)
    budget = [3]

    def send(body: bytes) -> bool:
        if budget[0] == 0:
            return False
        budget[0] -= 1
        n.sent.append(body)
        return True

    n.cpg._send = send
    n.cpg.flush_pending()
    n.deliver()
    assert [e.data for e in n.events(1) if isinstance(e, DeliverCallback)] == [b"a0", b"b0", b"a1"]
    budget[0] = 10
    n.cpg.flush_pending()
    n.deliver()
    assert [e.data for e in n.events(1) if isinstance(e, DeliverCallback)][3:] == [b"b1", b"a2", b"b2"]


def test_a_disconnect_keeps_the_waiting_mcasts_before_its_procdown() -> None:
    n = two_joined_then_closed()
    n.mcast(1, b"last words")
    n.cpg.lib_disconnect(1)
    n.open = True
    n.cpg.flush_pending()
    n.deliver()
    g = CpgName.of(b"g")
    assert n.events(2)[-2:] == [DeliverCallback(g, 1, 1, b"last words"),
                                ConfchgCallback(g, ((1, 2),), left=((1, 1, CpgReason.PROCDOWN),))]


def test_a_connection_overflowing_its_backlog_is_dropped() -> None:
    n = Loop()
    n.connect(1)
    n.join(1, b"g", 1)
    n.deliver()
    n.open = False
    big = b"x" * (1024 * 1024 - 1024)
    count = PENDING_LIMIT_BYTES // (len(big) + 184)
    for _ in range(count):
        n.mcast(1, big)
    assert not [e for e in n.log if isinstance(e, LibDisconnect)]
    assert n.status(1, PartialMcastRequest(2 * len(big), PartialType.FIRST, big).pack())[1] == CsError.TRY_AGAIN
    n.mcast(1, big)
    assert [e for e in n.log if isinstance(e, LibDisconnect)] == [LibDisconnect(1, "cpg multicast backlog over limit")]
    n.mcast(1, b"ignored")
    assert n.cpg.backlog_bytes == count * (len(big) + 184)


def test_an_mcast_too_large_for_totem_is_dropped() -> None:
    n = Loop()
    n.connect(1)
    n.join(1, b"g", 1)
    n.deliver()
    n.mcast(1, b"x" * (1024 * 1024 - 40))
    assert n.sent == [] and n.logs("info")
    req = PartialMcastRequest(2**21, PartialType.FIRST, b"x" * (1024 * 1024 - 56)).pack()
    assert n.status(1, req) == (0, CsError.INVALID_PARAM)


def test_unknown_node_messages_are_not_delivered() -> None:
    n = Loop(1)
    n.connect(1)
    n.join(1, b"g", 1)
    n.deliver()
    stranger = n.cpg.procjoin(b"g", 9)  # never delivered: node 2 is unknown in g
    from totem.services.cpg import CpgMcast
    n.cpg.deliver(2, CpgFn.MCAST, CpgMcast(CpgName.of(b"g"), 9, b"?").pack())
    assert not [e for e in n.events(1) if isinstance(e, DeliverCallback)]
    assert "Unknown node -> we will not deliver message" in n.logs("warning")
    n.cpg.deliver(2, CpgFn.PROCJOIN, stranger)
    n.cpg.deliver(2, CpgFn.MCAST, CpgMcast(CpgName.of(b"g"), 9, b"!").pack())
    assert [e.data for e in n.events(1) if isinstance(e, DeliverCallback)] == [b"!"]


def test_totem_confchg_goes_to_every_connection_after_a_sync() -> None:
    n = Loop(1)
    n.connect(1)  # never joins
    n.connect(2)
    n.join(2, b"g", 2, flags=lib.JOIN_FLAG_INITIAL_TOTEM_CONF)
    n.sync()
    assert n.events(1) == [TotemConfchgCallback(RingId(1, 12), (1,))]
    # the flagged connection's initial totem confchg comes after the first confchg it gets
    n.deliver()
    assert n.events(2) == [TotemConfchgCallback(RingId(1, 12), (1,)),
                           ConfchgCallback(CpgName.of(b"g"), ((1, 2),), joined=((1, 2, 1),)),
                           TotemConfchgCallback(RingId(1, 12), (1,))]


# -- against the capture of real corosync nodes --------------------------------------------------


def test_join_mcast_and_disconnect_send_the_bytes_corosync_sent() -> None:
    """Node 2's client of the capture: its JOIN's group name (garbage included) and pid
    give the PROCJOIN node 2 multicast; its MCAST the same bytes but for the sender's
    connection pointer; its exit the PROCLEAVE with reason PROCDOWN."""
    (procjoin,) = [d.body for d in of_kind(CPG_CAPTURE, "2.0") if d.sender == 2]
    (procleave,) = [d.body for d in of_kind(CPG_CAPTURE, "2.1") if d.sender == 2]
    mcasts = [d.body for d in of_kind(CPG_CAPTURE, "2.3") if d.sender == 2]
    pj = parse_procjoin_untrusted(procjoin)
    n = Loop(2)
    n.connect(5)
    assert n.status(5, JoinRequest(pj.group, pj.pid).pack())[1] == CsError.OK
    assert n.sent == [procjoin]
    n.deliver()
    payload = mcasts[0][184:]
    n.mcast(5, payload)
    (ours,) = n.sent
    assert ours[:176] == mcasts[0][:176] and ours[184:] == mcasts[0][184:]  # 176..184: their pointer
    n.deliver()
    n.cpg.lib_disconnect(5)
    assert n.sent == [procleave]


class FakeServer:
    """What the service host tells the IPC server: flow-control levels, disconnects."""

    def __init__(self) -> None:
        self.fc: dict[int, int] = {}
        self.disconnects: list[int] = []

    def respond(self, conn_id: int, data: bytes) -> None:
        pass

    def send_event(self, conn_id: int, data: bytes) -> None:
        pass

    def set_flow_control(self, level: int, conn_ids=None) -> None:
        for c in conn_ids or ():
            self.fc[c] = level

    def disconnect(self, conn_id: int, reason: str) -> None:
        self.disconnects.append(conn_id)


def test_the_host_holds_requests_while_refused_multicasts_wait() -> None:
    """A client that keeps sending while totem refuses is held and flow-controlled
    once its first multicast waits, instead of filling its backlog until it is
    disconnected; the held requests go out in order when the backlog drained."""
    n = Loop()
    host = ServiceHost([n.cpg])
    server = FakeServer()
    host.server = server
    host.update(holding=False, ready=True)
    host.ipc_connect(1, "cpg", Credentials(pid=1, uid=0, gid=0))
    host.ipc_request(1, JoinRequest(CpgName.of(b"g"), 1, 0).pack())
    n.deliver()
    n.open = False
    big = b"x" * 60000
    for i in range(2 * PENDING_LIMIT_BYTES // len(big)):
        host.ipc_request(1, McastRequest(b"%d" % i + big).pack())
        host.update(holding=host.backlogged(), ready=True)
    assert n.cpg.backlog_bytes == len(big) + 1 + 184  # only the first one waits in cpg
    assert server.fc[1] == 2 and server.disconnects == []
    n.open = True
    while host.conns[1].held or host.backlogged():
        n.cpg.flush_pending()
        host.update(holding=host.backlogged(), ready=True)
        n.deliver()
    assert server.fc[1] == 0
    got = [e.data for e in n.events(1) if isinstance(e, DeliverCallback)]
    assert got == [b"%d" % i + big for i in range(2 * PENDING_LIMIT_BYTES // len(big))]
