"""A tiny deterministic test bed for hand-written SRP scenarios.

N nodes (bare :class:`SrpCore` or whole :class:`TotemStack`) on one virtual clock
and a FIFO network with a fixed one-way delay. A ``Broadcast`` reaches every node
of the nodelist (the sender included), a ``SendTo`` its one destination. Faults:
killed nodes, partitions, cut one-way links and a drop predicate on datagrams.
Everything sent, received and reported is recorded with its time.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Callable

from totem.srp import Broadcast, RingSeqStore, SrpConfig, SrpCore
from totem.stack import TotemStack
from totem.wire import parse_untrusted


@dataclass(frozen=True)
class Sent:
    """One datagram leaving ``src``: ``dst`` None for a broadcast."""

    time: float
    src: int
    dst: int | None
    data: bytes

    @property
    def msg(self):
        return parse_untrusted(self.data)


class Ring:
    def __init__(self, nodeids, *, config: SrpConfig | None = None, delay: float = 0.0001,
                 stack: bool = False, stores: dict[int, RingSeqStore] | None = None) -> None:
        self.ids = list(nodeids)
        self.config = config or SrpConfig.derive(len(self.ids))
        self.delay = delay
        self.use_stack = stack
        self.stores = {n: RingSeqStore() for n in self.ids} | (stores or {})
        self.nodes: dict[int, SrpCore | TotemStack] = {}
        self.now = 0.0
        self._q: list = []
        self._n = itertools.count()
        self.sent: list[Sent] = []
        self.received: list[tuple[float, int, int, bytes]] = []  # time, dst, src, data
        self.dropped: list[tuple[float, int, int, bytes]] = []
        self.events: dict[int, list[tuple[float, object]]] = {n: [] for n in self.ids}
        self.dead: set[int] = set()
        self.partition: list[set[int]] | None = None
        self.cut: set[tuple[int, int]] = set()
        self.drop: Callable[[int, int, bytes], bool] | None = None
        """drop(src, dst, data) -> True to lose that copy (evaluated when it is sent)."""

    # -- lifecycle
    def start(self, *ids: int) -> None:
        for n in ids or self.ids:
            cls = TotemStack if self.use_stack else SrpCore
            self.nodes[n] = node = cls(n, self.config, self.stores[n])
            self.dead.discard(n)
            node.start(self.now)
            self._flush(n)

    def kill(self, n: int) -> None:
        self.dead.add(n)

    def leave(self, n: int) -> None:
        self.nodes[n].leave(self.now)
        self._flush(n)
        self.dead.add(n)

    def core(self, n: int) -> SrpCore:
        node = self.nodes[n]
        return node.srp if isinstance(node, TotemStack) else node

    def mcast(self, n: int, payload: bytes) -> None:
        """Queue one frame at node n (bare cores) as totempg would: signal, then hand over."""
        core = self.core(n)
        core.signal_new_message()
        assert core.mcast(payload)
        self._flush(n)

    def send(self, n: int, body: bytes, groups=(b"g",)) -> None:
        assert self.nodes[n].send(list(groups), body)
        self._flush(n)

    # -- the network
    def _link_ok(self, src: int, dst: int) -> bool:
        if src == dst:
            return True
        if (src, dst) in self.cut:
            return False
        return self.partition is None or any(src in g and dst in g for g in self.partition)

    def _flush(self, n: int) -> None:
        node = self.nodes[n]
        for d in node.datagrams_to_send():
            bcast = isinstance(d, Broadcast)
            self.sent.append(Sent(self.now, n, None if bcast else d.nodeid, d.data))
            for dst in (self.ids if bcast else (d.nodeid,)):
                if not self._link_ok(n, dst) or (self.drop is not None and self.drop(n, dst, d.data)):
                    self.dropped.append((self.now, n, dst, d.data))
                    continue
                heapq.heappush(self._q, (self.now + self.delay, next(self._n), dst, n, d.data))
        while (ev := node.next_event()) is not None:
            self.events[n].append((self.now, ev))

    def _alive(self):
        return [n for n in self.nodes if n not in self.dead]

    def step(self, limit: float) -> bool:
        """Run the earliest datagram or timer if it is due by ``limit``; False if none is."""
        t_timer, who = min(((self.nodes[n].get_timer(), n) for n in self._alive()
                            if self.nodes[n].get_timer() is not None), default=(None, None))
        t_dgram = self._q[0][0] if self._q else None
        if t_dgram is not None and (t_timer is None or t_dgram <= t_timer):
            if t_dgram > limit:
                return False
            at, _, dst, src, data = heapq.heappop(self._q)
            self.now = max(self.now, at)
            if dst in self.nodes and dst not in self.dead:
                self.received.append((self.now, dst, src, data))
                self.nodes[dst].receive_datagram(data, self.now)
                self._flush(dst)
            return True
        if t_timer is None or t_timer > limit:
            return False
        self.now = max(self.now, t_timer)
        self.nodes[who].handle_timer(self.now)
        self._flush(who)
        return True

    def run_until(self, until: float | Callable[[], bool], timeout: float = 60.0) -> float:
        """Run to virtual time ``until``, or until the predicate ``until()`` holds (checked
        after every step; AssertionError if it does not within ``timeout`` seconds).
        Returns the time reached."""
        if callable(until):
            end = self.now + timeout
            while not until():
                if not self.step(end):
                    raise AssertionError(f"condition not reached by t={end:.4f}")
            return self.now
        while self.step(until):
            pass
        self.now = max(self.now, until)
        return self.now

    # -- views of the record
    def evs(self, n: int, kind=object) -> list:
        return [e for _, e in self.events[n] if isinstance(e, kind)]

    def timed(self, n: int, kind=object) -> list[tuple[float, object]]:
        return [(t, e) for t, e in self.events[n] if isinstance(e, kind)]

    def sent_msgs(self, src: int | None = None, kind=object, dst: int | None | str = "any"):
        out = []
        for s in self.sent:
            if (src is None or s.src == src) and (dst == "any" or s.dst == dst):
                m = s.msg
                if isinstance(m, kind):
                    out.append((s, m))
        return out
