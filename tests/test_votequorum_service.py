"""The votequorum and quorum services (totem/services/votequorum.py, quorum.py).

Three kinds of checks:

* replays of captures of real corosync 3.1.7 nodes: a node's SyncEngine with the
  services linked as totemd links them gets that node's configurations and every
  delivered message; its NODEINFOs must be the real node's, byte for byte (flags
  included), and its VOTEQ/QUORUM log lines the real node's log lines;
* a pure multi-node bus (every node a SyncEngine with the default services, one
  total order per partition) for quorate transitions, RECONFIGURE, the
  last_man_standing window on a virtual clock and config reloads;
* the client libraries: requests, responses and events byte for byte against the
  layouts of client-ipc.md §2.3-2.4.
"""

from __future__ import annotations

import re
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

from quorum.arithmetic import InfoFlags, NodeFlags, QuorumConfig, QuorumConfigError
from test_services_wire import CPG_CAPTURE, UNION_CAPTURE, delivered
from test_sync_replay import RINGS, own_sync_messages
from totem.lib import quorum as qlib
from totem.lib import votequorum as vqlib
from totem.config import parse_text
from totem.lib.common import TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT, CsError
from totem.services import CmapService, CpgService
from totem.services.base import LibConnection, LibEvent, LibResponse, ServiceLog
from totem.services.quorum import QuorumService, quorum_services, view_lines
from totem.services.votequorum import (
    FileEvTrackingStore,
    MemoryEvTrackingStore,
    NodeInfo,
    NodeState,
    QdeviceReg,
    QdeviceReconfigure,
    QuorumChanged,
    ReconfigParam,
    Reconfigure,
    VotequorumService,
    arithmetic_config,
)
from totem.srp import ConfigurationChanged, ConfigurationKind
from totem.sync import SyncEngine
from totem.wire import RingId

CAPTURES = Path("/work/shared/captures")
TRANS, REG = ConfigurationKind.TRANSITIONAL, ConfigurationKind.REGULAR


def ones(n: int) -> dict[int, int]:
    return {i: 1 for i in range(1, n + 1)}


def linked(nodeid: int, **kw) -> tuple[QuorumService, VotequorumService, SyncEngine]:
    vq = VotequorumService(nodeid, **kw)
    q = QuorumService(nodeid, vq)
    engine = SyncEngine(nodeid, [CmapService(nodeid), CpgService(nodeid), q, vq])
    return q, vq, engine


# -- replays of real corosync nodes ---------------------------------------------------------------------

UNION_NODE2 = [(RingId(2, 5), (), (2,)), (RingId(1, 0x11), (2,), (1, 2))]


@dataclass
class Replayed:
    sent: list
    events: list
    vq: VotequorumService
    engine: SyncEngine


def replay(name: str, node: int, rings) -> Replayed:
    """What the node sent and reported over the capture's rings."""
    q, vq, engine = linked(node, expected_votes=3)
    sent, events = [], []
    msgs = delivered(name)
    for ring, trans, members in rings:
        engine.configuration_changed(ConfigurationChanged(TRANS, ring, trans, (), ()))
        sent += engine.configuration_changed(ConfigurationChanged(REG, ring, members, (), ()))
        events += engine.take_events()
        for d in (d for d in msgs if d.ring == ring):
            sent += engine.deliver(d.sender, d.groups, d.body)
            events += engine.take_events()
    return Replayed(sent, events, vq, engine)


@pytest.mark.parametrize("node", [1, 2, 3])
def test_sync_nodeinfos_are_the_real_nodes_byte_for_byte(node: int) -> None:
    """Every NODEINFO a node of the 3-node capture sent in its sync steps (FIRST alone,
    0 before quorum, QUORATE after), flags included."""
    ours = replay(CPG_CAPTURE, node, RINGS[CPG_CAPTURE][node]).sent
    theirs = [t for ring in {r for r, _, _ in RINGS[CPG_CAPTURE][node]}
              for t in own_sync_messages([d for d in delivered(CPG_CAPTURE) if d.ring == ring], node)]
    ours_vq = sorted(o.body for o in ours if o.body[:4] == b"\0\0\x05\0")
    theirs_vq = sorted(t.body for t in theirs if t.kind == "5.0")
    assert ours_vq == theirs_vq
    assert {b[28:32] for b in ours_vq} >= {bytes(4)}
    if node == 1:
        # spec §6.6, frame 441: node 1's own NODEINFO (quorate) and the device slot
        assert NodeInfo(1, 1, 3, 1).pack() in ours_vq and NodeInfo(1, 1, 3, 8).pack() in ours_vq


def test_remote_quorum_device_learnt_and_announced_like_corosync() -> None:
    """services-union-and-stall, node 2 (real corosync, no device) joining node 1 whose
    quorum device is registered: node 2 records the device name from node 1's
    QDEVICE_REG and, like every corosync node, re-announces it in later syncs."""
    r = replay(UNION_CAPTURE, 2, UNION_NODE2)
    ours, vq = r.sent, r.vq
    theirs = [d.body for d in delivered(UNION_CAPTURE) if d.sender == 2 and d.kind.startswith("5.")]
    assert theirs[0] == theirs[1] == NodeInfo(2, 1, 3, NodeFlags.FIRST).pack()
    theirs = theirs[1:]  # the first is corosync's start-up NODEINFO, which totemd does not send
    assert [o.body for o in ours if o.body[:2] == b"\0\0" and o.body[2:4] == b"\x05\0"] == theirs
    assert vq.qdevice_name == b"svcw-qd"
    assert vq.quorate and vq.vq.nodes[1].flags == NodeFlags.QUORATE | NodeFlags.QDEVICE_REGISTERED
    # the next sync re-announces the name
    vq.sync_init((1, 2), (1, 2), RingId(1, 0x15))
    msgs, done = vq.sync_process()
    assert done and msgs[2] == QdeviceReg(1, b"svcw-qd").pack()


CONN = re.compile(r"0x[0-9a-f]+|\b9000[12]\b")
Q_CONN, VQ_CONN = 90001, 90002


def log_lines(path: Path) -> list[str]:
    """The QUORUM and VOTEQ lines of a corosync log from its first sync on (before it:
    start-up lines, and corosync's start-up NODEINFO being sent), connections as <conn>."""
    out: list[str] = []
    for line in path.read_text().splitlines():
        m = re.search(r"\[(QUORUM|VOTEQ) ?\] (.*)$", line)
        if m and (out or m.group(2).startswith("Sync members")):
            out.append(CONN.sub("<conn>", f"{m.group(1)} {m.group(2)}"))
    return out


def our_lines(events: list) -> list[str]:
    return [CONN.sub("<conn>", f"{e.subsys} {e.text}") for e in events
            if isinstance(e, ServiceLog) and e.subsys in ("QUORUM", "VOTEQ")]


def quorumtool_status(node: int, members: tuple[int, ...], r: Replayed) -> list:
    """What ``corosync-quorumtool -s`` asks (the session at the end of the logs)."""
    vq = r.vq
    (q,) = [s for s in r.engine.services.values() if isinstance(s, QuorumService)]
    q.lib_connect(LibConnection(Q_CONN, 1, 0, 0))
    vq.lib_connect(LibConnection(VQ_CONN, 1, 0, 0))
    for req in (qlib.encode_request(qlib.ReqId.GETTYPE), qlib.encode_request(qlib.ReqId.GETQUORATE),
                qlib.encode_trackstart(TRACK_CURRENT), qlib.encode_request(qlib.ReqId.TRACKSTOP)):
        q.lib_request(Q_CONN, struct.unpack_from("<i", req)[0], req)
    vq.lib_request(VQ_CONN, vqlib.ReqId.TRACKSTART, vqlib.encode_trackstart(0, TRACK_CURRENT))
    for n in (node, *members):
        vq.lib_request(VQ_CONN, vqlib.ReqId.GETINFO, vqlib.encode_getinfo(n))
    q.lib_disconnect(Q_CONN)
    vq.lib_disconnect(VQ_CONN)
    return r.engine.take_events()


@pytest.mark.parametrize("node", [1, 2, 3])
def test_log_lines_are_the_real_nodes(node: int) -> None:
    """Every QUORUM and VOTEQ line (debug included) from the node's first sync on, and
    for nodes 1 and 3 the corosync-quorumtool session that ends their logs."""
    rings = RINGS[CPG_CAPTURE][node]
    r = replay(CPG_CAPTURE, node, rings)
    if node != 2:
        r.events += quorumtool_status(node, rings[-1][2], r)
    assert our_lines(r.events) == log_lines(CAPTURES / f"services-3node-cpg-node{node}.log")


def test_log_lines_with_a_remote_device_are_the_real_nodes() -> None:
    """services-union-and-stall node 2; quorumtool ran there every 5 s during the stall,
    its lines are left out."""
    events = replay(UNION_CAPTURE, 2, UNION_NODE2).events
    theirs = log_lines(CAPTURES / "services-union-and-stall-node2.log")
    tool = [i for i, line in enumerate(theirs) if line.endswith("sending initial status to <conn>")]
    skip = {j for i in tool for j in (i, i + 1, i + 2)}
    theirs = [line for i, line in enumerate(theirs) if i not in skip and "<conn>" not in line
              and not line.startswith("VOTEQ getinfo response")]
    assert our_lines(events) == theirs


def test_quorum_changed_at_every_activation() -> None:
    events = replay(CPG_CAPTURE, 1, RINGS[CPG_CAPTURE][1]).events
    assert [e for e in events if isinstance(e, QuorumChanged)] == [
        QuorumChanged(False, (1,), RingId(1, 5)),
        QuorumChanged(True, (1, 2), RingId(1, 9)),
        QuorumChanged(True, (1, 2, 3), RingId(1, 13)),
        QuorumChanged(True, (1, 2), RingId(1, 17)),
    ]


def test_view_lines_are_cut_as_corosync_cuts_them() -> None:
    assert view_lines("Members", (1, 2, 3)) == ["Members[3]: 1 2 3"]
    assert view_lines("Members", ()) == ["Members[0]:"]
    lines = view_lines("Members", tuple(range(1000, 1030)))
    # 63 characters of ids per line; the entry that did not fit appears cut, then whole
    assert lines[0] == "Members[30]:" + "".join(f" {i}" for i in range(1000, 1012)) + " 10\\"
    assert lines[1].startswith("Members[30]: 1012 ")
    assert lines[-1] == "Members[30]:" + "".join(f" {i}" for i in range(1024, 1030))


# -- a pure multi-node bus ------------------------------------------------------------------------------


class Bus:
    """Nodes running SyncEngine + cmap/cpg/quorum/votequorum; each partition is one
    total order (a FIFO), and every ring is run until nothing more is sent."""

    def __init__(self, configs: dict[int, QuorumConfig], **kw) -> None:
        self.now = 0.0
        self.configs = configs
        self.seq = 0
        self.q: dict[int, QuorumService] = {}
        self.vq: dict[int, VotequorumService] = {}
        self.engines: dict[int, SyncEngine] = {}
        self.events: dict[int, list] = {}
        self.view: dict[int, tuple[int, ...]] = {}
        self.stores = {n: MemoryEvTrackingStore() for n in configs}
        for n in configs:
            self.boot(n, **kw)

    def boot(self, n: int, **kw) -> None:
        self.q[n], self.vq[n], self.engines[n] = linked(n, config=self.configs[n], ev_store=self.stores[n],
                                                        clock=lambda: self.now, **kw)
        self.events[n] = []
        self.view[n] = ()

    def ring(self, *members: int) -> RingId:
        self.seq += 4
        rid = RingId(min(members), self.seq)
        queue: deque = deque()
        for n in members:
            engine = self.engines[n]
            trans = tuple(x for x in self.view[n] if x in members)
            queue.extend((n, o) for o in engine.configuration_changed(ConfigurationChanged(TRANS, rid, trans, (), ())))
            queue.extend((n, o) for o in engine.configuration_changed(ConfigurationChanged(REG, rid, members, (), ())))
            self.view[n] = tuple(members)
        self.run(queue)
        return rid

    def run(self, queue: deque | None = None) -> None:
        queue = queue if queue is not None else deque()
        while True:
            while queue:
                sender, o = queue.popleft()
                for m in self.view[sender]:
                    queue.extend((m, x) for x in self.engines[m].deliver(sender, o.groups, o.body))
            for n, engine in self.engines.items():
                for svc in (self.q[n], self.vq[n]):
                    svc.flush_pending()
                queue.extend((n, o) for o in engine.poll())
            for n, engine in self.engines.items():
                self.events[n] += engine.take_events()
            if not queue:
                return

    def tick(self, now: float) -> None:
        self.now = now
        for vq in self.vq.values():
            vq.handle_timer(now)
        self.run()

    def request(self, n: int, svc, conn: int, data: bytes) -> list[bytes]:
        """A client request on node n; returns everything connection ``conn`` got (responses
        and events, in order)."""
        if conn not in svc.clients:
            svc.lib_connect(LibConnection(conn, 100, 0, 0))
        mark = len(self.events[n])
        msg_id = struct.unpack_from("<i", data)[0]
        svc.lib_request(conn, msg_id, data)
        self.run()
        return self.lib(n, conn, mark)

    def lib(self, n: int, conn: int, since: int = 0) -> list[bytes]:
        return [e.data for e in self.events[n][since:] if isinstance(e, (LibResponse, LibEvent)) and e.conn == conn]

    def info(self, n: int):
        return self.vq[n].vq.info()

    def quorate(self, *nodes: int) -> set[bool]:
        return {self.q[n].quorate for n in nodes}


def test_three_nodes_come_and_go() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    bus.ring(1)
    assert bus.quorate(1) == {False}
    bus.ring(1, 2)
    assert bus.quorate(1, 2) == {True}
    assert {(bus.info(n).total_votes, bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2)} == {(2, 3, 2)}
    bus.ring(3)
    bus.ring(1, 2, 3)
    assert bus.quorate(1, 2, 3) == {True}
    assert {bus.info(n).total_votes for n in (1, 2, 3)} == {3}
    bus.ring(1)
    bus.ring(2, 3)
    assert bus.quorate(1) == {False} and bus.quorate(2, 3) == {True}
    assert bus.vq[1].vq.nodes[2].state == NodeState.DEAD
    # the log lines of the quorum layer on node 1
    lines = [e.text for e in bus.events[1] if isinstance(e, ServiceLog) and e.subsys == "QUORUM"
             and e.level == "notice"]
    assert "This node is within the primary component and will provide service." in lines
    assert lines[-1] == "Members[1]: 1"
    assert lines[-2] == "This node is within the non-primary component and will NOT provide any services."


def test_two_node_and_wait_for_all() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(2), two_node=True) for n in (1, 2)})
    bus.ring(1)
    assert bus.quorate(1) == {False}            # wait_for_all implied by two_node
    assert bus.info(1).wait_for_all_status
    assert bus.vq[1].nodeinfo_message()[28] & NodeFlags.WFASTATUS
    bus.ring(1, 2)
    assert bus.quorate(1, 2) == {True}
    bus.ring(1)
    bus.ring(2)
    assert bus.quorate(1, 2) == {True}          # each half keeps quorum (fencing decides)
    assert bus.info(1).flag_names == ("2Node", "Quorate", "WaitForAll")


def test_reconfigure_expected_and_votes_from_the_library() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(5)) for n in range(1, 6)})
    bus.ring(1, 2, 3, 4, 5)
    bus.ring(1, 2, 3)
    # corosync-quorumtool -e 2: below the votes present -> refused
    assert bus.request(1, bus.vq[1], 7, vqlib.encode_setexpected(2)) == [vqlib.encode_status(CsError.INVALID_PARAM)]
    assert bus.request(1, bus.vq[1], 7, vqlib.encode_setexpected(3)) == [vqlib.encode_status()]
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2, 3)} == {(3, 2)}
    bus.ring(1, 2)
    assert bus.quorate(1, 2) == {True}
    # corosync-quorumtool -v 3 -n 2
    assert bus.request(2, bus.vq[2], 8, vqlib.encode_setvotes(2, 3)) == [vqlib.encode_status()]
    assert {bus.vq[n].vq.nodes[2].votes for n in (1, 2)} == {3}
    assert {(bus.info(n).total_votes, bus.info(n).expected_votes) for n in (1, 2)} == {(4, 4)}
    assert bus.request(2, bus.vq[2], 8, vqlib.encode_setvotes(9, 1)) == [
        vqlib.encode_status(CsError.NAME_NOT_FOUND)]
    # the RECONFIGURE on the wire
    body = Reconfigure(2, 3, ReconfigParam.NODE_VOTES).pack()
    assert len(body) == 32 and body[:4] == b"\x01\0\x05\0" and body[16:25] == bytes.fromhex("020000000300000002")


def test_reconfigure_requested_during_sync_goes_out_after_it() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    bus.ring(1, 2, 3)
    vq = bus.vq[1]
    bus.engines[1].in_sync = True               # a sync is running: the ring refuses
    vq.lib_connect(LibConnection(5, 1, 0, 0))
    vq.lib_request(5, vqlib.ReqId.SETEXPECTED, vqlib.encode_setexpected(4))
    assert [e.data for e in bus.engines[1].take_events() if isinstance(e, LibResponse)] == [vqlib.encode_status()]
    assert bus.info(2).expected_votes == 3
    bus.engines[1].in_sync = False
    bus.run()
    assert {bus.info(n).expected_votes for n in (1, 2, 3)} == {4}


def test_cancel_wait_for_all() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3), wait_for_all=True) for n in (1, 2, 3)})
    bus.ring(1, 2)
    assert bus.quorate(1, 2) == {False}
    bus.vq[1].cancel_wait_for_all()
    bus.run()
    assert bus.quorate(1, 2) == {True}
    assert any(isinstance(e, ServiceLog) and e.text == "wait_for_all_status reset by user on node 1."
               for e in bus.events[2])


def test_last_man_standing_window_on_a_virtual_clock() -> None:
    cfg = QuorumConfig(nodelist=ones(5), last_man_standing=True, last_man_standing_window=2000,
                       wait_for_all=True)
    bus = Bus({n: cfg for n in range(1, 6)})
    bus.ring(1, 2, 3, 4, 5)
    assert all(vq.next_deadline() is None for vq in bus.vq.values())
    bus.now = 10.0
    bus.ring(1, 2, 3)
    assert {bus.vq[n].next_deadline() for n in (1, 2, 3)} == {12.0}
    bus.tick(11.999)
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2, 3)} == {(5, 3)}
    bus.tick(12.0)
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2, 3)} == {(3, 2)}
    assert all(bus.vq[n].next_deadline() is None for n in (1, 2, 3))
    bus.now = 20.0
    bus.ring(1, 2)
    assert bus.quorate(1, 2) == {True}         # 2 of the recalculated 3
    bus.tick(22.0)
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2)} == {(2, 2)}


def test_reload_adds_a_node_to_the_nodelist() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    bus.ring(1, 2, 3)
    bigger = QuorumConfig(nodelist=ones(5))
    for n in (1, 2, 3):
        bus.vq[n].reload(bigger)
    bus.run()
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2, 3)} == {(5, 3)}
    assert bus.quorate(1, 2, 3) == {True}


def test_allow_downscale_leaving_node_lowers_quorum() -> None:
    cfg = QuorumConfig(nodelist=ones(5), allow_downscale=True)
    bus = Bus({n: cfg for n in range(1, 6)})
    bus.ring(1, 2, 3, 4, 5)
    msg = bus.vq[5].leave_message()
    assert msg is not None and msg[28] & NodeFlags.LEAVING
    for n in range(1, 6):
        bus.engines[n].deliver(5, (b"a",), msg)
    bus.ring(1, 2, 3, 4)
    # expected votes follow the nodes left; quorum is bounded by the start-up expected votes
    assert {(bus.info(n).expected_votes, bus.info(n).quorum) for n in (1, 2, 3, 4)} == {(4, 3)}
    assert bus.stores[1].value == 5                # the ev_tracking barrier was written, never lowered
    assert VotequorumService(1, config=QuorumConfig(nodelist=ones(5))).leave_message() is None


def test_ev_tracking_file(tmp_path: Path) -> None:
    store = FileEvTrackingStore(tmp_path)
    assert store.load() == 0 and (tmp_path / "ev_tracking").read_bytes() == bytes(4)
    store.save(7)
    assert FileEvTrackingStore(tmp_path).load() == 7
    cfg = QuorumConfig(expected_votes=3, expected_votes_tracking=True)
    vq = VotequorumService(1, config=cfg, ev_store=FileEvTrackingStore(tmp_path))
    assert vq.vq.info().expected_votes == 7        # the stored barrier wins
    with pytest.raises(QuorumConfigError, match="ev_tracking"):
        VotequorumService(1, config=cfg, ev_store=FileEvTrackingStore(tmp_path / "missing"))


def test_device_nodeinfo_from_an_unknown_sender_is_dropped() -> None:
    q, vq, engine = linked(1, expected_votes=3)
    engine.deliver(9, (b"a",), NodeInfo(0, 5, 0, 0).pack())
    logs = [e for e in engine.take_events() if isinstance(e, ServiceLog) and e.level == "error"]
    assert logs and "before its own nodeinfo" in logs[0].text
    assert vq.vq.device.votes == 0


def test_remote_device_votes_and_rename() -> None:
    q, vq, engine = linked(2, config=QuorumConfig(nodelist=ones(3)))
    engine.configuration_changed(ConfigurationChanged(TRANS, RingId(1, 8), (), (), ()))
    engine.configuration_changed(ConfigurationChanged(REG, RingId(1, 8), (1, 2), (), ()))
    flags = NodeFlags.QUORATE | NodeFlags.QDEVICE_REGISTERED | NodeFlags.QDEVICE_ALIVE | NodeFlags.QDEVICE_CAST_VOTE
    engine.deliver(1, (b"a",), NodeInfo(1, 1, 3, flags).pack())
    engine.deliver(1, (b"a",), NodeInfo(0, 2, 0, 0).pack())
    # a quorate sender's device votes are taken as they are; counted for expected votes
    assert vq.vq.device.votes == 2
    info = vq.vq.getinfo(1)
    assert info is not None and info.total_votes == 2 + 2 and info.flags & InfoFlags.QDEVICE_CAST_VOTE
    engine.deliver(1, (b"a",), QdeviceReg(1, b"qd").pack())
    engine.deliver(1, (b"a",), QdeviceReconfigure(b"qd", b"qd2").pack())
    assert vq.qdevice_name == b"qd2"


def test_config_from_a_cluster_config() -> None:
    text = ("totem {\n\tversion: 2\n\tcluster_name: c\n\ttransport: udpu\n}\n"
            "quorum {\n\tprovider: corosync_votequorum\n\tauto_tie_breaker: 1\n"
            "\tauto_tie_breaker_node: 3 1\n\twait_for_all: 0\n}\n"
            "nodelist {\n" + "".join(f"\tnode {{\n\t\tnodeid: {i}\n\t\tring0_addr: 10.0.0.{i}\n"
                                     f"\t\tquorum_votes: {1 + 2 * (i == 4)}\n\t}}\n" for i in range(1, 5)) + "}\n")
    cluster = parse_text(text, hostname="x", addresses=["10.0.0.2"])
    cfg = arithmetic_config(cluster)
    assert cfg.nodelist == {1: 1, 2: 1, 3: 1, 4: 3} and cfg.wait_for_all is False
    vq = VotequorumService(cluster.nodeid, config=cfg)
    assert (vq.vq.atb, vq.vq.atb_list, vq.vq.us.votes, vq.vq.us.expected_votes) == (3, (3, 1), 1, 6)
    # the quorum layer as the daemon builds it: linked, or the quorum service alone
    q, vq = quorum_services(cluster.nodeid, cluster=cluster)
    assert isinstance(q, QuorumService) and isinstance(vq, VotequorumService)
    assert q.quorum_type == qlib.QUORUM_SET and vq.observers == [q.quorum_changed]
    no_provider = parse_text(text.replace("\tprovider: corosync_votequorum\n", ""), hostname="x",
                             addresses=["10.0.0.2"])
    (alone,) = quorum_services(2, cluster=no_provider)
    assert isinstance(alone, QuorumService) and alone.quorum_type == qlib.QUORUM_FREE and alone.quorate


# -- the client libraries ------------------------------------------------------------------------------


def test_votequorum_request_layouts() -> None:
    assert vqlib.encode_getinfo(3) == struct.pack("<i4xi4xi4x", 0, 24, 3)
    assert vqlib.encode_setexpected(5) == struct.pack("<i4xi4xI4x", 1, 24, 5)
    assert vqlib.encode_setvotes(4, 2) == struct.pack("<i4xi4xIi", 2, 24, 2, 4)
    assert vqlib.encode_trackstart(0xDEADBEEF12, TRACK_CHANGES) == struct.pack("<i4xi4xQI4x", 3, 32, 0xDEADBEEF12, 2)
    assert vqlib.encode_trackstop() == struct.pack("<i4xi4x", 4, 16)
    sizes = {vqlib.ReqId.QDEVICE_REGISTER: 272, vqlib.ReqId.QDEVICE_UNREGISTER: 272,
             vqlib.ReqId.QDEVICE_UPDATE: 528, vqlib.ReqId.QDEVICE_POLL: 296, vqlib.ReqId.QDEVICE_MASTER_WINS: 280}
    for req, size in sizes.items():
        data = vqlib.encode_qdevice(req, b"dev", newname=b"new", cast_vote=1, ring_id=RingId(1, 9), allow=1)
        assert len(data) == size and struct.unpack_from("<i4xi", data) == (req, size)
        back = vqlib.decode_qdevice(req, data)
        assert back.name == b"dev"
    poll = vqlib.encode_qdevice(vqlib.ReqId.QDEVICE_POLL, b"dev", cast_vote=1, ring_id=RingId(1, 9))
    assert struct.unpack_from("<i4xI4xQ", poll, 272) == (1, 1, 9)
    assert (vqlib.decode_getinfo(vqlib.encode_getinfo(3)), vqlib.decode_setvotes(vqlib.encode_setvotes(4, 2)),
            vqlib.decode_trackstart(vqlib.encode_trackstart(9, 1))) == (3, (4, 2), (9, 1))


def test_votequorum_response_and_event_layouts() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3), wait_for_all=True) for n in (1, 2, 3)})
    bus.ring(1, 2, 3)
    rid = bus.ring(1, 2)
    (info,) = bus.request(1, bus.vq[1], 1, vqlib.encode_getinfo(0))
    assert len(info) == 320
    assert struct.unpack_from("<i4xi4xi4x9I", info) == (1, 320, CsError.OK, 1, 1, 1, 3, 3, 2, 2,
                                                       2 | 4, 0)
    assert info[60:] == bytes(260)
    assert vqlib.decode_message(info) == vqlib.GetInfo(CsError.OK, 1, 1, 1, 3, 3, 2, 2, 6, 0, b"")
    (dead,) = bus.request(1, bus.vq[1], 1, vqlib.encode_getinfo(3))
    assert struct.unpack_from("<8I", dead, 24)[:4] == (3, NodeState.DEAD, 1, 3)
    (missing,) = bus.request(1, bus.vq[1], 1, vqlib.encode_getinfo(42))
    assert len(missing) == 320 and struct.unpack_from("<i4xi4xi", missing) == (1, 320, CsError.NOT_EXIST)
    # TRACKSTART with CURRENT|CHANGES: nodelist then quorum notification (context), then the status
    out = bus.request(1, bus.vq[1], 2, vqlib.encode_trackstart(0x1122334455, TRACK_CURRENT | TRACK_CHANGES))
    nodelist, quorum, status = out
    assert nodelist == struct.pack("<i4xi4xi4xQI4xQI4x2I", 5, 64, 1, 0x1122334455, 1, rid.seq, 2, 1, 2)
    # every known node with its state, in votequorum.c's list order: a node with a higher id
    # than all known ones goes in *before* the last entry, so node 1's list is 2, 3, 1
    assert quorum == struct.pack("<i4xi4xi4xI4xQI4x6I", 3, 72, 1, 1, 0x1122334455, 3, 2, 1, 3, 2, 1, 1)
    assert status == vqlib.encode_status() == struct.pack("<i4xi4xi4x", 0, 24, 1)
    assert vqlib.decode_message(quorum) == vqlib.QuorumEvent(True, 0x1122334455, ((2, 1), (3, 2), (1, 1)))
    assert bus.request(1, bus.vq[1], 2, vqlib.encode_trackstart(1, TRACK_CHANGES)) [-1] == vqlib.encode_status(
        CsError.EXIST)
    # changes: a new ring gives a nodelist notification at sync_process and a quorum one at activation
    mark = len(bus.events[1])
    rid = bus.ring(1, 2, 3)
    events = bus.lib(1, 2, mark)
    assert [vqlib.decode_message(e) for e in events] == [
        vqlib.NodelistEvent(0x1122334455, rid, (1, 2, 3)),
        vqlib.QuorumEvent(True, 0x1122334455, ((2, 1), (3, 1), (1, 1))),
    ]
    assert bus.request(1, bus.vq[1], 2, vqlib.encode_trackstop()) == [vqlib.encode_status()]
    assert bus.request(1, bus.vq[1], 2, vqlib.encode_trackstop()) == [vqlib.encode_status(CsError.NOT_EXIST)]


def test_expected_votes_notification() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    bus.ring(1, 2, 3)
    bus.request(1, bus.vq[1], 4, vqlib.encode_trackstart(77, TRACK_CHANGES_ONLY))
    mark = len(bus.events[1])
    bus.request(2, bus.vq[2], 9, vqlib.encode_setexpected(4))
    # quorum changes (3 of 4 now) but the quorate flag does not: no QUORUM notification
    assert [vqlib.decode_message(e) for e in bus.lib(1, 4, mark)] == [vqlib.ExpectedVotesEvent(77, 4)]
    assert struct.unpack("<i4xi4xi4xQI4x", bus.lib(1, 4, mark)[0]) == (4, 40, 1, 77, 4)


def test_qdevice_requests_without_a_device() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    bus.ring(1, 2, 3)
    vq = bus.vq[1]
    reg = vqlib.encode_qdevice(vqlib.ReqId.QDEVICE_REGISTER, b"Qdevice")
    assert bus.request(1, vq, 3, reg) == [vqlib.encode_status(CsError.ACCESS)]
    for req in (vqlib.ReqId.QDEVICE_UNREGISTER, vqlib.ReqId.QDEVICE_UPDATE, vqlib.ReqId.QDEVICE_POLL,
                vqlib.ReqId.QDEVICE_MASTER_WINS):
        assert bus.request(1, vq, 3, vqlib.encode_qdevice(req, b"Qdevice")) == [
            vqlib.encode_status(CsError.NOT_EXIST)]
    # an id past the last handler: corosync's generic refusal
    assert bus.request(1, vq, 3, struct.pack("<i4xi4x", 10, 16)) == [struct.pack("<i4xi4xi4x", 0, 24, 7)]


def test_quorum_library_v0_as_pacemaker_uses_it() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    first = bus.ring(1, 2)
    q = bus.q[1]
    assert bus.request(1, q, 1, qlib.encode_request(qlib.ReqId.GETTYPE)) == [
        struct.pack("<i4xi4xi4xI4x", 4, 32, 1, 1)]
    assert bus.request(1, q, 1, qlib.encode_request(qlib.ReqId.GETQUORATE)) == [
        struct.pack("<i4xi4xi4xI4x", 0, 32, 1, 1)]
    out = bus.request(1, q, 1, qlib.encode_trackstart(TRACK_CURRENT | TRACK_CHANGES))
    assert out == [struct.pack("<i4xi4xi4xi4xQI2I", 3, 56, 1, 1, first.seq, 2, 1, 2) + bytes(4),
                   struct.pack("<i4xi4xi4x", 1, 24, 1)]
    assert len(out[0]) == 48 + 4 * 2
    mark = len(bus.events[1])
    rid = bus.ring(1, 2, 3)
    assert [qlib.decode_message(e) for e in bus.lib(1, 1, mark)] == [
        qlib.Notification(True, RingId(0, rid.seq), (1, 2, 3), False)]
    assert bus.request(1, q, 1, qlib.encode_request(qlib.ReqId.TRACKSTOP)) == [qlib.encode_status(qlib.ResId.TRACKSTOP)]
    # corosync answers OK to a TRACKSTOP without tracking too
    assert bus.request(1, q, 1, qlib.encode_request(qlib.ReqId.TRACKSTOP)) == [qlib.encode_status(qlib.ResId.TRACKSTOP)]


def test_quorum_library_v1() -> None:
    bus = Bus({n: QuorumConfig(nodelist=ones(3)) for n in (1, 2, 3)})
    first = bus.ring(1, 2)
    q = bus.q[1]
    assert bus.request(1, q, 1, qlib.encode_model_gettype(qlib.Model.V1)) == [
        struct.pack("<i4xi4xi4xI4x", 5, 32, 1, 1)]
    out = bus.request(1, q, 1, qlib.encode_trackstart(TRACK_CURRENT | TRACK_CHANGES))
    assert [qlib.decode_message(d) for d in out] == [
        qlib.NodelistNotification(first, (1, 2), (), ()),
        qlib.Notification(True, first, (1, 2), True),
        qlib.Status(qlib.ResId.TRACKSTART, CsError.OK),
    ]
    assert [len(d) for d in out] == [64 + 8, 56 + 8, 24]
    mark = len(bus.events[1])
    bus.ring(3)
    rid = bus.ring(1, 3)
    assert [qlib.decode_message(e) for e in bus.lib(1, 1, mark)] == [
        qlib.NodelistNotification(rid, (1, 3), (3,), (2,)),
        qlib.Notification(True, rid, (1, 3), True),
    ]
    assert bus.request(1, q, 1, qlib.encode_trackstart(TRACK_CHANGES))[-1] == qlib.encode_status(
        qlib.ResId.TRACKSTART, CsError.EXIST)
    assert bus.request(1, q, 2, qlib.encode_model_gettype(7)) == [
        qlib.encode_type(qlib.ResId.MODEL_GETTYPE, qlib.QUORUM_SET, CsError.INVALID_PARAM)]
    assert bus.request(1, q, 2, struct.pack("<i4xi4x", 5, 16)) == [struct.pack("<i4xi4xi4x", 0, 24, 7)]


def test_quorum_service_without_a_provider() -> None:
    q = QuorumService(1)
    q.lib_connect(LibConnection(1, 1, 0, 0))
    q.lib_request(1, qlib.ReqId.GETTYPE, qlib.encode_request(qlib.ReqId.GETTYPE))
    q.lib_request(1, qlib.ReqId.GETQUORATE, qlib.encode_request(qlib.ReqId.GETQUORATE))
    responses = [e.data for e in q.take_events() if isinstance(e, LibResponse)]
    assert responses == [qlib.encode_type(qlib.ResId.GETTYPE, qlib.QUORUM_FREE), qlib.encode_getquorate(True)]


def test_single_vote_cluster_is_quorate_from_the_start() -> None:
    q, vq, engine = linked(1, config=QuorumConfig(nodelist={1: 1}))
    assert q.quorate and vq.quorate
    engine.configuration_changed(ConfigurationChanged(TRANS, RingId(1, 4), (), (), ()))
    outs = engine.configuration_changed(ConfigurationChanged(REG, RingId(1, 4), (1,), (), ()))
    while outs:
        nxt = []
        for o in outs:
            nxt += engine.deliver(1, o.groups, o.body)
        outs = nxt
    assert [e for e in engine.take_events() if isinstance(e, QuorumChanged)] == [
        QuorumChanged(True, (1,), RingId(1, 4))]


def test_status_and_runtime_keys() -> None:
    cfg = QuorumConfig(nodelist=ones(4), auto_tie_breaker=True, expected_votes_tracking=True)
    bus = Bus({n: cfg for n in range(1, 5)})
    bus.ring(1, 2, 3, 4)
    st = bus.vq[2].quorum_status()
    assert st["quorate"] and st["members"] == [1, 2, 3, 4] and st["quorum"] == 3
    assert st["flags"] == ["Quorate", "AutoTieBreaker"]
    # node 1's flags as its NODEINFO said (sent before the ring was quorate); our own live
    assert st["nodes"][0] == {"nodeid": 1, "votes": 1, "expected_votes": 4, "state": "MEMBER", "flags": []}
    assert st["nodes"][1]["flags"] == ["QUORATE"]
    assert bus.vq[2].runtime_cmap() == {
        "runtime.votequorum.this_node_id": ("u32", 2),
        "runtime.votequorum.two_node": ("u8", 0),
        "runtime.votequorum.ev_barrier": ("u32", 4),
        "runtime.votequorum.atb_type": ("u32", 1),
        "runtime.votequorum.lowest_node_id": ("u32", 1),
        "runtime.votequorum.highest_node_id": ("u32", 4),
        "runtime.votequorum.ev_tracking_barrier": ("u32", 4),
    }
    assert vqlib.flag_names(2 | 16) == ["Quorate", "AutoTieBreaker"]
