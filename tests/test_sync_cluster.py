"""Sync engines with the default services on real TotemStacks (the test bed of _ring.py).

Every node runs SRP + totempg + SyncEngine + cmap/cpg/quorum/votequorum; the
engine's messages go through ``TotemStack.send`` and come back in agreed order, and
``trans_ack`` is called at sync completion, as the daemon will do. Checked: every
node completes sync for every regular configuration it installs unless a newer one
interrupts it (then it aborts and completes the newer one), the services' tables
agree, and a member that cannot send stalls everyone until it is removed.
"""

from __future__ import annotations

import pytest

from _ring import Ring
from totem.services import default_services
from totem.services.cpg import CpgService
from totem.services.votequorum import NodeState, VotequorumService
from totem.srp import ConfigurationChanged, ConfigurationKind
from totem.stack import TotemStack
from totem.sync import ServiceSynced, SyncAborted, SyncCompleted, SyncEngine, SyncStarted
from totem.wire import RingId


class SyncRing(Ring):
    def __init__(self, ids, **kw) -> None:
        super().__init__(ids, stack=True, **kw)
        self.engines: dict[int, SyncEngine] = {}
        self.seen: dict[int, int] = {n: 0 for n in self.ids}
        self.sync_events: dict[int, list[tuple[float, object]]] = {n: [] for n in self.ids}
        self.blocked: set[int] = set()
        """Nodes whose transport refuses every message (a send queue that stays full)."""
        self.confs: dict[int, list[ConfigurationChanged]] = {n: [] for n in self.ids}

    def start(self, *ids: int) -> None:
        for n in ids or self.ids:
            stack = TotemStack(n, self.config, self.stores[n], auto_trans_ack=False)
            self.nodes[n] = stack
            self.engines[n] = SyncEngine(n, default_services(n, expected_votes=len(self.ids)),
                                         room=self._room(n))
            self.seen[n] = len(self.events[n])
            self.dead.discard(n)
            stack.start(self.now)
            self._flush(n)

    def _room(self, n: int):
        cluster = self

        class Room:
            """Node ``n``'s stack, or no room at all while ``n`` is blocked."""

            def cost(self, size: int) -> int:
                return cluster._stack(n).cost(size)

            def fits(self, cost: int) -> bool:
                return n not in cluster.blocked and cluster._stack(n).fits(cost)
        return Room()

    def _stack(self, n: int) -> TotemStack:
        st = self.nodes[n]
        assert isinstance(st, TotemStack)
        return st

    def _flush(self, n: int) -> None:
        super()._flush(n)
        engine = self.engines.get(n)
        if engine is None or n in self.dead:
            return
        stack = self.nodes[n]
        while True:
            new = self.events[n][self.seen[n]:]
            self.seen[n] = len(self.events[n])
            outs = []
            for _, ev in new:
                if isinstance(ev, ConfigurationChanged):
                    self.confs[n].append(ev)
                outs += engine.handle(ev)
            outs += engine.poll()
            for o in outs:
                assert stack.send(o.groups, o.body), "the room check let through what send refused"
            for ev in engine.take_events():
                self.sync_events[n].append((self.now, ev))
                if isinstance(ev, SyncCompleted):
                    stack.trans_ack()
            super()._flush(n)
            if self.seen[n] == len(self.events[n]):
                return

    # -- views
    def sev(self, n: int, kind) -> list:
        return [e for _, e in self.sync_events[n] if isinstance(e, kind)]

    def synced_on(self, ring: RingId, nodes) -> bool:
        return all(any(e.ring_id == ring for e in self.sev(n, SyncCompleted)) for n in nodes)

    def ring_of(self, n: int) -> RingId:
        return self.core(n).ring_id

    def all_synced(self, nodes) -> bool:
        """Every node of ``nodes`` is in one ring made of exactly them, and synced on it."""
        nodes = sorted(nodes)
        rings = {self.ring_of(n) for n in nodes}
        if len(rings) != 1 or any(sorted(self.core(n).members) != nodes for n in nodes):
            return False
        return self.synced_on(rings.pop(), nodes)


def check_history(r: SyncRing, n: int) -> None:
    """Every regular configuration of node n ends in completion, or in an abort by the
    next configuration; events come in order started -> synced x4 -> completed."""
    regular = [c.ring_id for c in r.confs[n] if c.kind is ConfigurationKind.REGULAR]
    rounds: list[list] = []
    for _, e in r.sync_events[n]:
        if isinstance(e, SyncStarted):
            rounds.append([e])
        elif isinstance(e, (ServiceSynced, SyncCompleted, SyncAborted)):
            assert rounds and e.ring_id == rounds[-1][0].ring_id, (n, e)
            rounds[-1].append(e)
    assert [rd[0].ring_id for rd in rounds] == regular
    for i, rd in enumerate(rounds):
        synced = [e.service_id for e in rd if isinstance(e, ServiceSynced)]
        assert synced == [0, 2, 3, 5][:len(synced)]
        ends = [e for e in rd if isinstance(e, (SyncCompleted, SyncAborted))]
        if i < len(rounds) - 1:
            assert len(ends) == 1, (n, rd)
        if isinstance(ends[-1] if ends else None, SyncCompleted):
            assert len(synced) == 4
    assert isinstance(rounds[-1][-1], SyncCompleted), (n, rounds[-1])


def consistent_tables(r: SyncRing, nodes) -> None:
    cpgs = [r.engines[n].services[2] for n in nodes]
    assert all(isinstance(c, CpgService) for c in cpgs)
    tables = {tuple((p.nodeid, p.pid, p.group.name) for p in c.process_info) for c in cpgs}
    assert len(tables) == 1, tables
    for n in nodes:
        vq = r.engines[n].services[5]
        assert isinstance(vq, VotequorumService)
        live = {nid for nid, v in vq.nodes.items() if nid and v.state == NodeState.MEMBER}
        assert live == set(nodes), (n, vq.nodes)
        assert vq.total_votes == len(nodes)


@pytest.mark.parametrize("n", [3, 5])
def test_all_nodes_start_together_and_sync(n: int) -> None:
    r = SyncRing(range(1, n + 1))
    r.start()
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    r.run_until(r.now + 1.0)
    for node in r.ids:
        check_history(r, node)
        assert not r.engines[node].in_sync
        assert not r.core(node).waiting_trans_ack
        assert r.engines[node].service_list == [(0, "corosync configuration map access"),
                                                (2, "corosync cluster closed process group service v1.01"),
                                                (3, "corosync cluster quorum service v0.1"),
                                                (5, "corosync vote quorum service v1.0")]
    consistent_tables(r, r.ids)


def test_nodes_join_one_by_one_and_cpg_members_follow() -> None:
    r = SyncRing(range(1, 6))
    r.start(1, 2)
    r.run_until(lambda: r.all_synced([1, 2]), timeout=30)
    # a CPG member on node 1, announced outside sync
    cpg1 = r.engines[1].services[2]
    assert isinstance(cpg1, CpgService)
    r.send(1, cpg1.procjoin(b"grp", 100), groups=(b"a",))
    r.run_until(r.now + 0.5)
    for joiner in (3, 4, 5):
        r.start(joiner)
        members = list(range(1, joiner + 1))
        r.run_until(lambda: r.all_synced(members), timeout=30)
        r.run_until(r.now + 0.5)
        consistent_tables(r, members)
        # the joiner learnt node 1's member from its joinlist
        cpg = r.engines[joiner].services[2]
        assert isinstance(cpg, CpgService)
        assert cpg.members_of(b"grp") == [(1, 100)]
    for node in r.ids:
        check_history(r, node)


def test_a_crashed_nodes_cpg_members_are_removed_at_the_next_sync() -> None:
    r = SyncRing(range(1, 5))
    r.start()
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    for node, pid in ((1, 11), (4, 44)):
        cpg = r.engines[node].services[2]
        assert isinstance(cpg, CpgService)
        r.send(node, cpg.procjoin(b"g", pid), groups=(b"a",))
    r.run_until(r.now + 0.5)
    consistent_tables(r, r.ids)
    r.kill(4)
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    r.run_until(r.now + 0.5)
    consistent_tables(r, [1, 2, 3])
    for node in (1, 2, 3):
        cpg = r.engines[node].services[2]
        assert isinstance(cpg, CpgService)
        assert cpg.members_of(b"g") == [(1, 11)]
        check_history(r, node)


def test_a_member_that_cannot_send_stalls_everyone_until_removed() -> None:
    r = SyncRing(range(1, 5))
    r.start()
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    # node 3's queue stays full from now on; node 4 crashes -> new ring 1, 2, 3
    r.blocked.add(3)
    r.kill(4)
    r.run_until(lambda: sorted(r.core(1).members) == [1, 2, 3] and r.engines[1].ring_id == r.ring_of(1),
                timeout=30)
    stalled = r.ring_of(1)
    r.run_until(r.now + 5.0)
    for node in (1, 2, 3):
        assert r.engines[node].in_sync and r.ring_of(node) == stalled
        assert not r.synced_on(stalled, [node])
        assert r.engines[node].current_step is None or r.engines[node].state.name == "SERVICELIST_BUILD"
    # node 4 comes back: the stalled round is aborted and a new one starts, still stalled
    r.start(4)
    r.run_until(lambda: all(sorted(r.core(n).members) == [1, 2, 3, 4] for n in r.ids)
                and all(r.engines[n].ring_id == r.ring_of(n) for n in r.ids), timeout=30)
    second = r.ring_of(1)
    r.run_until(r.now + 2.0)
    assert not r.synced_on(second, r.ids)
    for node in (1, 2, 3):
        assert [e.ring_id for e in r.sev(node, SyncAborted)][-1] == stalled
    # node 3's queue drains: everyone completes the current ring
    r.blocked.clear()
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    r.run_until(r.now + 0.5)
    assert r.synced_on(second, r.ids)
    for node in r.ids:
        check_history(r, node)
    consistent_tables(r, r.ids)


def test_a_sync_interrupted_in_the_middle_of_a_step() -> None:
    """Node 3 cannot send its CPG data (queue full) while the cpg step runs; a new node
    joins meanwhile. Every node aborts the old round in the cpg step and completes the
    new one once node 3 can send again."""
    r = SyncRing(range(1, 5))
    r.start(1, 2, 3)
    r.run_until(lambda: r.all_synced([1, 2, 3]), timeout=30)
    engine3 = r.engines[3]
    room3 = engine3.room

    class StallCpg:
        """Node 3's queue, full while the cpg step runs."""

        cost = room3.cost

        def fits(self, cost: int) -> bool:
            return engine3.current_step != (2, CpgService.name) and room3.fits(cost)

    engine3.room = StallCpg()
    r.kill(2)  # new ring 1, 3: the cmap step completes, cpg stalls on node 3
    r.run_until(lambda: r.engines[1].current_step == (2, CpgService.name)
                and sorted(r.core(1).members) == [1, 3], timeout=30)
    interrupted = r.ring_of(1)
    r.run_until(r.now + 1.0)
    assert r.engines[1].current_step == (2, CpgService.name) and r.engines[3].wants_poll
    engine3.room = room3
    r.start(2, 4)
    r.run_until(lambda: r.all_synced(r.ids), timeout=30)
    for node in (1, 3):
        aborted = [e.ring_id for e in r.sev(node, SyncAborted)]
        assert aborted == [interrupted]
        committed = [e.service_id for e in r.sev(node, ServiceSynced) if e.ring_id == interrupted]
        assert committed == [0]
    r.run_until(r.now + 0.5)
    for node in r.ids:
        check_history(r, node)
    consistent_tables(r, r.ids)
