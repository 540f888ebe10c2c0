"""CPG clients on several nodes of a simulated ring (the test bed of test_sync_cluster).

Every node runs TotemStack + SyncEngine + the default services; client connections
are driven through CpgService's lib hooks, and what the service emits for them
(LibResponse, LibEvent) is decoded with the client half of totem.lib.cpg, as libcpg
would decode it (fragments reassembled per sender). ``flush_pending`` is called
before each poll of the engine, as the daemon does.

Checked: clients of a group on different nodes see the same sequence of CONFCHG and
DELIVER events (virtual synchrony: from the confchg in which the later of two
clients joined, until one of them stops), their own messages included, every
sender's messages in order and none lost, whatever sync or a full transport did
to them on the way; JOIN is answered TRY_AGAIN during sync; a closed connection
leaves with PROCDOWN, a node that goes takes its processes with NODEDOWN, a node
that comes back after a partition brings them back with NODEUP.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from test_sync_cluster import SyncRing
from totem.lib.common import CsError
from totem.lib.cpg import (
    ConfchgCallback,
    CpgName,
    CpgReason,
    CpgResponseId,
    DeliverCallback,
    JoinRequest,
    LeaveRequest,
    McastRequest,
    PartialDeliverCallback,
    PartialMcastRequest,
    PartialType,
    TotemConfchgCallback,
    parse_event_untrusted,
    parse_status_untrusted,
)
from totem.services.base import LibConnection, LibEvent, LibResponse
from totem.services.cpg import CpdState, CpgService
from totem.stack import MessageReceived
from totem.sync import SyncEngine


class CpgRing(SyncRing):
    """A SyncRing whose engines flush the CPG backlog before every poll."""

    def start(self, *ids: int) -> None:
        for n in ids or self.ids:
            super().start(n)
            engine = self.engines[n]
            engine.poll = _flushing_poll(engine, self.cpg(n))  # type: ignore[method-assign]

    def cpg(self, n: int) -> CpgService:
        svc = self.engines[n].services[2]
        assert isinstance(svc, CpgService)
        return svc

    def settle(self, seconds: float = 0.5) -> None:
        self.run_until(self.now + seconds)


def _flushing_poll(engine: SyncEngine, cpg: CpgService):
    poll = engine.poll

    def flush_then_poll():
        cpg.flush_pending()
        return poll()

    return flush_then_poll


_conn_ids = itertools.count(1)


@dataclass
class Client:
    """One libcpg connection on node ``node`` of ring ``r``."""

    r: CpgRing
    node: int
    pid: int
    conn: int = field(default_factory=lambda: next(_conn_ids))
    sent: list[bytes] = field(default_factory=list)
    """Payloads multicast (and not refused), in order."""

    def __post_init__(self) -> None:
        self.r.cpg(self.node).lib_connect(LibConnection(self.conn, self.pid, 0, 0))
        self.r._flush(self.node)

    def request(self, data: bytes) -> bytes | None:
        events = self.r.sync_events[self.node]
        start = len(events)
        self.r.cpg(self.node).lib_request(self.conn, int.from_bytes(data[:4], "little", signed=True), data)
        self.r._flush(self.node)
        resp = [e.data for _, e in events[start:] if isinstance(e, LibResponse) and e.conn == self.conn]
        assert len(resp) <= 1
        return resp[0] if resp else None

    def status(self, data: bytes) -> tuple[int, int]:
        resp = self.request(data)
        assert resp is not None
        return parse_status_untrusted(resp)

    def join(self, group: bytes) -> tuple[int, int]:
        return self.status(JoinRequest(CpgName.of(group), self.pid).pack())

    def leave(self, group: bytes) -> tuple[int, int]:
        return self.status(LeaveRequest(CpgName.of(group), self.pid).pack())

    def mcast(self, payload: bytes) -> None:
        assert self.request(McastRequest(payload).pack()) is None
        self.sent.append(payload)

    def send_fragmented(self, payload: bytes, fragment: int) -> None:
        """What libcpg does with a message larger than its fragment size."""
        parts = [payload[i:i + fragment] for i in range(0, len(payload), fragment)]
        for i, part in enumerate(parts):
            typ = PartialType.FIRST if i == 0 else PartialType.LAST if i == len(parts) - 1 else PartialType.CONTINUED
            assert self.status(PartialMcastRequest(len(payload), typ, part).pack()) == \
                (CpgResponseId.PARTIAL_SEND, CsError.OK)
        self.sent.append(payload)

    def disconnect(self) -> None:
        self.r.cpg(self.node).lib_disconnect(self.conn)
        self.r._flush(self.node)

    @property
    def state(self) -> CpdState | None:
        return self.r.cpg(self.node).connection_state(self.conn)

    def events(self) -> list:
        return [parse_event_untrusted(e.data) for _, e in self.r.sync_events[self.node]
                if isinstance(e, LibEvent) and e.conn == self.conn]

    def history(self) -> list[tuple]:
        """CONFCHG and DELIVER as the application sees them (fragments reassembled)."""
        out: list[tuple] = []
        assembly: dict[tuple[int, int], bytes] = {}
        for ev in self.events():
            if isinstance(ev, ConfchgCallback):
                out.append(("confchg", ev.group.name, ev.members, ev.left, ev.joined))
                for nodeid, pid, _ in ev.left:
                    assembly.pop((nodeid, pid), None)
            elif isinstance(ev, DeliverCallback):
                out.append(("deliver", ev.group.name, ev.nodeid, ev.pid, ev.data))
            elif isinstance(ev, PartialDeliverCallback):
                key = (ev.nodeid, ev.pid)
                if ev.type == PartialType.FIRST:
                    assembly[key] = b""
                if key in assembly:
                    assembly[key] += ev.data
                    if ev.type == PartialType.LAST:
                        out.append(("deliver", ev.group.name, ev.nodeid, ev.pid, assembly.pop(key)))
        return out

    def delivered_from(self, sender: "Client") -> list[bytes]:
        return [h[4] for h in self.history() if h[0] == "deliver" and h[2:4] == (sender.node, sender.pid)]


def payload(c: Client, i: int, size: int) -> bytes:
    tag = f"{c.node}/{c.pid}#{i}|".encode()
    return (tag * (size // len(tag) + 1))[:max(size, len(tag))]


def check_virtual_synchrony(clients: list[Client]) -> None:
    """Any two clients of a group see the same events from the confchg in which the
    later one joined for as long as both keep getting events."""
    histories = {c.conn: c.history() for c in clients}
    compared = 0
    for a, b in itertools.permutations(clients, 2):
        ha, hb = histories[a.conn], histories[b.conn]
        if not hb or hb[0] not in ha:
            continue
        i = ha.index(hb[0])
        k = min(len(ha) - i, len(hb))
        assert ha[i:i + k] == hb[:k], (a, b)
        compared += 1
    assert compared >= len(clients) - 1


def mixed_round(clients: list[Client], start: int, sizes=(0, 7, 1400, 3000, 20000)) -> None:
    for i, size in enumerate(sizes):
        for c in clients:
            c.mcast(payload(c, start + i, size))


def test_clients_on_four_nodes_see_the_same_histories() -> None:
    r = CpgRing(range(1, 5))
    r.start()
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    alpha = [Client(r, 1, 101), Client(r, 2, 201), Client(r, 3, 301), Client(r, 4, 401)]
    beta = [Client(r, 1, 102), Client(r, 3, 302), Client(r, 4, 402)]
    for c in alpha:
        assert c.join(b"alpha") == (CpgResponseId.JOIN, CsError.OK)
    for c in beta:
        assert c.join(b"beta") == (CpgResponseId.JOIN, CsError.OK)
    r.settle()
    assert all(c.state is CpdState.JOIN_COMPLETED for c in alpha + beta)
    mixed_round(alpha + beta, 0)
    alpha[1].send_fragmented(payload(alpha[1], 100, 12000), 5000)
    beta[2].send_fragmented(payload(beta[2], 100, 9000), 3000)
    r.settle()

    # node 4 leaves: its processes go with reason NODEDOWN on the other nodes
    r.leave(4)
    r.run_until(lambda: r.engines[1].in_sync, timeout=30)
    late = Client(r, 1, 103)
    assert late.join(b"alpha") == (0, CsError.TRY_AGAIN)  # sync: nothing may be sent
    for i in range(3):
        alpha[0].mcast(payload(alpha[0], 200 + i, 500 * i))  # queued, not lost
    assert r.cpg(1).backlog_bytes > 0
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    r.settle()
    assert r.cpg(1).backlog_bytes == 0
    assert late.join(b"alpha") == (CpgResponseId.JOIN, CsError.OK)
    r.settle()
    for c in alpha[:3]:
        assert ("confchg", b"alpha", ((1, 101), (2, 201), (3, 301)), ((4, 401, CpgReason.NODEDOWN),), ()) \
            in c.history()
    for c in beta[:2]:
        assert ("confchg", b"beta", ((1, 102), (3, 302)), ((4, 402, CpgReason.NODEDOWN),), ()) in c.history()

    # node 4 comes back, its clients again
    r.start(4)
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    again = [Client(r, 4, 411), Client(r, 4, 412)]
    assert again[0].join(b"alpha")[1] == CsError.OK
    assert again[1].join(b"beta")[1] == CsError.OK
    r.settle()
    alpha_now = alpha[:3] + [late, again[0]]
    beta_now = beta[:2] + [again[1]]
    mixed_round(alpha_now + beta_now, 300, sizes=(1, 2500, 0))
    alpha[2].send_fragmented(payload(alpha[2], 400, 7000), 2000)
    r.settle()

    # a client goes away without leaving: PROCDOWN; another leaves properly
    alpha[2].disconnect()
    assert beta[1].leave(b"beta") == (CpgResponseId.LEAVE, CsError.OK)
    r.settle()
    assert beta[1].state is CpdState.UNJOINED
    mixed_round([alpha[0], again[1]], 500, sizes=(10,))
    r.settle()

    for group in (alpha + [late, again[0]], beta + [again[1]]):
        check_virtual_synchrony(group)
    assert alpha[0].history()[-2][:4] == ("confchg", b"alpha", ((1, 101), (1, 103), (2, 201), (4, 411)),
                                          ((3, 301, CpgReason.PROCDOWN),))
    assert ("confchg", b"beta", ((1, 102), (4, 412)), ((3, 302, CpgReason.LEAVE),), ()) in beta[0].history()
    # every sender's messages reached every client that was in the group all along, in order, own included
    for receiver in (alpha[0], alpha[1]):
        for sender in alpha[:3]:
            assert receiver.delivered_from(sender) == sender.sent, (receiver, sender)
    for sender in alpha + beta:
        assert sender.delivered_from(sender) == sender.sent
    # clients that joined later got exactly what was sent after their join
    for receiver, group in ((late, alpha_now), (again[0], alpha_now), (again[1], beta_now)):
        for sender in group:
            got = receiver.delivered_from(sender)
            assert got and got == sender.sent[len(sender.sent) - len(got):], (receiver, sender)
    # a TOTEM_CONFCHG after each sync, for joined and unjoined connections alike
    totem = [e for e in late.events() if isinstance(e, TotemConfchgCallback)]
    assert [t.members for t in totem] == [(1, 2, 3), (1, 2, 3, 4)]


def three_nodes_in_g(*clients: tuple[int, int], spare: bool = False) -> tuple[CpgRing, list[Client]]:
    """A synced ring of nodes 1-3 and clients (node, pid) joined to group g (with
    ``spare``, node 4 is configured but not started)."""
    r = CpgRing(range(1, 5 if spare else 4))
    r.start(1, 2, 3)
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    out = [Client(r, node, pid) for node, pid in clients]
    for c in out:
        assert c.join(b"g")[1] == CsError.OK
    r.settle()
    return r, out


def test_a_full_transport_and_a_closing_client_lose_nothing() -> None:
    r, (a, b, c) = three_nodes_in_g((1, 10), (2, 20), (1, 11))
    r.blocked.add(1)  # node 1's send queue stays full
    for i in range(4):
        a.mcast(payload(a, i, 100 * i))
        c.mcast(payload(c, i, 3000))
    assert c.join(b"other") == (CpgResponseId.JOIN, CsError.EXIST)
    assert a.leave(b"g") == (0, CsError.TRY_AGAIN)  # would overtake its waiting messages
    c.disconnect()  # its PROCLEAVE waits behind its messages
    backlog = r.cpg(1).backlog_bytes
    assert backlog == sum(184 + len(p) for p in a.sent + c.sent) + 168
    r.settle()
    assert b.delivered_from(a) == []
    r.blocked.clear()
    r.settle()
    assert r.cpg(1).backlog_bytes == 0
    assert b.delivered_from(a) == a.sent and b.delivered_from(c) == c.sent
    assert b.history()[-1][3] == ((1, 11, CpgReason.PROCDOWN),)
    assert a.leave(b"g")[1] == CsError.OK
    r.settle()
    check_virtual_synchrony([a, b, c])


def test_a_partition_gives_nodedown_and_the_merge_nodeup() -> None:
    r, (a, b, c) = three_nodes_in_g((1, 10), (2, 20), (3, 30))
    r.partition = [{1, 2}, {3}]
    r.run_until(lambda: r.all_synced([1, 2]) and r.all_synced([3]), timeout=30)
    r.settle()
    assert a.history()[-1] == ("confchg", b"g", ((1, 10), (2, 20)), ((3, 30, CpgReason.NODEDOWN),), ())
    assert c.history()[-1] == ("confchg", b"g", ((3, 30),), ((1, 10, CpgReason.NODEDOWN),
                                                             (2, 20, CpgReason.NODEDOWN)), ())
    b.mcast(b"only on this side")
    r.settle()
    assert c.delivered_from(b) == []
    r.partition = None
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    r.settle()
    assert a.history()[-1] == ("confchg", b"g", ((1, 10), (2, 20), (3, 30)), (), ((3, 30, CpgReason.NODEUP),))
    kind, group, members, left, joined = c.history()[-1]
    assert (kind, members, left) == ("confchg", ((1, 10), (2, 20), (3, 30)), ())
    assert sorted(joined) == [(1, 10, CpgReason.NODEUP), (2, 20, CpgReason.NODEUP)]  # one confchg for both
    a.mcast(b"together again")
    r.settle()
    for x in (a, b, c):
        assert x.history()[-1] == ("deliver", b"g", 1, 10, b"together again")
    tables = {tuple((p.nodeid, p.pid) for p in r.cpg(n).process_info) for n in r.ids}
    assert tables == {((1, 10), (2, 20), (3, 30))}


OPS = st.lists(st.tuples(st.sampled_from(["mcast", "mcast", "frag", "block", "unblock", "settle", "node4"]),
                         st.integers(0, 3), st.integers(0, 6000)), min_size=5, max_size=30)


def alive_nodes(r: CpgRing) -> list[int]:
    return [n for n in r.ids if n in r.nodes and n not in r.dead]


@settings(max_examples=25, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(OPS)
def test_random_traffic_through_syncs_and_full_queues_loses_and_reorders_nothing(ops) -> None:
    r, clients = three_nodes_in_g((1, 10), (2, 20), (3, 30), (1, 11), spare=True)
    for op, who, size in ops:
        c = clients[who]
        if op == "mcast":
            c.mcast(payload(c, len(c.sent), size))
        elif op == "frag":
            c.send_fragmented(payload(c, len(c.sent), size + 2), size // 3 + 1)
        elif op == "block":
            r.blocked.add(c.node)
        elif op == "unblock":
            r.blocked.discard(c.node)
        elif op == "settle":
            r.settle(0.02 * (size % 10))
        elif r.all_synced(alive_nodes(r)):  # one change at a time: see the xfails below
            if 4 in alive_nodes(r):
                r.leave(4)
            else:
                r.start(4)  # a configuration change: a sync starts, multicasts wait
    r.blocked.clear()
    alive = alive_nodes(r)
    r.run_until(lambda: r.all_synced(alive), timeout=60)
    for c in clients:  # traffic goes on (see the xfail below for why this matters)
        c.mcast(payload(c, len(c.sent), 1))
    r.settle()
    assert all(r.cpg(n).backlog_bytes == 0 for n in alive)
    for receiver in clients:
        for sender in clients:
            assert receiver.delivered_from(sender) == sender.sent
    check_virtual_synchrony(clients)



# -- totem issues these tests ran into (no CPG involved: bare TotemStacks) ----------------------


@pytest.mark.xfail(strict=True, reason="totem as corosync 3.1.7: a LEAVE from a node outside the current ring "
                                       "does not fail it, so 1-3 wait the consensus timeout (5.16 s here) "
                                       "before re-forming and delivering (liveness, not loss)")
def test_messages_queued_before_an_aborted_membership_change_are_delivered() -> None:
    r = CpgRing(range(1, 5))
    r.start(1, 2, 3)
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    for i in range(3):
        r.send(1, b"msg%d" % i, groups=(b"a",))
    r.start(4)
    r.leave(4)
    r.settle(3.0)
    for n in (1, 2, 3):
        assert [e.body for e in r.evs(n, MessageReceived) if e.body.startswith(b"msg")] == [b"msg0", b"msg1", b"msg2"]


def test_a_node_restarted_right_after_leaving_joins_the_ring() -> None:
    """The restarted node 4 receives the LEAVE its previous incarnation sent (still in
    flight): it must drop it, not put itself in its own failed list."""
    r = CpgRing(range(1, 5))
    r.start(1, 2, 3)
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    r.start(4)
    r.settle(0.02)
    r.leave(4)
    r.start(4)
    r.run_until(lambda: r.all_synced(r.ids), timeout=20)
