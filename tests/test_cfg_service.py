"""cfg (service 1): libcfg's layouts, CfgService's answers and its exec messages, against
corosync 3.1.7 (spec client-ipc.md §2.6, services-wire.md §5.2)."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_services_wire import of_kind
from totem.cmapdb import CmapDb, TrackType, Value, ValueType
from totem.config import parse_text
from totem.lib import cfg as lib
from totem.lib.common import CsError
from totem.services.base import LibConnection, LibEvent, LibResponse, ServiceLog
from totem.services.cfg import (
    CfgService,
    ExecFn,
    KilledByNode,
    NodeView,
    ReloadRequested,
    ReopenLogFiles,
    build_killnode,
    build_reload_config,
    build_shutdown,
    parse_exec_untrusted,
    udpu_link_mtu,
)
from totem.services.cmap import ShutdownRequested
from totem.services.layouts import layouts
from totem.wire.errors import WireError

CAPTURE = "services-cfg-cmap.pcapng"
ADDRS = {1: ["198.18.0.1"], 2: ["198.18.0.2"], 3: ["198.18.0.3"]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A CfgService with a virtual clock, whose emitted events and multicasts are kept."""

    def __init__(self, nodeid: int = 1, ring: tuple[int, ...] = (1, 2, 3)) -> None:
        self.clock = Clock()
        self.view = NodeView({k: list(v) for k, v in ADDRS.items()}, ring)
        self.db = CmapDb()
        self.db.update_membership(joined=ring, left=[], addresses=ADDRS)
        self.svc = CfgService(nodeid, self.view, self.db, clock=self.clock)
        self.events: list[object] = []
        self.sent: list[bytes] = []
        self.svc.attach(self.events.append, lambda body: self.sent.append(body) or True)
        self.conns: set[int] = set()

    def request(self, conn: int, data: bytes) -> None:
        if conn not in self.conns:
            self.conns.add(conn)
            self.svc.lib_connect(LibConnection(conn, 1000 + conn, 0, 0))
        (msg_id,) = struct.unpack_from("<i", data)
        self.svc.lib_request(conn, msg_id, data)

    def take(self) -> list[object]:
        out, self.events[:] = list(self.events), []
        return out

    def responses(self) -> list[tuple[int, lib.CfgMessage]]:
        """The responses emitted so far, in order (taken; other events stay)."""
        out = [e for e in self.events if isinstance(e, LibResponse)]
        self.events[:] = [e for e in self.events if not isinstance(e, LibResponse)]
        return [(e.conn, lib.decode_message(e.data)) for e in out]

    def call(self, conn: int, data: bytes) -> lib.CfgMessage:
        """A request whose answer comes at once."""
        self.request(conn, data)
        out = self.take()
        responses = [e for e in out if isinstance(e, LibResponse)]
        assert len(responses) == 1 and responses[0].conn == conn, out
        self.events.extend(e for e in out if not isinstance(e, LibResponse))
        return lib.decode_message(responses[0].data)

    def raw(self, conn: int, data: bytes) -> bytes:
        self.request(conn, data)
        (response,) = [e.data for e in self.take() if isinstance(e, LibResponse)]
        return response

    def test_shutdowns(self) -> list[tuple[int, int, int]]:
        """(conn, error, flags) of the TESTSHUTDOWN events emitted (and taken)."""
        out = []
        for e in list(self.events):
            if isinstance(e, LibEvent):
                m = lib.decode_message(e.data)
                assert isinstance(m, lib.U32Result) and m.res_id == lib.ResId.TESTSHUTDOWN
                assert len(e.data) == 32
                out.append((e.conn, m.error, m.value))
                self.events.remove(e)
        return out

    def deliver_sent(self, sender: int | None = None) -> None:
        """Deliver what the service multicast, as the ring would (to itself)."""
        for body in self.sent:
            (msg_id,) = struct.unpack_from("<i", body)
            assert msg_id >> 16 == 1
            self.svc.deliver(sender or self.svc.nodeid, msg_id & 0xFFFF, body)
        self.sent.clear()


def kinds(sent: list[bytes]) -> list[int]:
    return [struct.unpack_from("<i", b)[0] & 0xFFFF for b in sent]


# -- layouts ---------------------------------------------------------------------------------


def test_request_layouts_match_the_spec_offsets() -> None:
    k = lib.encode_killnode(2, "Killed by corosync-cfgtool")
    assert len(k) == 288 and struct.unpack_from("<i4xi4xI", k) == (2, 288, 2)
    assert struct.unpack_from("<H", k, 24)[0] == 27 and k[26:52] == b"Killed by corosync-cfgtool"
    t = lib.encode_u32_request(lib.ReqId.TRYSHUTDOWN, 2)
    assert len(t) == 24 and struct.unpack_from("<i4xi4xI", t) == (3, 24, 2)
    n = lib.encode_nodestatusget(3)
    assert len(n) == 32 and struct.unpack_from("<i4xi4xI4xI", n) == (9, 32, 3, 1)
    s = lib.encode_trackstart(0)
    assert len(s) == 24 and struct.unpack_from("<i4xi4xB", s) == (10, 24, 0)
    for req in (lib.ReqId.RINGSTATUSGET, lib.ReqId.LOCAL_GET, lib.ReqId.RELOAD_CONFIG,
                lib.ReqId.REOPEN_LOG_FILES, lib.ReqId.TRACKSTOP):
        assert lib.encode_request(req) == struct.pack("<i4xi4x", req, 16)
    assert lib.decode_killnode(k)[:2] == (2, 27)
    assert lib.decode_nodestatusget(n) == (3, 1)
    with pytest.raises(WireError):
        lib.decode_u32_request(t[:20])


def test_response_layouts_match_the_spec_offsets() -> None:
    r = lib.encode_ringstatus([("0 198.18.0.1", "OK")])
    assert len(r) == 10272 and struct.unpack_from("<i4xi4xi4xI", r) == (0, 10272, 1, 1)
    assert r[32:44] == b"0 198.18.0.1" and r[2080:2083] == b"OK\0"
    a = lib.encode_node_addrs(["198.18.0.2", "fd00::2"])
    assert len(a) == 64 and struct.unpack_from("<i4xi4xi4xII", a) == (11, 64, 1, socket.AF_INET, 2)
    assert a[32:48] == socket.inet_aton("198.18.0.2") + bytes(12)
    assert a[48:64] == socket.inet_pton(socket.AF_INET6, "fd00::2")
    status = lib.NodeStatus(2, True, links=(lib.Link(True, True, False, 1410, "198.18.0.2"),))
    s = lib.encode_nodestatus(status)
    assert len(s) == 4200 and struct.unpack_from("<i4xi4xi", s) == (16, 4200, 1)
    assert struct.unpack_from("<IIBBBBBB", s, 24) == (1, 2, 1, 0, 0, 0, 0, 0)
    assert struct.unpack_from("<BBBxI", s, 40) == (1, 1, 0, 1410) and s[48:58] == b"198.18.0.2"
    assert s[40 + 264] == 0 and s[40 + 520:] == bytes(4200 - 560)
    e = lib.encode_u32_response(lib.ResId.TESTSHUTDOWN, 1, CsError.TIMEOUT)
    assert e == struct.pack("<i4xi4xi4xI4x", 10, 32, 5, 1)
    assert lib.decode_message(s) == lib.NodeStatusResult(1, lib.NodeStatus(
        2, True, links=(lib.Link(True, True, False, 1410, "198.18.0.2"),) + (lib.Link(),) * 7))
    # libcfg reads every slot with the first address's family
    assert lib.decode_message(a) == lib.NodeAddrs(1, socket.AF_INET, ("198.18.0.2", "253.0.0.0"))
    assert lib.decode_message(lib.encode_node_addrs(["fd00::2"])) == \
        lib.NodeAddrs(1, socket.AF_INET6, ("fd00::2",))
    assert lib.decode_message(r) == lib.RingStatus(1, (("0 198.18.0.1", "OK"),))


def test_exec_layouts_are_the_spec_sizes() -> None:
    lay = layouts("<")
    assert [lay.cfg_ringreenable.sizeof(), lay.cfg_killnode.sizeof(), lay.cfg_shutdown.sizeof(),
            lay.cfg_reload_config.sizeof(), lay.cfg_crypto_reconfig.sizeof()] == [32, 288, 16, 32, 24]
    k = build_killnode(2, b"why")
    assert struct.unpack_from("<i4xi4xI", k) == (0x00010001, 288, 2)
    assert struct.unpack_from("<H", k, 24)[0] == 3 and k[32:35] == b"why"
    assert build_shutdown() == struct.pack("<i4xi4x", 0x00010002, 16)
    assert build_reload_config(1, 7) == struct.pack("<i4xi4xI4xQ", 0x00010003, 32, 1, 7)


def test_captured_cfg_messages_parse_and_rebuild_byte_for_byte() -> None:
    lay = layouts("<")
    by_fn = {ExecFn.KILLNODE: lay.cfg_killnode, ExecFn.SHUTDOWN: lay.cfg_shutdown,
             ExecFn.RELOAD_CONFIG: lay.cfg_reload_config}
    seen = set()
    for fn, layout in by_fn.items():
        for d in of_kind(CAPTURE, f"1.{fn}"):
            msg = parse_exec_untrusted(fn, d.body)
            assert layout.build(msg) == d.body
            assert msg.header.size == len(d.body)
            seen.add(fn)
    assert seen == set(by_fn)
    (kill,) = of_kind(CAPTURE, "1.1")
    msg = parse_exec_untrusted(ExecFn.KILLNODE, kill.body)
    assert (msg.nodeid, msg.reason.length) == (2, 27)
    assert bytes(msg.reason.value).startswith(b"Killed by corosync-cfgtool\0")
    # ours differs from the capture only in the garbage corosync leaves after the NUL
    ours = build_killnode(2, bytes(msg.reason.value[:27]), 27)
    assert ours[:24 + 8 + 27] == kill.body[:24 + 8 + 27]
    (shutdown,) = of_kind(CAPTURE, "1.2")
    assert build_shutdown()[:4] == shutdown.body[:4] and build_shutdown()[8:12] == shutdown.body[8:12]
    with pytest.raises(WireError):
        parse_exec_untrusted(ExecFn.KILLNODE, kill.body[:100])
    with pytest.raises(WireError):
        parse_exec_untrusted(9, b"")


# -- requests: ids, sizes, answers ------------------------------------------------------------


def test_every_immediate_request_gets_its_response_id_and_size() -> None:
    h = Harness()
    cases = [
        (lib.encode_request(lib.ReqId.RINGSTATUSGET), 0, 10272),
        (lib.encode_request(lib.ReqId.RINGREENABLE), 1, 24),
        (lib.encode_killnode(9, "x"), 8, 24),
        (lib.encode_u32_request(lib.ReqId.TRYSHUTDOWN, lib.ShutdownFlag.IMMEDIATE), 9, 24),
        (lib.encode_u32_request(lib.ReqId.REPLYTOSHUTDOWN, 1), 13, 24),
        (lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 0), 11, 48),
        (lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 9), 11, 32),
        (lib.encode_request(lib.ReqId.LOCAL_GET), 12, 32),
        (lib.encode_request(lib.ReqId.REOPEN_LOG_FILES), 15, 24),
        (lib.encode_nodestatusget(2), 16, 4200),
        (lib.encode_nodestatusget(2, 2), 16, 32),
        (lib.encode_trackstart(), 2, 24),
        (lib.encode_request(lib.ReqId.TRACKSTOP), 3, 24),
    ]
    for request, res_id, size in cases:
        response = h.raw(5, request)
        assert (struct.unpack_from("<i4xi", response), len(response)) == ((res_id, size), size), request[:4]


def test_generic_refusal_for_unknown_or_short_requests() -> None:
    h = Harness()
    refusal = struct.pack("<i4xi4xi4x", 0, 24, CsError.INVALID_PARAM)
    assert h.raw(1, struct.pack("<i4xi4x", 12, 16)) == refusal
    assert h.raw(1, lib.encode_killnode(2, "x")[:40]) == refusal
    assert h.raw(1, lib.encode_nodestatusget(2)[:24]) == refusal


def test_local_get_node_addrs_ringstatus_and_reenable() -> None:
    h = Harness(nodeid=2)
    assert h.call(1, lib.encode_request(lib.ReqId.LOCAL_GET)) == lib.U32Result(12, 1, 2)
    assert h.call(1, lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 0)) == \
        lib.NodeAddrs(1, socket.AF_INET, ("198.18.0.2",))
    assert h.call(1, lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 3)) == \
        lib.NodeAddrs(1, socket.AF_INET, ("198.18.0.3",))
    assert h.call(1, lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 9)) == lib.NodeAddrs(12, 0, ())
    h.view.addresses[4] = ["fd00::4"]
    assert h.call(1, lib.encode_u32_request(lib.ReqId.GET_NODE_ADDRS, 4)) == \
        lib.NodeAddrs(1, socket.AF_INET6, ("fd00::4",))
    assert h.call(1, lib.encode_request(lib.ReqId.RINGSTATUSGET)) == \
        lib.RingStatus(1, (("0 198.18.0.2", "OK"),))
    assert h.call(1, lib.encode_request(lib.ReqId.RINGREENABLE)) == lib.Status(1, CsError.NOT_SUPPORTED)


def test_reopen_log_files_asks_the_daemon() -> None:
    h = Harness()
    assert h.call(1, lib.encode_request(lib.ReqId.REOPEN_LOG_FILES)) == lib.Status(15, 1)
    assert ReopenLogFiles() in h.take()


# -- node status as corosync-cfgtool prints it -----------------------------------------------------

REAL_CFGTOOL_S = """\
Local node ID 1, transport udpu
LINK ID 0 
\taddr\t= 198.18.0.3
\tstatus:
\t\tnodeid:          1:\tlocalhost
\t\tnodeid:          2:\tconnected
\t\tnodeid:          3:\tconnected
"""
REAL_CFGTOOL_SB = """\
Local node ID 1, transport udpu
LINK ID 0 
\taddr\t= 198.18.0.3
\tstatus\t= n33
"""
REAL_CFGTOOL_N = """\
Local node ID 1, transport udpu
nodeid: 2 reachable
   LINK: 0  (198.18.0.2) enabled connected mtu: 1410

nodeid: 3 reachable
   LINK: 0  (198.18.0.3) enabled connected mtu: 1410

"""
"""What ``corosync-cfgtool -s``, ``-s -b`` and ``-n`` printed on node 1 of a real 3-node
corosync 3.1.7 udpu cluster (198.18.0.1-3, all up)."""


def cfgtool(h: Harness, action: str, nodeids: list[int]) -> str:
    """corosync-cfgtool 3.1.7's printing of -s, -s -b and -n for a udpu cluster, fed
    with this service's answers (as libcfg decodes them)."""
    local = h.call(9, lib.encode_request(lib.ReqId.LOCAL_GET)).value  # type: ignore[union-attr]
    out = [f"Local node ID {local}, transport udpu\n"]
    statuses = []
    for nodeid in sorted(nodeids):
        m = h.call(9, lib.encode_nodestatusget(nodeid))
        assert isinstance(m, lib.NodeStatusResult) and m.error == CsError.OK
        statuses.append(m.status)
    if action == "-n":
        for s in statuses:
            if s.reachable and s.nodeid != local:
                out.append(f"nodeid: {s.nodeid} reachable\n")
                for i, link in enumerate(s.links):
                    if link.enabled:
                        flags = "".join(f" {w}" for w, on in (("enabled", link.enabled), (
                            "connected", link.connected), ("dynconnected", link.dynconnected)) if on)
                        out.append(f"   LINK: {i}  ({link.src_ipaddr}{link.dst_ipaddr}){flags} mtu: {link.mtu}\n")
                out.append("\n")
        return "".join(out)
    other = max(i for i, s in enumerate(statuses) if s.nodeid != local) if len(statuses) > 1 else 0
    here = next(i for i, s in enumerate(statuses) if s.nodeid == local)
    for link in range(lib.LINKS_MAX):
        if statuses[other].links[link].enabled:
            out.append(f"LINK ID {link} \n\taddr\t= {statuses[other].links[link].src_ipaddr}\n")
            if action == "-sb":
                chars = [str(int(s.links[link].enabled) | int(s.links[link].connected) << 1)
                         for s in statuses]
                chars[here] = "n"
                out.append(f"\tstatus\t= {''.join(chars)}\n")
            else:
                out.append("\tstatus:\n")
                for i, s in enumerate(statuses):
                    word = "localhost" if i == here else (
                        "connected" if s.links[link].connected else "disconnected")
                    out.append(f"\t\tnodeid: {s.nodeid:10d}:\t{word}\n")
    return "".join(out)


def test_node_status_prints_as_real_corosync_cfgtool_does() -> None:
    h = Harness()
    assert h.view.mtu == udpu_link_mtu() == 1410
    assert cfgtool(h, "-s", [1, 2, 3]) == REAL_CFGTOOL_S
    assert cfgtool(h, "-sb", [1, 2, 3]) == REAL_CFGTOOL_SB
    assert cfgtool(h, "-n", [1, 2, 3]) == REAL_CFGTOOL_N


def test_node_status_of_absent_and_unknown_nodes() -> None:
    h = Harness(ring=(1, 2))
    assert h.svc.node_status(3) == lib.NodeStatus(3, False, links=(
        lib.Link(enabled=True, connected=False, mtu=1410, src_ipaddr="198.18.0.3"),))
    assert h.svc.node_status(9) == lib.NodeStatus(9, False)
    assert "\t\tnodeid:          3:\tdisconnected\n" in cfgtool(h, "-s", [1, 2, 3])
    h.view.enabled = False  # socket not bound: the tool shows no link at all
    assert cfgtool(h, "-sb", [1, 2, 3]) == "Local node ID 1, transport udpu\n"
    assert h.call(1, lib.encode_nodestatusget(2, version=2)) == lib.U32Result(16, CsError.NOT_SUPPORTED, 0)
    assert udpu_link_mtu(1500, ipv6=True) == 1390


# -- killnode ------------------------------------------------------------------------------------------


def test_killnode_only_for_a_joined_member_and_the_victim_exits() -> None:
    h = Harness()
    assert h.call(1, lib.encode_killnode(9, "why")) == lib.Status(8, CsError.NOT_EXIST)
    h.db.update_membership(joined=[], left=[3], addresses=ADDRS)
    assert h.call(1, lib.encode_killnode(3, "why")) == lib.Status(8, CsError.NOT_EXIST)
    h.db.set_value("runtime.members.4.status", "u32", 1)
    assert h.call(1, lib.encode_killnode(4, "why")) == lib.Status(8, CsError.LIBRARY)
    assert h.sent == []
    assert h.call(1, lib.encode_killnode(2, "Killed by corosync-cfgtool")) == lib.Status(8, CsError.OK)
    (body,) = h.sent
    msg = parse_exec_untrusted(ExecFn.KILLNODE, body)
    assert (msg.nodeid, msg.reason.length) == (2, 27)
    # on node 2 (the victim) and on node 3 (a bystander)
    victim = Harness(nodeid=2)
    victim.svc.deliver(1, ExecFn.KILLNODE, body)
    out = victim.take()
    assert KilledByNode(1, "Killed by corosync-cfgtool") in out
    assert ServiceLog("notice", "CFG", "Killed by node 1 : Killed by corosync-cfgtool") in out
    bystander = Harness(nodeid=3)
    bystander.svc.deliver(1, ExecFn.KILLNODE, body)
    assert bystander.take() == [ServiceLog("debug", "CFG", "request to kill node 2 (us=3)")]


# -- shutdown ------------------------------------------------------------------------------------------


def tryshutdown(flags: int) -> bytes:
    return lib.encode_u32_request(lib.ReqId.TRYSHUTDOWN, flags)


def reply(yes: bool) -> bytes:
    return lib.encode_u32_request(lib.ReqId.REPLYTOSHUTDOWN, int(yes))


def test_shutdown_with_nobody_tracking_is_immediate() -> None:
    h = Harness()
    assert h.call(1, tryshutdown(lib.ShutdownFlag.REQUEST)) == lib.Status(9, CsError.OK)
    assert kinds(h.sent) == [ExecFn.SHUTDOWN]
    # corosync keeps the requester recorded: the node is going down anyway
    assert h.call(2, tryshutdown(lib.ShutdownFlag.REQUEST)) == lib.Status(9, CsError.EXIST)
    h.deliver_sent()
    out = h.take()
    assert ShutdownRequested("shut down by sysadmin") in out
    assert ServiceLog("notice", "CFG", "Node 1 was shut down by sysadmin") in out


def test_shutdown_of_another_node_is_only_logged() -> None:
    h = Harness(nodeid=2)
    h.svc.deliver(1, ExecFn.SHUTDOWN, build_shutdown())
    assert h.take() == [ServiceLog("notice", "CFG", "Node 1 was shut down by sysadmin")]


def test_immediate_shutdown_asks_nobody() -> None:
    h = Harness()
    h.call(2, lib.encode_trackstart())
    assert h.call(1, tryshutdown(lib.ShutdownFlag.IMMEDIATE)) == lib.Status(9, CsError.OK)
    assert kinds(h.sent) == [ExecFn.SHUTDOWN] and h.test_shutdowns() == []


def test_shutdown_vote_all_yes() -> None:
    h = Harness()
    for conn in (2, 3):
        assert h.call(conn, lib.encode_trackstart()) == lib.Status(2, CsError.OK)
    h.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    assert h.responses() == [] and h.svc.shutdown_pending
    assert h.svc.deadline == 105.0
    # newest tracker first, as corosync's list
    assert h.test_shutdowns() == [(3, CsError.OK, 0), (2, CsError.OK, 0)]
    assert h.call(2, reply(True)) == lib.Status(13, CsError.OK)
    assert h.sent == []
    h.request(3, reply(True))
    assert h.responses() == [(1, lib.Status(9, CsError.OK)), (3, lib.Status(13, CsError.OK))]
    assert kinds(h.sent) == [ExecFn.SHUTDOWN] and h.svc.deadline is None


def test_shutdown_vote_with_a_no_is_busy_unless_regardless() -> None:
    for flags, result, sent in ((lib.ShutdownFlag.REQUEST, CsError.BUSY, []),
                                (lib.ShutdownFlag.REGARDLESS, CsError.OK, [ExecFn.SHUTDOWN])):
        h = Harness()
        h.call(2, lib.encode_trackstart())
        h.call(3, lib.encode_trackstart())
        h.request(1, tryshutdown(flags))
        assert [t[2] for t in h.test_shutdowns()] == [flags, flags]
        h.call(2, reply(False))
        h.request(3, reply(True))
        assert h.responses()[0] == (1, lib.Status(9, result))
        assert kinds(h.sent) == sent
        # the vote is over: late replies are refused
        assert h.call(2, reply(True)) == lib.Status(13, CsError.ACCESS)


def test_shutdown_times_out_on_the_virtual_clock() -> None:
    h = Harness()
    h.db.set_value("cfg.shutdown_timeout", "u32", 2000)
    h.call(2, lib.encode_trackstart())
    h.call(3, lib.encode_trackstart())
    h.call(3, tryshutdown(lib.ShutdownFlag.IMMEDIATE))  # a tracker that once asked itself
    h.sent.clear()
    h.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    h.test_shutdowns()
    assert h.svc.deadline == 102.0
    h.call(2, reply(True))
    h.svc.handle_timer(101.9)
    assert h.responses() == [] and h.svc.shutdown_pending
    h.svc.handle_timer(102.0)
    assert h.responses() == [(1, lib.Status(9, CsError.BUSY))]
    assert h.sent == [] and h.svc.deadline is None and not h.svc.shutdown_pending
    # corosync tells of the timeout only trackers that once asked for a shutdown
    # (an immediate request does not count, so here nobody)
    assert h.test_shutdowns() == []
    assert h.take() == [ServiceLog("debug", "CFG", "shutdown decision is: (yes count: 1, no count: 2) flags=0")]
    h.svc.handle_timer(200.0)
    assert h.take() == []


def test_timeout_event_reaches_trackers_that_tried_a_shutdown() -> None:
    h = Harness()
    h.call(2, lib.encode_trackstart())
    h.call(3, lib.encode_trackstart())
    h.request(3, tryshutdown(lib.ShutdownFlag.REQUEST))  # 3 asks, 2 says no
    h.test_shutdowns()
    h.request(2, reply(False))
    assert h.responses() == [(3, lib.Status(9, CsError.BUSY)), (2, lib.Status(13, CsError.OK))]
    h.request(1, tryshutdown(lib.ShutdownFlag.REGARDLESS))  # now 1 asks; 2 and 3 are polled
    assert sorted(c for c, _, _ in h.test_shutdowns()) == [2, 3]
    h.svc.handle_timer(h.svc.deadline or 0)
    assert h.responses() == [(1, lib.Status(9, CsError.OK))]  # regardless: down it goes
    assert kinds(h.sent) == [ExecFn.SHUTDOWN]
    assert h.test_shutdowns() == [(3, CsError.TIMEOUT, lib.ShutdownFlag.REGARDLESS)]


def test_concurrent_shutdown_requests_and_replies_without_one() -> None:
    h = Harness()
    assert h.call(1, reply(True)) == lib.Status(13, CsError.ACCESS)
    h.call(2, lib.encode_trackstart())
    h.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    assert h.call(4, tryshutdown(lib.ShutdownFlag.REQUEST)) == lib.Status(9, CsError.EXIST)


def test_trackers_leaving_count_as_yes_and_the_requester_leaving_cancels() -> None:
    h = Harness()
    h.call(2, lib.encode_trackstart())
    h.call(3, lib.encode_trackstart())
    h.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    h.test_shutdowns()
    h.call(2, reply(False))
    assert h.call(2, lib.encode_request(lib.ReqId.TRACKSTOP)) == lib.Status(3, CsError.OK)
    assert h.responses() == [] and h.svc.shutdown_pending  # 2's "no" became a "yes"; 3 pending
    h.svc.lib_disconnect(3)
    assert h.responses() == [(1, lib.Status(9, CsError.OK))] and kinds(h.sent) == [ExecFn.SHUTDOWN]
    # a requester that goes away cancels its vote
    h2 = Harness()
    h2.call(2, lib.encode_trackstart())
    h2.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    h2.svc.lib_disconnect(1)
    assert not h2.svc.shutdown_pending and h2.svc.deadline is None
    assert h2.call(2, reply(True)) == lib.Status(13, CsError.ACCESS)


def test_a_tracker_joining_during_a_vote_is_asked_too() -> None:
    h = Harness()
    h.call(2, lib.encode_trackstart())
    h.request(1, tryshutdown(lib.ShutdownFlag.REQUEST))
    h.test_shutdowns()
    h.call(4, lib.encode_trackstart())
    assert h.test_shutdowns() == [(4, CsError.OK, 0)]
    h.call(2, reply(True))
    assert h.responses() == []
    h.request(4, reply(True))
    assert h.responses()[0] == (1, lib.Status(9, CsError.OK))
    # a second TRACKSTART of the same connection changes nothing
    h.call(4, lib.encode_trackstart())
    assert h.test_shutdowns() == []


# -- reload ------------------------------------------------------------------------------------------------

CONF = """\
totem {
\tversion: 2
\tcluster_name: demo
\ttransport: udpu
}
nodelist {
\tnode {
\t\tring0_addr: 127.0.0.1
\t\tnodeid: 1
\t}
%s}
quorum {
\tprovider: corosync_votequorum
}
"""
NODE2 = "\tnode {\n\t\tring0_addr: 127.0.0.2\n\t\tnodeid: 2\n\t}\n"


def test_reload_goes_around_the_ring_and_answers_when_done() -> None:
    h = Harness()
    h.db = h.svc.db = CmapDb.from_config(parse_text(CONF % "", local_node=1))
    h.request(7, lib.encode_request(lib.ReqId.RELOAD_CONFIG))
    assert h.responses() == [] and kinds(h.sent) == [ExecFn.RELOAD_CONFIG]
    msg = parse_exec_untrusted(ExecFn.RELOAD_CONFIG, h.sent[0])
    assert (msg.source.nodeid, msg.source.conn) == (1, 7)
    h.deliver_sent()
    out = h.take()
    assert ReloadRequested(1, 7) in out
    assert ServiceLog("notice", "CFG", "Config reload requested by node 1") in out
    changes: list[tuple[int, str, object]] = []
    h.db.track_add("config.", TrackType.ADD | TrackType.MODIFY | TrackType.PREFIX,
                   lambda t, n: changes.append((n.event, n.key, n.new.python() if n.new else None)))
    assert h.svc.finish_reload(7, parse_text(CONF % NODE2, local_node=1)) is CsError.OK
    assert h.responses() == [(7, lib.Status(14, CsError.OK))]
    assert h.db.get("nodelist.node.1.nodeid") == Value.of("u32", 2)
    assert changes == [
        (TrackType.ADD, "config.totemconfig_reload_in_progress", 1),
        (TrackType.ADD, "config.reload_in_progress", 1),
        (TrackType.ADD, "config.reload_status", CsError.OK),
        (TrackType.MODIFY, "config.totemconfig_reload_in_progress", 0),
        (TrackType.MODIFY, "config.reload_in_progress", 0),
    ]
    assert h.db.get("config.reload_status") == Value(ValueType.INT32, struct.pack("<i", 1))


def test_reload_of_another_node_and_a_failed_reload() -> None:
    h = Harness(nodeid=2)
    h.svc.deliver(1, ExecFn.RELOAD_CONFIG, build_reload_config(1, 7))
    assert ReloadRequested(1, None) in h.take()
    assert h.svc.finish_reload(None, None, "parse error") is CsError.INVALID_PARAM
    out = h.take()
    assert ServiceLog("error", "CFG", "Unable to reload config file: parse error") in out
    assert not any(isinstance(e, LibResponse) for e in out)
    assert h.db.python("config.reload_status") == CsError.INVALID_PARAM
    assert h.db.python("config.totemconfig_reload_in_progress") == 0


def test_refused_multicasts_wait_for_the_ring() -> None:
    h = Harness()
    open_ = [False]
    h.svc.attach(h.events.append, lambda body: open_[0] and (h.sent.append(body) or True))
    h.call(1, lib.encode_killnode(2, "x"))
    h.request(1, lib.encode_request(lib.ReqId.RELOAD_CONFIG))
    assert h.sent == [] and h.svc.pending_multicasts == 2
    open_[0] = True
    h.svc.flush_pending()
    assert kinds(h.sent) == [ExecFn.KILLNODE, ExecFn.RELOAD_CONFIG]


def test_node_view_from_config() -> None:
    cfg = parse_text(CONF % NODE2, local_node=1)
    view = NodeView.from_config(cfg)
    assert view.node_addresses(2) == ["127.0.0.2"] and view.link_mtu() == 1410
    assert list(view.members()) == [] and view.link_enabled()


@settings(max_examples=200, deadline=None)
@given(msg_id=st.integers(-2, 14), body=st.binary(max_size=300))
def test_any_request_bytes_get_at_most_one_answer(msg_id: int, body: bytes) -> None:
    h = Harness()
    h.request(1, struct.pack("<i4xi4x", msg_id, 16 + len(body)) + body)
    assert len(h.responses()) <= 1  # TRYSHUTDOWN and RELOAD_CONFIG answer later


@settings(max_examples=200, deadline=None)
@given(fn=st.integers(0, 4), data=st.binary(max_size=300))
def test_exec_and_client_decoding_raise_only_wire_error(fn: int, data: bytes) -> None:
    for decode in (lambda: parse_exec_untrusted(fn, data), lambda: lib.decode_message(data)):
        try:
            decode()
        except WireError:
            pass
