"""Hand-written Totem SRP scenarios with exact expectations.

Every scenario runs real cores (``SrpCore``, or ``TotemStack`` where whole messages
matter) with corosync 3.1.7's default timers for the node count
(``SrpConfig.derive(n)``) on the deterministic test bed of ``tests/_ring.py``: one
virtual clock, FIFO links with a fixed 0.1 ms one-way delay, a node's broadcasts
reaching itself too. The expectations come from spec totem-wire.md §4/§5 and from
corosync's ``totemsrp.c``; the last tests replay corosync's own datagrams from
the captures in ``tests/vectors`` into a fresh core and compare its answers with
what corosync sent.
"""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from _ring import Ring
from _vectors import totem_datagrams
from totem.srp import (
    Broadcast,
    ConfigurationChanged,
    ConfigurationKind,
    LogMessage,
    MessageDelivered,
    RingSeqStore,
    SrpConfig,
    SrpCore,
    State,
    StateChanged,
)
from totem.stack import MessageReceived
from totem.wire import (
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    OrfToken,
    RingId,
    RtrItem,
    parse_untrusted,
)

T, R = ConfigurationKind.TRANSITIONAL, ConfigurationKind.REGULAR
HOP = 0.0001  # the test bed's one-way delay
ARU_START = 0xFFFFFFFF


def confs(r: Ring, n: int, after: float = -1.0) -> list[tuple]:
    """Node n's configurations as (kind, ring id, members, left, joined)."""
    return [(e.kind, e.ring_id, e.members, e.left, e.joined)
            for t, e in r.timed(n, ConfigurationChanged) if t > after]


def delivered(r: Ring, n: int, after: float = -1.0) -> list[tuple]:
    return [(e.sender, e.payload, e.ring_id, e.seq) for t, e in r.timed(n, MessageDelivered) if t > after]


def logs(r: Ring, n: int, after: float = -1.0) -> list[str]:
    return [e.text for t, e in r.timed(n, LogMessage) if t > after]


def token_rx(r: Ring, n: int, after: float = -1.0) -> list[tuple[float, OrfToken]]:
    out = []
    for t, dst, _src, data in r.received:
        if dst == n and t > after and data[3] == 0:
            out.append((t, parse_untrusted(data)))
    return out


def formed(r: Ring, ids, members=None) -> bool:
    members = tuple(members or ids)
    cores = [r.core(n) for n in ids]
    return (all(c.state is State.OPERATIONAL and c.members == members for c in cores)
            and len({c.ring_id for c in cores}) == 1)


# --------------------------------------------------------------------------- 1. two nodes

def test_two_node_formation_ring_ids_configurations_and_commit_token_rotations():
    """Node 1 starts alone (store empty: seq 0+1 = 1, singleton ring 1.5); 2.5 s later
    node 2 starts (seq 1, singleton 2.5, as in 2node-join.pcap) and the two merge into
    {1, max(5, 5) + 4} = 1.9. The commit token goes 1→2→1→2→1 with token_seq 1..4
    (memb_index 1, 2, 2, 2), then the rep sends the initial ORF token (spec §4.4, §5.4)."""
    r = Ring([1, 2])
    r.start(1)
    r.run_until(2.5)
    (_, j1), *_ = r.sent_msgs(1, MembJoin)
    assert (j1.ring_seq, j1.proc_list, j1.failed_list) == (1, (1,), ())
    # a single node sends the commit token to itself twice, then the ORF token
    alone = [(s.dst, type(m).__name__, m.token_seq)
             for s, m in r.sent_msgs(1, (MembCommitToken, OrfToken))][:3]
    assert alone == [(1, "MembCommitToken", 1), (1, "MembCommitToken", 2), (1, "OrfToken", 0)]
    assert r.core(1).ring_id == RingId(1, 5) and r.stores[1].seq == 5

    t2 = r.now
    r.start(2)
    r.run_until(t2 + 1.0)
    j2 = [m for s, m in r.sent_msgs(2, MembJoin)]
    assert (j2[0].ring_seq, j2[0].proc_list) == (1, (2,))
    assert confs(r, 1) == [
        (T, RingId(1, 5), (1,), (), ()), (R, RingId(1, 5), (1,), (), ()),
        (T, RingId(1, 9), (1,), (), ()), (R, RingId(1, 9), (1, 2), (), (2,)),
    ]
    assert confs(r, 2) == [
        (T, RingId(2, 5), (2,), (), ()), (R, RingId(2, 5), (2,), (), ()),
        (T, RingId(1, 9), (2,), (), ()), (R, RingId(1, 9), (1, 2), (), (1,)),
    ]
    assert r.stores[1].seq == r.stores[2].seq == 9

    # the unicast tokens of ring 1.9, in order
    uni = [(s.src, s.dst, m) for s, m in r.sent_msgs(None, (MembCommitToken, OrfToken), dst="any")
           if s.dst is not None and m.ring_id == RingId(1, 9)]
    commit = [(src, dst, m.token_seq, m.memb_index) for src, dst, m in uni[:4]]
    assert commit == [(1, 2, 1, 1), (2, 1, 2, 2), (1, 2, 3, 2), (2, 1, 4, 2)]
    assert all(isinstance(m, MembCommitToken) and m.addr == [1, 2] for _, _, m in uni[:4])
    assert uni[3][2].memb_list == [MembEntry(RingId(1, 5), 0, 0, 1), MembEntry(RingId(2, 5), 0, 0, 1)]
    src, dst, orf = uni[4]
    assert (src, dst) == (1, 2) and isinstance(orf, OrfToken)
    assert (orf.seq, orf.token_seq, orf.aru, orf.aru_addr, orf.ring_id, orf.backlog, orf.fcc,
            orf.retrans_flg, orf.rtr_list, orf.nodeid) == (0, 0, ARU_START, 1, RingId(1, 9), 0, 0, 0, [], 1)
    # node 2 must not lower the start aru (0 < 0xFFFFFFFF is false in rollover compare);
    # node 1 then sets aru 0, aru_addr 0 (§5.4 "Next hops")
    nxt = [(m.token_seq, m.aru, m.aru_addr) for _, _, m in uni[5:7]]
    assert nxt == [(1, ARU_START, 1), (2, 0, 0)]


# --------------------------------------------------------------------------- 2. idle ring

def test_three_node_formation_then_idle_token_hold_and_merge_detect():
    """3 nodes started together form 1.9 (node 1 processes its own join first and
    forms 1.5; nodes 2 and 3 never leave GATHER at seq 1). One message, then idle:
    the rep (node 1) holds the token once it has seen 31 consecutive visits with the
    same seq (rep: unchanged > seqno_unchanged_const = 30) and from then on sends it
    every hold = 685 ms (+ 3 hops of the test network); it broadcasts a
    memb_merge_detect exactly merge = 200 ms after the first visit with an unchanged
    seq and then after each held visit (spec §4.7, §5.11)."""
    cfg = SrpConfig.derive(3)
    assert (cfg.token, cfg.consensus, cfg.token_retransmit, cfg.hold, cfg.merge) == \
        (3650, 4380, 869, 685, 200)
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(1.0)
    assert formed(r, [1, 2, 3]) and r.core(1).ring_id == RingId(1, 9)
    for n in (1, 2, 3):
        assert confs(r, n)[-2:] == [(T, RingId(1, 9), (n,), (), ()),
                                    (R, RingId(1, 9), (1, 2, 3), (), tuple(m for m in (1, 2, 3) if m != n))]
    t0 = r.now
    r.mcast(2, b"one")
    r.run_until(t0 + 5.0)

    rx = token_rx(r, 1, t0)
    sends = [s.time for s, m in r.sent_msgs(1, OrfToken) if s.time > t0]
    # consecutive unchanged visits at the rep, and where it starts holding
    unchanged, counts = 0, []
    prev = None
    for _, tok in rx:
        unchanged = unchanged + 1 if tok.seq == prev else 0
        prev = tok.seq
        counts.append(unchanged)
    first_hold = next(i for i, (t, _) in enumerate(rx)
                      if min((s for s in sends if s >= t), default=t + 99) - t > 0.5)
    assert rx[first_hold][1].seq == 1 and counts[first_hold] == 31
    assert all(counts[i] <= 30 for i in range(first_hold))

    held = [s for s in sends if s >= rx[first_hold][0]]
    gaps = [b - a for a, b in zip(held, held[1:])]
    assert len(gaps) >= 5
    assert gaps == pytest.approx([cfg.hold / 1000 + 3 * HOP] * len(gaps), abs=1e-6)

    md = [s.time for s, m in r.sent_msgs(None, MembMergeDetect) if s.time > t0]
    assert {s.src for s, m in r.sent_msgs(None, MembMergeDetect)} == {1}
    rx_times = [t for t, _ in rx]
    # the merge timer is started by the first unchanged visit and not restarted while it
    # runs (start_merge_detect_timeout): the first one comes 200 ms after that visit,
    # not 200 ms after the last quick visit
    first_unchanged = next(t for (t, _), k in zip(rx, counts) if k == 1)
    assert md[0] == pytest.approx(first_unchanged + cfg.merge / 1000, abs=1e-6)
    assert rx[first_hold][0] - first_unchanged > 0.005
    for m in md:  # each merge-detect comes exactly merge ms after a token visit at the rep
        assert min(abs(m - cfg.merge / 1000 - t) for t in rx_times) < 1e-6
    idle_md = [m for m in md if m > held[0]]
    for a, b in zip(held, held[1:]):  # one merge-detect per held rotation
        assert len([m for m in idle_md if a < m < b]) == 1
    assert all(r.core(n).state is State.OPERATIONAL for n in (1, 2, 3))
    assert confs(r, 1, t0) == []


# --------------------------------------------------------------------------- 3. crash

def test_crash_detected_after_token_plus_consensus():
    """Node 3 of an idle 3-node ring is killed. Node 1's token timer (3650 ms after the
    last token it processed, i.e. the last one node 3 sent) fires: GATHER with joins
    {1,2,3}; 4380 ms later the consensus timer moves 3 to the failed list and {1,2}
    form 1.13 (= 9 + 4) at once (spec §4.8 crash timeline, node-leave.pcap)."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(3.0)
    assert formed(r, [1, 2, 3])
    old = r.core(1).ring_id
    r.kill(3)
    t_kill = r.now
    r.run_until(t_kill + 12.0)
    last3 = max(s.time for s, m in r.sent_msgs(3, OrfToken))
    assert last3 < t_kill
    for n in (1, 2):
        c = confs(r, n, t_kill)
        new = RingId(1, old.seq + 4)
        assert c == [(T, new, (1, 2), (3,), ()), (R, new, (1, 2), (), ())]
        t_reg = [t for t, e in r.timed(n, ConfigurationChanged) if t > t_kill][-1]
        assert t_reg - last3 == pytest.approx((3650 + 4380) / 1000, abs=0.3)
        assert r.core(n).ring_id == new and r.stores[n].seq == old.seq + 4
    assert "A processor failed, forming new configuration: token timed out (3650ms), waiting 4380ms " \
           "for consensus." in logs(r, 1, t_kill)
    # node 1's token timer fired 3650 ms after it processed node 3's last token
    gather1 = [t for t, e in r.timed(1, StateChanged) if t > t_kill and e.new is State.GATHER][0]
    assert gather1 - (last3 + HOP) == pytest.approx(3.650, abs=1e-6)
    fails = {(m.proc_list, m.failed_list) for s, m in r.sent_msgs(None, MembJoin) if s.time > t_kill}
    assert ((1, 2, 3), (3,)) in fails
    assert "Failed to receive the leave message. failed: 3" in logs(r, 1, t_kill)


# --------------------------------------------------------------------------- 4. leave

def test_graceful_leave_reforms_within_milliseconds():
    """Node 3 leaves: it broadcasts a LEAVE (memb_join with header nodeid 0, proc {1,2},
    failed {3}, its ring seq; spec §2.5.4, §5.8). Nodes 1 and 2 re-form at once
    (corosync: 1 ms later); the 3 is reported as left, not as failed."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(3.0)
    old = r.core(1).ring_id
    t_leave = r.now
    r.leave(3)
    (s, leave), = r.sent_msgs(3, MembJoin)[-1:]
    assert s.time == t_leave and s.dst is None
    assert (leave.nodeid, leave.system_from, leave.proc_list, leave.failed_list, leave.ring_seq) == \
        (0, 3, (1, 2), (3,), old.seq)
    r.run_until(t_leave + 2.0)
    new = RingId(1, old.seq + 4)
    for n in (1, 2):
        assert confs(r, n, t_leave) == [(T, new, (1, 2), (3,), ()), (R, new, (1, 2), (), ())]
        t_reg = [t for t, e in r.timed(n, ConfigurationChanged) if t > t_leave][-1]
        assert t_reg - t_leave < 0.05
        texts = logs(r, n, t_leave)
        assert "Received LEAVE message from 3" in texts
        assert f"A new membership ({new}) was formed. Members left: 3" in texts
        assert not any(t.startswith("Failed to receive the leave message") for t in texts)


def test_a_node_restarted_while_its_leave_is_in_flight_ignores_that_leave():
    """Node 3 leaves and is started again before its LEAVE (proc {1,2}, failed {3}) has
    reached it. The new instance must not take that LEAVE as news: processed, it would
    put node 3 in its own failed list (the sender lists me as failed -> add the sender,
    itself), and node 3 would never agree with anyone again. corosync never processes
    its own LEAVE (the instance that sends it is gone), so the restarted node drops it
    and joins the ring that 1 and 2 form."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(3.0)
    r.leave(3)
    r.start(3)
    assert r.core(3).my_failed_list == []
    r.run_until(lambda: formed(r, [1, 2, 3]), timeout=10.0)
    assert r.core(3).my_failed_list == []
    assert r.core(3).stats["rx_msg_dropped"] == 1  # its own old LEAVE


# --------------------------------------------------------------------------- 5. partition

def test_partition_three_two_then_heal():
    """A 5-node ring 1.9 is cut into {1,2,3} | {4,5}: each side loses the token and
    forms its own ring (1.13 and 4.13: both compute 9 + 4). After healing, the reps'
    merge-detects pull the rings together into 1.17; each side's transitional
    configuration lists the nodes that came with it."""
    r = Ring([1, 2, 3, 4, 5])
    r.start()
    r.run_until(2.0)
    assert formed(r, [1, 2, 3, 4, 5]) and r.core(1).ring_id == RingId(1, 9)
    t_cut = r.now
    r.partition = [{1, 2, 3}, {4, 5}]
    r.run_until(t_cut + 15.0)
    assert formed(r, [1, 2, 3]) and formed(r, [4, 5])
    for n in (1, 2, 3):
        assert confs(r, n, t_cut) == [(T, RingId(1, 13), (1, 2, 3), (4, 5), ()),
                                      (R, RingId(1, 13), (1, 2, 3), (), ())]
    for n in (4, 5):
        assert confs(r, n, t_cut) == [(T, RingId(4, 13), (4, 5), (1, 2, 3), ()),
                                      (R, RingId(4, 13), (4, 5), (), ())]
    t_heal = r.now
    r.partition = None
    r.run_until(t_heal + 4.0)
    assert formed(r, [1, 2, 3, 4, 5])
    new = RingId(1, 17)
    for n in (1, 2, 3):
        assert confs(r, n, t_heal) == [(T, new, (1, 2, 3), (), ()), (R, new, (1, 2, 3, 4, 5), (), (4, 5))]
    for n in (4, 5):
        assert confs(r, n, t_heal) == [(T, new, (4, 5), (), ()), (R, new, (1, 2, 3, 4, 5), (), (1, 2, 3))]


# --------------------------------------------------------------------------- 6. loss

def test_lost_token_is_retransmitted_after_token_retransmit():
    """The first ORF token node 2 sends to node 3 after t=2 s is lost. Node 2 resends
    the identical bytes token_retransmit = 869 ms later (spec §4.8); the ring goes on
    without a membership change (token = 3650 ms is far away)."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(2.0)
    lost: list[bytes] = []

    def drop(src, dst, data):
        if not lost and (src, dst) == (2, 3) and data[3] == 0:
            lost.append(data)
            return True
        return False

    r.drop = drop
    t0 = r.now
    r.run_until(t0 + 6.0)
    (t_lost, _, _, data), = r.dropped
    tok = parse_untrusted(data)
    from2 = [(s.time, s.data) for s in r.sent if s.src == 2 and s.dst == 3 and s.time >= t_lost]
    assert from2[0] == (t_lost, data)
    assert from2[1][1] == data
    assert from2[1][0] - t_lost == pytest.approx(0.869, abs=1e-6)
    # node 3 got the resent copy and the token went on: node 3 forwards token_seq + 1
    # (before that, nodes 3 and 1 only resent their own last tokens, which the next
    # node drops as duplicates)
    fwd3 = [(s.time, m) for s, m in r.sent_msgs(3, OrfToken)
            if s.time > t_lost and m.token_seq > tok.token_seq]
    assert fwd3[0][1].token_seq == tok.token_seq + 1
    assert fwd3[0][0] == pytest.approx(from2[1][0] + HOP, abs=1e-9)
    assert len(fwd3) >= 5
    dup = [m.token_seq for s, m in r.sent_msgs(None, OrfToken) if t_lost < s.time < from2[1][0]]
    assert dup and all(ts < tok.token_seq for ts in dup)
    for n in (1, 2, 3):
        assert confs(r, n, t0) == []
        assert [e for t, e in r.timed(n, StateChanged) if t > t0] == []
        assert r.core(n).state is State.OPERATIONAL


def test_lost_message_is_requested_after_miss_count_and_rebroadcast_byte_identical():
    """Node 3 misses the first mcast node 1 sends. On its 5th token visit with the
    message's seq covered by token.seq (miss_count_const = 5) it puts {ring, seq} in
    the token's rtr list; node 1, the next holder, rebroadcasts the stored datagram
    byte for byte and removes the request (spec §4.6 steps 6-7, §5.5). Everyone
    delivers the same six messages in the same order."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(2.0)
    ring = r.core(1).ring_id
    lost: list[bytes] = []

    def drop(src, dst, data):
        if not lost and (src, dst) == (1, 3) and data[3] == 1:
            lost.append(data)
            return True
        return False

    r.drop = drop
    t0 = r.now
    for i in range(6):
        r.mcast(1 + i % 2, b"m%d" % i)
    r.run_until(t0 + 1.0)
    (t_lost, _, _, data), = r.dropped
    seq = parse_untrusted(data).seq
    visits = [(s.time, m) for s, m in r.sent_msgs(3, OrfToken) if s.time > t_lost and m.seq >= seq]
    assert [m.rtr_list for _, m in visits[:4]] == [[]] * 4
    assert visits[4][1].rtr_list == [RtrItem(ring, seq)]
    t_req = visits[4][0]
    again = [(s.time, s.src) for s in r.sent if s.data == data and s.time > t_lost]
    assert again[0] == (pytest.approx(t_req + HOP), 1)
    served = [m for s, m in r.sent_msgs(1, OrfToken) if s.time > t_req][0]
    assert served.rtr_list == []
    ref = delivered(r, 1, t0)
    assert [p for _, p, _, _ in ref] == [b"m1", b"m3", b"m5", b"m0", b"m2", b"m4"]
    for n in (2, 3):
        assert delivered(r, n, t0) == ref
    for n in (1, 2, 3):
        assert confs(r, n, t0) == []


# --------------------------------------------------------------------------- 7. recovery

def test_recovery_with_messages_in_flight_delivers_the_same_old_ring_messages():
    """All three nodes send; node 3 loses old-ring seq 2 (from node 2) and nobody but
    node 2 gets seq 4; node 2 is killed 0.9 ms later, before node 3 could ask for seq 2.
    In the commit token of 1.13 node 1 reports aru 3 / high 18 and node 3 aru 1, both
    with received_flg 0; in RECOVERY both rebroadcast what they hold of (1, 18] as
    encapsulated mcasts (node 3 first: it gets the initial ORF token). Both then deliver
    seq 2..3 (node 3) before the TRANSITIONAL configuration and, after it, every
    remaining old-ring message originated by 1 or 3, skipping the hole at 4 and node 2's
    13 and 14 (spec §4.5, §4.9): the same old-ring messages in the same order."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(2.0)
    old = r.core(1).ring_id

    def drop(src, dst, data):
        if data[3] != 1:
            return False
        m = parse_untrusted(data)
        return (m.seq == 2 and dst == 3) or (m.seq == 4 and dst != 2)

    r.drop = drop
    t0 = r.now
    for i in range(4):
        for n in (1, 2, 3):
            r.mcast(n, b"n%d-%d" % (n, i))
    r.run_until(t0 + 0.0005)
    for i in range(4, 6):
        for n in (1, 2, 3):
            r.mcast(n, b"n%d-%d" % (n, i))
    r.run_until(t0 + 0.0009)
    r.kill(2)
    r.drop = None
    c1, c3 = r.core(1), r.core(3)
    assert (c1.my_aru, c1.my_high_seq_received, c3.my_aru, c3.my_high_seq_received) == (3, 18, 1, 18)
    r.run_until(t0 + 12.0)
    new = RingId(1, old.seq + 4)
    assert formed(r, [1, 3]) and c1.ring_id == new

    to3 = [m for s, m in r.sent_msgs(1, MembCommitToken, dst=3) if m.ring_id == new]
    assert to3[-1].memb_list == [MembEntry(old, 3, 3, 0), MembEntry(old, 1, 1, 0)]

    # the rep had old-ring messages to rebroadcast: its initial ORF token says so (§5.10)
    orf = [m for s, m in r.sent_msgs(1, OrfToken, dst=3) if m.ring_id == new][0]
    assert (orf.token_seq, orf.seq, orf.aru, orf.retrans_flg) == (0, 0, ARU_START, 1)

    enc = [(s.src, m.seq, m.inner().seq) for s, m in r.sent_msgs(None, Mcast)
           if s.time > t0 + 1 and m.encapsulated == Mcast.ENCAPSULATED]
    assert all(m.ring_id == new for s, m in r.sent_msgs(None, Mcast) if s.time > t0 + 1)
    held3 = [3] + list(range(5, 19))
    held1 = [2, 3] + list(range(5, 19))
    assert enc == ([(3, i + 1, s) for i, s in enumerate(held3)]
                   + [(1, len(held3) + i + 1, s) for i, s in enumerate(held1)])

    def old_ring_view(n):
        out = []
        for t, e in r.events[n]:
            if isinstance(e, MessageDelivered) and e.ring_id == old and t > t0:
                out.append((e.sender, e.payload, e.seq))
            elif isinstance(e, ConfigurationChanged) and e.ring_id == new:
                out.append((e.kind, e.members, e.left))
        return out

    expect_tail = ([(T, (1, 3), (2,))]
                   + [(3, b"n3-%d" % i, 5 + i) for i in range(4)]
                   + [(1, b"n1-%d" % i, 9 + i) for i in range(4)]
                   + [(3, b"n3-4", 15), (3, b"n3-5", 16), (1, b"n1-4", 17), (1, b"n1-5", 18)]
                   + [(R, (1, 3), ())])
    head = [(2, b"n2-0", 1), (2, b"n2-1", 2), (2, b"n2-2", 3)]
    assert old_ring_view(1) == head + expect_tail
    assert old_ring_view(3) == head + expect_tail
    # node 1 had delivered 1..3 before the crash, node 3 only 1
    assert [e.seq for t, e in r.timed(3, MessageDelivered) if t0 < t < t0 + 1] == [1]


# --------------------------------------------------------------------------- 8. sixteen nodes

def test_sixteen_nodes_form_one_ring_and_agree_on_order():
    """16 TotemStacks started at the same instant form one ring (members 1..16, the
    same ring id everywhere); 100 messages from random nodes are delivered everywhere,
    in the same order."""
    ids = list(range(1, 17))
    r = Ring(ids, stack=True)
    r.start()
    r.run_until(lambda: formed(r, ids), timeout=5.0)
    ring = r.core(1).ring_id
    assert ring == RingId(1, 9)
    for n in ids:
        assert confs(r, n)[-1] == (R, ring, tuple(ids), (), tuple(m for m in ids if m != n))
    rng = random.Random(16)
    t0 = r.now
    bodies = []
    for i in range(100):
        body = b"msg-%03d" % i
        bodies.append(body)
        r.send(rng.choice(ids), body)
        r.run_until(r.now + rng.random() * 0.002)
    r.run_until(r.now + 1.0)
    ref = [(e.sender, e.body) for t, e in r.timed(1, MessageReceived) if t > t0]
    assert sorted(b for _, b in ref) == bodies
    for n in ids:
        got = [(e.sender, e.body, e.ring_id) for t, e in r.timed(n, MessageReceived) if t > t0]
        assert [(s, b) for s, b, _ in got] == ref
        assert {g[2] for g in got} == {ring}
        assert r.core(n).ring_id == ring


# --------------------------------------------------------------------------- 9. ring seq store

def test_ring_seq_persistence_across_restarts_and_wiped_store():
    """A node restarted with its RingSeqStore starts at stored + 1 (spec §4.1) and never
    installs a ring id twice; with a wiped store it starts at 1 again, but the joint
    ring still gets a seq above everything the others have seen, because the others'
    joins raise token_ring_id_seq."""
    r = Ring([1, 2, 3])
    r.start()
    r.run_until(2.0)
    assert r.stores[3].seq == 9
    r.kill(3)
    r.run_until(12.0)
    assert r.core(1).ring_id == RingId(1, 13)
    r.start(3)
    assert r.core(3).ring_id == RingId(3, 10)
    join = r.sent[-1].msg
    assert isinstance(join, MembJoin) and join.ring_seq == 10
    r.run_until(14.0)
    assert formed(r, [1, 2, 3]) and r.core(3).ring_id == RingId(1, 18)  # max(10+4, 13) + 4
    regular3 = [e.ring_id for e in r.evs(3, ConfigurationChanged) if e.kind is R]
    assert regular3 == [RingId(1, 9), RingId(3, 14), RingId(1, 18)]
    assert r.stores[3].seq == 18

    r.kill(3)
    r.run_until(24.0)
    seen = max(max(e.ring_id.seq for e in r.evs(n, ConfigurationChanged)) for n in (1, 2))
    assert seen == 22
    r.stores[3] = RingSeqStore()
    r.start(3)
    assert r.core(3).ring_id == RingId(3, 1)
    r.run_until(26.0)
    assert formed(r, [1, 2, 3])
    joint = r.core(3).ring_id
    assert joint == RingId(1, seen + 4)
    for n in (1, 2):
        regular = [e.ring_id for e in r.evs(n, ConfigurationChanged) if e.kind is R]
        assert len(regular) == len(set(regular))
        assert [x.seq for x in regular] == sorted(x.seq for x in regular)


# --------------------------------------------------------------------------- 10. capture replay

def _ip(n: int) -> str:
    return f"127.0.0.{n}"


def _replay(name: str, me: int, nodes: int, loop: float, inject_messages: bool):
    """Replay a capture into a fresh SrpCore(me).

    Input: every datagram the capture shows arriving at ``me`` from another node
    (from the moment ``me`` sent its first datagram on), at its capture time, and the
    core's own broadcasts/unicasts to itself, looped back after ``loop`` seconds.
    Timers run on the same virtual clock. With ``inject_messages`` the payloads of the
    mcasts ``me`` sent in the capture are queued with ``SrpCore.mcast`` just before the
    token visit on which corosync sent them (the token ``me`` received last before them
    in the capture; if that token is not in the capture, when the ring's REGULAR
    configuration is delivered). Returns the core, what it sent as (time, dst, bytes),
    and its events as (time, event).
    """
    dg = totem_datagrams(name)
    inject: dict = {}
    last_tok = None
    other = 2 if me == 1 else 1
    for d in dg:
        m = parse_untrusted(d.payload)
        if d.dst == _ip(me) and isinstance(m, OrfToken):
            last_tok = (m.ring_id, m.token_seq)
        if inject_messages and d.src == _ip(me) and d.dst == _ip(other) and isinstance(m, Mcast):
            key = last_tok if last_tok and last_tok[0] == m.ring_id else (m.ring_id, None)
            inject.setdefault(key, []).append(m.payload)
    first = min(d.time for d in dg if d.src == _ip(me))
    inputs = [(d.time, d.payload) for d in dg if d.dst == _ip(me) and d.src != _ip(me) and d.time >= first]
    end = dg[-1].time
    core = SrpCore(me, SrpConfig.derive(nodes), RingSeqStore(0))
    out: list[tuple[float, int, bytes]] = []
    events: list[tuple[float, object]] = []
    loopq: list = []
    count = itertools.count()
    now = first

    def flush():
        for x in core.datagrams_to_send():
            for k in (range(1, nodes + 1) if isinstance(x, Broadcast) else (x.nodeid,)):
                out.append((now, k, x.data))
                if k == me:
                    heapq.heappush(loopq, (now + loop, next(count), x.data))
        while (e := core.next_event()) is not None:
            events.append((now, e))
            if isinstance(e, ConfigurationChanged) and e.kind is R:
                for p in inject.pop((e.ring_id, None), []):
                    core.mcast(p)

    def feed(data):
        m = parse_untrusted(data)
        if isinstance(m, OrfToken):
            for p in inject.pop((m.ring_id, m.token_seq), []):
                core.mcast(p)
        core.receive_datagram(data, now)

    core.start(now)
    flush()
    i = 0
    while True:
        cands = []
        if i < len(inputs):
            cands.append((inputs[i][0], 0))
        if loopq:
            cands.append((loopq[0][0], 1))
        if (t := core.get_timer()) is not None:
            cands.append((t, 2))
        now, kind = min(cands)
        if now > end:
            break
        if kind == 0:
            feed(inputs[i][1])
            i += 1
        elif kind == 1:
            feed(heapq.heappop(loopq)[2])
        else:
            core.handle_timer(now)
        flush()
    assert not inject, "some captured messages found no token visit to go out on"
    return core, out, events


def _confs_of(events) -> list[tuple]:
    return [(e.kind, e.ring_id, e.members, e.left, e.joined)
            for _, e in events if isinstance(e, ConfigurationChanged)]


def _mask_target(data: bytes) -> bytes:
    """target_nodeid is uninitialised garbage in corosync's ORF tokens, merge-detects
    and token_hold_cancels (spec §2.1); the core writes 0 there (its forwarded tokens
    keep whatever the received token carried)."""
    return data[:9] + bytes(4) + data[13:] if data[3] in (0, 2, 5) else data


def _compare_with_capture(name: str, me: int, out, tolerance: float = 0.002) -> int:
    cap = [(d.time, int(d.dst.rsplit(".", 1)[1]), d.payload, d.frame)
           for d in totem_datagrams(name) if d.src == _ip(me)]
    if not any(c[1] == me for c in cap):  # the capture does not show me -> me
        out = [o for o in out if o[1] != me]
    assert len(out) == len(cap)
    for (ct, cdst, cdata, frame), (gt, gdst, gdata) in zip(cap, out):
        assert (frame, gdst, _mask_target(gdata)) == (frame, cdst, _mask_target(cdata))
        assert gt == pytest.approx(ct, abs=tolerance), f"frame {frame}"
    return len(cap)


def test_replay_2node_join_capture_full_conversation():
    """2node-join.pcap was captured on node 1 (all its interfaces): it holds everything
    node 1 sent (to itself and to node 2) and everything node 2 sent to node 1.

    Replayed into a fresh SrpCore(1) (empty store, so seq 1, as node 1's first join
    shows): node 2's 68 datagrams to node 1 at their capture times, the core's own
    datagrams looped back after 20 µs (corosync's self-hops in the capture take
    10-100 µs), and node 1's service/sync payloads queued just before the token visit
    on which corosync sent them (8 in ring 1.5, 7 in ring 1.9).

    Asserted: the core sends exactly node 1's 158 datagrams, in order, to the same
    destinations, byte for byte except target_nodeid of ORF tokens and merge-detects
    (garbage in corosync), each within 2 ms of the captured time. This covers the
    singleton ring 1.5 (commit token to itself twice, initial ORF token, 8 mcasts,
    the token held after 31 unchanged visits and sent every 561 ms, merge-detects 200 ms
    after visits), the join answering node 2's (frame 77) and its 50 ms repeat
    (frame 87), the commit token of 1.9 (frame 90), its second rotation (frame 92), the
    initial ORF token (frame 94), the RECOVERY tokens, the sync mcasts and tokens of
    1.9 with their backlog/fcc values, and the idle hold/merge-detect pattern to the
    end of the capture; and the configurations 1.5 {1} and 1.9 {1,2} (joined 2)."""
    name = "corosync-3.1.7-udpu-2node-join.pcap"
    core, out, events = _replay(name, 1, 2, loop=0.00002, inject_messages=True)
    assert _compare_with_capture(name, 1, out) == 158
    c = _confs_of(events)
    assert c == [(T, RingId(1, 5), (1,), (), ()), (R, RingId(1, 5), (1,), (), ()),
                 (T, RingId(1, 9), (1,), (), ()), (R, RingId(1, 9), (1, 2), (), (2,))]
    assert core.state is State.OPERATIONAL and core.store.seq == 9


def test_replay_2node_join_capture_as_joining_node_2():
    """The other side of 2node-join.pcap: node 1's datagrams to node 2 (81 in the
    capture) are node 2's input. Replayed into a fresh SrpCore(2) from node 2's
    first join (2.5039 s) on, own datagrams looped back after 20 µs, node 2's 8
    payloads of its singleton ring 2.5 queued at that ring's REGULAR configuration (its
    own tokens of 2.5 are not in the capture) and its 1.9 payloads before the visit
    corosync sent them on.

    Asserted: the core sends exactly node 2's 68 datagrams to node 1 (node 2's traffic
    to itself is not in the capture), byte for byte with token target_nodeid masked,
    each within 2 ms: its first join (proc {2}, ring_seq 1), 8 mcasts in 2.5 (node 1's
    join {1,2} arriving during the singleton's COMMIT is ignored), the join {2,1} with
    ring_seq 5, the commit token with entry {2.5, 8, 8, 1} (frame 91) and the second
    rotation (frame 93), and every ORF token and mcast of ring 1.9."""
    name = "corosync-3.1.7-udpu-2node-join.pcap"
    core, out, events = _replay(name, 2, 2, loop=0.00002, inject_messages=True)
    assert _compare_with_capture(name, 2, out) == 68
    c = _confs_of(events)
    assert c == [(T, RingId(2, 5), (2,), (), ()), (R, RingId(2, 5), (2,), (), ()),
                 (T, RingId(1, 9), (2,), (), ()), (R, RingId(1, 9), (1, 2), (), (1,))]
    assert core.store.seq == 9


def test_replay_2node_join_capture_membership_answers_without_message_history():
    """The same replay without node 1's payloads (the core sends no messages in 1.5):

    * node 2's first join (frame 76, proc {2}, ring_seq 1) → the core broadcasts the
      join of frame 77 byte for byte (proc {1,2}, ring_seq 5), and repeats it 50 ms
      later (frame 87);
    * node 2's join with proc {2,1} (frame 89) → the core sends the commit token of
      frame 90: ring 1.9, addr [1,2], memb_index 1, token_seq 1, memb_list[0] ring id
      1.5 as captured; only memb_list[0].aru and .high_delivered differ (0 here, 8 in
      the capture: corosync had ordered its 8 service messages in ring 1.5, which this
      replay leaves out), so is that one entry;
    * node 2's commit token (frame 91, memb_index 2) → forwarded with token_seq 3:
      byte-identical to frame 92 (it carries corosync's own entry from frame 91);
    * node 2's second-rotation commit token (frame 93) → the initial ORF token, equal
      to frame 94 except target_nodeid (0x02000000 garbage in corosync)."""
    name = "corosync-3.1.7-udpu-2node-join.pcap"
    frames = {d.frame: d.payload for d in totem_datagrams(name)}
    _, out, _ = _replay(name, 1, 2, loop=0.00002, inject_messages=False)
    to2 = [(t, data) for t, dst, data in out if dst == 2]
    joins = [(t, d) for t, d in to2 if d[3] == 3]
    assert joins[0][1] == frames[2]  # first join: proc {1}, ring_seq 1
    answer = [(t, d) for t, d in joins if t >= 2.5]
    assert answer[0][1] == frames[78] == frames[77]
    assert answer[1][1] == frames[88]
    assert answer[1][0] - answer[0][0] == pytest.approx(0.050, abs=1e-9)
    commits = [parse_untrusted(d) for t, d in to2 if d[3] == 4]
    cap90 = parse_untrusted(frames[90])
    ct = commits[0]
    assert (ct.token_seq, ct.ring_id, ct.addr, ct.memb_index, ct.nodeid) == (1, RingId(1, 9), [1, 2], 1, 1)
    assert ct.memb_list[0].ring_id == cap90.memb_list[0].ring_id == RingId(1, 5)
    assert ct.memb_list[0] == cap90.memb_list[0]._replace(aru=0, high_delivered=0)
    assert cap90.memb_list[0].aru == cap90.memb_list[0].high_delivered == 8
    assert ct.memb_list[1:] == cap90.memb_list[1:]
    fixed = cap90.memb_list[:]
    fixed[0] = ct.memb_list[0]
    cap90.memb_list = fixed
    assert ct.pack() == cap90.pack()
    assert [c.token_seq for c in commits] == [1, 3]
    second = [d for t, d in to2 if d[3] == 4][1]
    assert second == frames[92]
    orf = [d for t, d in to2 if d[3] == 0 and parse_untrusted(d).ring_id == RingId(1, 9)][0]
    assert _mask_target(orf) == _mask_target(frames[94]) and orf[9:13] == bytes(4)


def test_replay_3node_join_capture_as_joining_node_3():
    """3node-join.pcap was captured on the bridge: it shows what nodes 1, 2 and 3 sent
    to each other, not what each sent to itself. Node 3 starts (join proc {3},
    ring_seq 1, frame 7) while nodes 1 and 2 run ring 1.9.

    Replayed into a fresh SrpCore(3): every datagram to 127.0.0.3 from node 3's first
    datagram on, its own datagrams looped back after 100 µs (with that delay node 3 is
    still forming its singleton ring 3.5 when the joins of nodes 1 and 2 arrive 0.1 and
    0.2 ms after its own, and ignores them in COMMIT/RECOVERY, as corosync did), and
    node 3's 8 payloads of ring 3.5 queued when its REGULAR configuration of 3.5 is
    delivered (its own tokens of 3.5 are not in the capture) and its 1.13 payloads
    before the visit corosync sent them on.

    Asserted: the core sends exactly node 3's 86 datagrams to nodes 1 and 2 in order,
    byte for byte (target_nodeid of tokens masked), each within 2 ms: the 8 mcasts of
    ring 3.5, the join {3,1,2} with ring_seq 5 (frames 33/34), the commit token with
    its entry {3.5, aru 8, high_delivered 8, received_flg 1} and memb_index 3
    (frame 37), the second rotation (frame 40), the RECOVERY tokens (aru 0xFFFFFFFF
    kept, frame 43), and the traffic of ring 1.13; the configurations are 3.5 {3},
    then TRANSITIONAL 1.13 {3} and REGULAR 1.13 {1,2,3} joined {1,2}."""
    name = "corosync-3.1.7-udpu-3node-join.pcap"
    frames = {d.frame: d.payload for d in totem_datagrams(name)}
    core, out, events = _replay(name, 3, 3, loop=0.0001, inject_messages=True)
    assert _compare_with_capture(name, 3, out) == 86
    ct = parse_untrusted(frames[37])
    assert ct.memb_list[2] == MembEntry(RingId(3, 5), 8, 8, 1) and ct.memb_index == 3
    c = _confs_of(events)
    assert c == [(T, RingId(3, 5), (3,), (), ()), (R, RingId(3, 5), (3,), (), ()),
                 (T, RingId(1, 13), (3,), (), ()), (R, RingId(1, 13), (1, 2, 3), (), (1, 2))]
    assert core.ring_id == RingId(1, 13) and core.store.seq == 13


def test_send_join_spreads_joins_over_a_random_delay():
    """send_join (ms): each join waits a random 0..send_join ms, as corosync sleeps before
    sending it; a ring still forms, and no join leaves before its gather started."""
    from totem.srp import Broadcast, SrpConfig, SrpCore
    from totem.wire import MembJoin, parse_untrusted

    cfg = SrpConfig.derive(2, send_join=80)
    core = SrpCore(1, cfg)
    core.start(0.0)
    assert core.datagrams_to_send() == [], "the first join waits"
    deadline = core.get_timer()
    assert 0.0 <= deadline <= 0.080
    core.handle_timer(deadline)
    joins = [d for d in core.datagrams_to_send()
             if isinstance(d, Broadcast) and isinstance(parse_untrusted(d.data), MembJoin)]
    assert len(joins) == 1


def test_a_token_copied_out_of_reach_is_dropped_and_the_ring_goes_on():
    """Someone on the path sends node 3 a copy of a token of its ring whose seq is far
    beyond what node 3 has (corosync asserts on it): it is counted and dropped."""
    from totem.srp.sortqueue import QUEUE_SIZE
    from totem.wire import OrfToken

    ring = Ring([1, 2, 3])
    ring.start()
    ring.run_until(lambda: all(ring.core(n).state.name == "OPERATIONAL" for n in (1, 2, 3)), 10)
    core3 = ring.core(3)
    bogus = OrfToken(seq=(core3.my_aru + QUEUE_SIZE + 5) & 0xFFFFFFFF, token_seq=core3.my_token_seq + 1000,
                     aru=core3.my_aru, aru_addr=1, ring_id=core3.my_ring_id, nodeid=2).pack()
    core3.receive_datagram(bogus, ring.now)
    assert core3.stats["token_insane"] == 1
    before = ring.core(1).stats["orf_token_rx"]
    ring.run_until(ring.now + 1.0)
    assert all(ring.core(n).state.name == "OPERATIONAL" for n in (1, 2, 3))
    assert ring.core(1).stats["orf_token_rx"] > before
