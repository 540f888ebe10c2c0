"""The sync engine replayed against captures of real corosync 3.1.7 nodes.

A SyncEngine with the four default services plays one of the captured nodes: it
gets that node's configuration changes and every message delivered in its rings, in
captured order. What it returns to send must be what that node sent, byte for byte,
and produced at the right moment: the SERVICE_BUILD at the configuration, each
service's data and barrier exactly when the previous step completed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from test_services_wire import CPG_CAPTURE, UNION_CAPTURE, Delivered, delivered
from totem.services import CmapService, CpgService, QuorumService, VotequorumService
from totem.services.base import ServiceLog
from totem.services.cpg import CpgConfchg, CpgTotemConfchg
from totem.srp import ConfigurationChanged, ConfigurationKind
from totem.sync import Outgoing, ServiceSynced, SyncAborted, SyncCompleted, SyncEngine, SyncStarted
from totem.wire import RingId

# (ring, transitional members, regular members) of each node, from the node logs
RINGS = {
    CPG_CAPTURE: {
        1: [(RingId(1, 5), (), (1,)), (RingId(1, 9), (1,), (1, 2)), (RingId(1, 13), (1, 2), (1, 2, 3)),
            (RingId(1, 17), (1, 2), (1, 2))],
        2: [(RingId(2, 5), (), (2,)), (RingId(1, 9), (2,), (1, 2)), (RingId(1, 13), (1, 2), (1, 2, 3)),
            (RingId(1, 17), (1, 2), (1, 2))],
        3: [(RingId(3, 5), (), (3,)), (RingId(1, 13), (3,), (1, 2, 3))],
    },
    UNION_CAPTURE: {
        3: [(RingId(3, 5), (), (3,)), (RingId(1, 9), (3,), (1, 3))],
    },
}


@dataclass
class Step:
    """What the engine returned after one input."""

    at: int | None
    """Index into the ring's deliveries of the message just delivered; None = the configuration."""
    out: list[Outgoing]
    events: list[object] = field(default_factory=list)


@dataclass
class Replay:
    engine: SyncEngine
    rings: dict[RingId, list[Delivered]]
    steps: dict[RingId, list[Step]]


def play(name: str, node: int, *, with_votequorum: bool = True) -> Replay:
    services = [CmapService(node), CpgService(node), QuorumService(node)]
    if with_votequorum:
        services.append(VotequorumService(node, expected_votes=3))
    engine = SyncEngine(node, services)
    everything = delivered(name)
    rings: dict[RingId, list[Delivered]] = {}
    steps: dict[RingId, list[Step]] = {}
    for ring, trans, members in RINGS[name][node]:
        msgs = rings[ring] = [d for d in everything if d.ring == ring]
        out = engine.configuration_changed(ConfigurationChanged(ConfigurationKind.TRANSITIONAL, ring, trans,
                                                                (), ()))
        assert out == []
        record = steps[ring] = []
        out = engine.configuration_changed(ConfigurationChanged(ConfigurationKind.REGULAR, ring, members,
                                                                (), ()))
        record.append(Step(None, out, engine.take_events()))
        for i, d in enumerate(msgs):
            out = engine.deliver(d.sender, d.groups, d.body)
            record.append(Step(i, out, engine.take_events()))
    return Replay(engine, rings, steps)


def own_sync_messages(msgs: list[Delivered], node: int) -> list[Delivered]:
    """The node's messages from its SERVICE_BUILD to its last barrier of the round."""
    own = [d for d in msgs if d.sender == node]
    start = next(i for i, d in enumerate(own) if d.kind == "sync.SERVICE_BUILD")
    own = own[start:]
    barriers = [i for i, d in enumerate(own) if d.kind == "sync.BARRIER"]
    return own[:barriers[3] + 1]  # four steps: cmap, cpg, quorum, votequorum


def same_message(ours: Outgoing, theirs: Delivered, *, mask_flags: bool) -> bool:
    if ours.groups != theirs.groups:
        return False
    if mask_flags and theirs.kind == "5.0" and ours.body[16:20] == theirs.body[16:20] != bytes(4):
        # own NODEINFO: this node does not compute quorum and sends flags 0, where the
        # real node had QUORATE (or FIRST in its first, single-node ring)
        return ours.body[:28] == theirs.body[:28]
    return ours.body == theirs.body


CASES = [(CPG_CAPTURE, 1), (CPG_CAPTURE, 2), (CPG_CAPTURE, 3)]


@pytest.mark.parametrize(("name", "node"), CASES)
def test_engine_sends_what_the_node_sent(name: str, node: int) -> None:
    r = play(name, node)
    for ring, msgs in r.rings.items():
        ours = [o for step in r.steps[ring] for o in step.out]
        theirs = own_sync_messages(msgs, node)
        assert len(ours) == len(theirs), (ring, [o.body[:4] for o in ours], [d.kind for d in theirs])
        for o, t in zip(ours, theirs):
            assert same_message(o, t, mask_flags=True), (ring, t.kind, t.frame)
        # byte-exact without masking: votequorum computes the flags as the real node did
        assert all(same_message(o, t, mask_flags=False) for o, t in zip(ours, theirs))


def test_node1_ring13_every_message_at_the_right_moment() -> None:
    """Spec §2.4's table: node 1's four batches, each right after the delivery that
    completed the previous step, and completion at the last votequorum barrier."""
    r = play(CPG_CAPTURE, 1)
    ring = RingId(1, 13)
    msgs = r.rings[ring]
    kinds = [(d.kind, d.sender) for d in msgs]
    batches = [(s.at, [o.groups[0] + b":" + o.body[:4] for o in s.out]) for s in r.steps[ring] if s.out]
    sb, b = b"sync:\x01\0\0\0", b"sync:\0\0\0\0"
    cmap_, downlist, joinlist, nodeinfo = b"a:\0\0\0\0", b"a:\x05\0\x02\0", b"a:\x02\0\x02\0", b"a:\0\0\x05\0"
    assert batches == [
        (None, [sb]),
        (2, [cmap_, b]),  # after the third SERVICE_BUILD (node 1's own)
        (8, [downlist, joinlist, b]),  # after node 3's cmap barrier (the third)
        (15, [b]),  # after node 2's cpg barrier
        (18, [nodeinfo, nodeinfo, b]),  # after node 1's quorum barrier, the third
    ]
    assert kinds[2] == ("sync.SERVICE_BUILD", 1)
    assert kinds[8] == ("sync.BARRIER", 3) and kinds[15] == ("sync.BARRIER", 2)
    assert kinds[18] == ("sync.BARRIER", 1)
    # exactly one barrier per service
    assert sum(o.groups == (b"sync",) and o.body[0] == 0 for s in r.steps[ring] for o in s.out) == 4
    # each batch was sent after the previous step completed, i.e. its messages come
    # later in total order than the delivery that triggered it
    own = [i for i, d in enumerate(msgs) if d.sender == 1]
    for at, _ in batches[1:]:
        assert any(i > at for i in own)
    # progress events
    synced = [(i, e.service_id) for i, s in enumerate(r.steps[ring]) for e in s.events
              if isinstance(e, ServiceSynced)]
    assert [sid for _, sid in synced] == [0, 2, 3, 5]
    completed = [s.at for s in r.steps[ring] if any(isinstance(e, SyncCompleted) for e in s.events)]
    last_vq_barrier = max(i for i, (k, _) in enumerate(kinds[:30]) if k == "sync.BARRIER")
    assert completed == [last_vq_barrier] == [27]


def test_log_lines_are_corosyncs() -> None:
    r = play(CPG_CAPTURE, 1)
    ring = RingId(1, 13)
    lines = [(e.subsys, e.level, e.text) for s in r.steps[ring] for e in s.events if isinstance(e, ServiceLog)
             and e.subsys in ("SYNC", "MAIN", "CMAP", "QUORUM")]
    assert lines == [
        ("SYNC", "debug", "call init for locally known services"),
        ("QUORUM", "notice", "Sync members[3]: 1 2 3"),
        ("QUORUM", "notice", "Sync joined[1]: 3"),
        ("SYNC", "debug", "enter sync process"),
        ("SYNC", "debug", "Committing synchronization for corosync configuration map access"),
        ("CMAP", "debug", "Not first sync -> no action"),
        ("SYNC", "debug", "Committing synchronization for corosync cluster closed process group service v1.01"),
        ("SYNC", "debug", "Committing synchronization for corosync cluster quorum service v0.1"),
        ("QUORUM", "debug", "sending nodelist notification to (nil), length = 80"),
        ("SYNC", "debug", "Committing synchronization for corosync vote quorum service v1.0"),
        ("MAIN", "notice", "Completed service synchronization, ready to provide service."),
    ]


def test_started_and_completed_for_every_ring() -> None:
    r = play(CPG_CAPTURE, 2)
    members_of = {ring: members for ring, _, members in RINGS[CPG_CAPTURE][2]}
    for ring, steps in r.steps.items():
        events = [e for s in steps for e in s.events]
        started = [e for e in events if isinstance(e, SyncStarted)]
        assert [(e.ring_id, e.members) for e in started] == [(ring, members_of[ring])]
        assert [e.ring_id for e in events if isinstance(e, SyncCompleted)] == [ring]
        assert not any(isinstance(e, SyncAborted) for e in events)
    assert not r.engine.in_sync


def test_cpg_table_follows_the_capture() -> None:
    """Node 1's CPG view: its own member from ring 1/5, node 2's client joining in 1/13
    and dying in 1/17 (PROCLEAVE reason PROCDOWN)."""
    r = play(CPG_CAPTURE, 1)
    cpg = r.engine.services[2]
    assert isinstance(cpg, CpgService)
    events = [e for ring in r.steps for s in r.steps[ring] for e in s.events if isinstance(e, CpgConfchg)]
    assert events == [
        CpgConfchg(b"probe", ((1, 20779),), joined=((1, 20779, 1),)),
        CpgConfchg(b"probe", ((1, 20779), (2, 20974)), joined=((2, 20974, 1),)),
        CpgConfchg(b"probe", ((1, 20779),), left=((2, 20974, 5),)),
    ]
    assert cpg.members_of(b"probe") == [(1, 20779)]
    totem = [e for ring in r.steps for s in r.steps[ring] for e in s.events if isinstance(e, CpgTotemConfchg)]
    assert [(e.ring_id, e.members) for e in totem] == [(ring, m) for ring, _, m in RINGS[CPG_CAPTURE][1]]
    # node 3, joining at 1/13, learns node 1's member from its joinlist (NODEUP)
    r3 = play(CPG_CAPTURE, 3)
    ev3 = [e for ring in r3.steps for s in r3.steps[ring] for e in s.events if isinstance(e, CpgConfchg)]
    assert ev3[0] == CpgConfchg(b"probe", ((1, 20779),), joined=((1, 20779, 4),))


def test_votequorum_table_counts_every_member() -> None:
    r = play(CPG_CAPTURE, 3)
    vq = r.engine.services[5]
    assert isinstance(vq, VotequorumService)
    assert {n: (v.votes, v.expected_votes, int(v.state)) for n, v in vq.nodes.items() if n} == {
        1: (1, 3, 1), 2: (1, 3, 1), 3: (1, 3, 1)}
    assert vq.total_votes == 3


def test_union_with_a_node_without_votequorum() -> None:
    """services-union-and-stall ring 1/9: node 3 has no votequorum; node 1 lists it, so
    node 3 steps through it as an unknown service and sends a barrier for it."""
    r = play(UNION_CAPTURE, 3, with_votequorum=False)
    ring = RingId(1, 9)
    assert r.engine.service_list == [
        (0, "corosync configuration map access"),
        (2, "corosync cluster closed process group service v1.01"),
        (3, "corosync cluster quorum service v0.1"),
        (5, "Unknown External Service (id = 5)"),
    ]
    ours = [o for s in r.steps[ring] for o in s.out]
    theirs = own_sync_messages(r.rings[ring], 3)
    assert [o.body for o in ours] == [t.body for t in theirs]
    assert [t.kind for t in theirs] == ["sync.SERVICE_BUILD", "0.0", "sync.BARRIER", "2.5", "sync.BARRIER",
                                        "sync.BARRIER", "sync.BARRIER"]
    logs = [e.text for s in r.steps[ring] for e in s.events if isinstance(e, ServiceLog) and e.subsys == "SYNC"]
    assert "Committing synchronization for Unknown External Service (id = 5)" in logs
    completed = [(s.at, e.ring_id) for s in r.steps[ring] for e in s.events if isinstance(e, SyncCompleted)]
    last_barrier = max(i for i, d in enumerate(r.rings[ring]) if d.kind == "sync.BARRIER")
    assert completed == [(last_barrier, ring)]
