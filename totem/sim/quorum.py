"""Quorum in the simulator: every node runs the service layer, and no two partitions
may be quorate at once.

:class:`QuorumSimulation` is a :class:`~totem.sim.cluster.Simulation` whose nodes run,
on top of their totem stack, corosync's sync engine with the default services
(cmap, cpg, quorum, votequorum) as totemd does: sync messages go through the ring,
``trans_ack`` follows sync completion, votequorum's last_man_standing timer runs on
the virtual clock and its ev_tracking file survives restarts (not a ``wipe``).
Every quorum decision a node publishes (:class:`~totem.services.votequorum.QuorumChanged`)
is recorded with its time.

The safety property checked by :func:`check_quorum`: at no instant are two nodes
quorate with disjoint views (member lists). A node keeps the view of its last
completed sync until the next one completes or the node dies, so a node cut off and
still believing the old ring counts too; its old view overlaps any new quorate one
as long as quorum means a majority of the same expected votes. Options that lower
expected votes on purpose (last_man_standing, allow_downscale) or that rely on
fencing (two_node) do not give that guarantee and are left out of the sweep.

:func:`partition_schedule` draws fault schedules that keep re-cutting the cluster
(two or three groups at a time, merges, crashes and restarts) inside the fault window.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from quorum.arithmetic import QuorumConfig

from ..services import CmapService, CpgService
from ..services.quorum import QuorumService
from ..services.votequorum import MemoryEvTrackingStore, QuorumChanged, VotequorumService
from ..srp import SrpConfig
from ..stack import MessageReceived, TotemStack
from ..sync import SyncCompleted, SyncEngine
from ..wire import RingId
from ..wire.pg import GROUP_A, GROUP_SYNC
from .cluster import SimConfig, SimResult, Simulation, _Node
from .faults import Fault


class QuorumStack:
    """A node's totem stack with the sync engine and services on top (what the
    simulator sees as the node's stack). Service traffic is consumed here; the
    simulator only sees its own application messages and the totem events."""

    def __init__(self, nodeid: int, srp_config: SrpConfig, store: Any, qconfig: QuorumConfig,
                 ev_store: MemoryEvTrackingStore, clock: Callable[[], float],
                 record: Callable[[QuorumChanged], None]) -> None:
        self.stack = TotemStack(nodeid, srp_config, store, auto_trans_ack=False)
        self.votequorum = VotequorumService(nodeid, config=qconfig, ev_store=ev_store, clock=clock)
        self.quorum = QuorumService(nodeid, self.votequorum)
        self.engine = SyncEngine(nodeid, [CmapService(nodeid), CpgService(nodeid), self.quorum, self.votequorum],
                                 room=self.stack)
        self.record = record
        self._events: deque[object] = deque()

    @property
    def srp(self):
        return self.stack.srp

    # -- the TotemStack interface the simulator uses ------------------------------------------

    def start(self, now: float) -> None:
        self.stack.start(now)

    def leave(self, now: float) -> None:
        self.stack.leave(now)

    def send(self, groups, body) -> bool:
        """Application traffic waits while a sync runs, as totemd holds its clients'."""
        return not self.engine.in_sync and self.stack.send(groups, body)

    def receive_datagram(self, data: bytes, now: float) -> None:
        self.stack.receive_datagram(data, now)

    def get_timer(self) -> float | None:
        t = self.stack.get_timer()
        d = self.votequorum.next_deadline()
        return t if d is None or (t is not None and t < d) else d

    def handle_timer(self, now: float) -> None:
        self.stack.handle_timer(now)
        self.votequorum.handle_timer(now)

    def datagrams_to_send(self) -> list:
        self._pump()
        return self.stack.datagrams_to_send()

    def next_event(self) -> object | None:
        self._pump()
        return self._events.popleft() if self._events else None

    # -- the service layer ------------------------------------------------------------------------

    def _pump(self) -> None:
        stack, engine = self.stack, self.engine
        while True:
            ev = stack.next_event()
            if ev is None:
                outs = engine.poll()
            else:
                outs = engine.handle(ev)
                if not (isinstance(ev, MessageReceived) and (GROUP_A in ev.groups or GROUP_SYNC in ev.groups)):
                    self._events.append(ev)
            for o in outs:
                if not stack.send(o.groups, o.body):
                    raise AssertionError("the room check let through what send refused")
            for sev in engine.take_events():
                if isinstance(sev, SyncCompleted):
                    stack.trans_ack()
                elif isinstance(sev, QuorumChanged):
                    self.record(sev)
            if ev is None and not outs:
                return


@dataclass
class QuorumRecord:
    """The published quorum decisions of one incarnation: (time, quorate, members, ring)."""

    key: tuple[int, int]
    decisions: list[tuple[float, bool, tuple[int, ...], RingId]] = field(default_factory=list)
    ended: float | None = None


@dataclass(frozen=True)
class SplitBrain:
    at: float
    a: tuple[tuple[int, int], tuple[int, ...]]
    b: tuple[tuple[int, int], tuple[int, ...]]

    def __str__(self) -> str:
        return (f"{self.at:.4f}s: node {self.a[0][0]} (incarnation {self.a[0][1]}) quorate with {list(self.a[1])}"
                f" and node {self.b[0][0]} (incarnation {self.b[0][1]}) quorate with {list(self.b[1])}")


class QuorumSimulation(Simulation):
    """A simulation whose nodes run votequorum with ``qconfig`` (its nodelist should
    name the simulated node ids 1..n)."""

    def __init__(self, config: SimConfig, qconfig: QuorumConfig,
                 schedule: Callable[[random.Random, list[int], float, float, float], list[Fault]] | None = None
                 ) -> None:
        super().__init__(config)
        self.qconfig = qconfig
        self.ev_stores = {n: MemoryEvTrackingStore() for n in self.nodeids}
        self.quorum_records: dict[tuple[int, int], QuorumRecord] = {}
        if schedule is not None:
            c = self.srp_config
            self.schedule = schedule(self.rng, self.nodeids, 0.5, self.heal_at, c.token / 1000)

    def _new_stack(self, n: _Node) -> TotemStack:
        if n.wiped:
            self.ev_stores[n.nodeid] = MemoryEvTrackingStore()
        rec = self.quorum_records[(n.nodeid, n.inc)] = QuorumRecord((n.nodeid, n.inc))

        def record(ev: QuorumChanged) -> None:
            rec.decisions.append((self.now, ev.quorate, ev.members, ev.ring_id))

        stack = QuorumStack(n.nodeid, self.srp_config, n.store, self.qconfig, self.ev_stores[n.nodeid],
                            lambda: self.now, record)
        return stack  # type: ignore[return-value]  # duck-typed TotemStack

    def _stop(self, n: _Node, graceful: bool) -> None:
        rec = self.quorum_records.get((n.nodeid, n.inc))
        if n.up and rec is not None:
            rec.ended = self.now
        super()._stop(n, graceful)


def check_quorum(records: dict[tuple[int, int], QuorumRecord]) -> list[SplitBrain]:
    """Every instant at which two nodes were quorate with disjoint views."""
    changes: list[tuple[float, int, tuple[int, int], bool, tuple[int, ...]]] = []
    for key, rec in records.items():
        for i, (t, quorate, members, _) in enumerate(rec.decisions):
            changes.append((t, 1, key, quorate, members))
        if rec.ended is not None:
            changes.append((rec.ended, 0, key, False, ()))
    # at one instant, deaths (0) come before decisions (1); decisions in record order
    changes.sort(key=lambda c: (c[0], c[1]))
    current: dict[tuple[int, int], tuple[int, ...]] = {}
    found: list[SplitBrain] = []
    for t, _, key, quorate, members in changes:
        if quorate:
            current[key] = members
            mine = set(members)
            for other, view in current.items():
                if other != key and other[0] != key[0] and mine.isdisjoint(view):
                    found.append(SplitBrain(t, (key, members), (other, view)))
        else:
            current.pop(key, None)
    return found


def partition_schedule(rng: random.Random, nodeids: list[int], start: float, heal: float,
                       token_s: float) -> list[Fault]:
    """Faults that keep re-cutting the cluster: 2-6 partitions into 2 or 3 random groups
    (sometimes merged again before the next), a few crashes or graceful leaves with
    restarts, and light loss; everything heals at ``heal``."""
    faults: list[Fault] = []
    if rng.random() < 0.5:
        faults.append(Fault(start, "loss", value=round(rng.uniform(0.0, 0.05), 4)))
    span = heal - start
    for _ in range(rng.randint(2, 6)):
        at = start + rng.random() * span * 0.9
        shuffled = nodeids[:]
        rng.shuffle(shuffled)
        k = 3 if len(nodeids) >= 3 and rng.random() < 0.3 else 2
        cuts = sorted(rng.sample(range(1, len(shuffled)), k - 1))
        groups = tuple(tuple(sorted(shuffled[a:b])) for a, b in zip([0] + cuts, cuts + [len(shuffled)]))
        faults.append(Fault(at, "partition", groups=groups))
        if rng.random() < 0.3:
            faults.append(Fault(min(heal, at + rng.uniform(0.5, 3.0) * token_s * 3), "merge"))
    for _ in range(rng.randint(0, 2)):
        node = rng.choice(nodeids)
        at = start + rng.random() * span * 0.8
        faults.append(Fault(at, rng.choice(("crash", "leave", "wipe")), nodes=(node,)))
        if rng.random() < 0.7:
            faults.append(Fault(min(heal, at + rng.uniform(0.5, 3.0) * token_s * 2), "restart", nodes=(node,)))
    faults.append(Fault(heal, "heal"))
    faults.sort(key=lambda f: f.at)
    return faults


@dataclass
class QuorumOutcome:
    seed: int
    nodes: int
    split_brains: list[SplitBrain]
    result: SimResult
    records: dict[tuple[int, int], QuorumRecord]
    final: dict[int, tuple[bool, tuple[int, ...]]]
    """The last decision of every node up at the end: (quorate, members)."""


def run_quorum_seed(seed: int, nodes: int, qconfig: QuorumConfig, *, rate: float = 4.0,
                    fault_window: float = 4.0) -> QuorumOutcome:
    """One seeded run with partition schedules and light application traffic."""
    sim = QuorumSimulation(SimConfig(nodes=nodes, seed=seed, rate=rate, fault_window=fault_window),
                           qconfig, schedule=partition_schedule)
    result = sim.run()
    final = {}
    for n in result.up_at_end:
        rec = sim.quorum_records[(n, sim.nodes[n].inc)]
        if rec.decisions:
            _, quorate, members, _ = rec.decisions[-1]
            final[n] = (quorate, members)
    return QuorumOutcome(seed, nodes, check_quorum(sim.quorum_records), result, sim.quorum_records, final)
