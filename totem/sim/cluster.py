"""N protocol stacks on one virtual clock and one seeded virtual network.

A :class:`Simulation` runs whole nodes (:class:`~totem.stack.TotemStack`) with an
application workload, applies a fault schedule, records what every node delivered
and which configurations it installed, and hands the record to the invariant
checker. The same seed gives the same run, event for event.
"""

from __future__ import annotations

import heapq
import itertools
import random
import struct
import zlib
from collections import deque
from dataclasses import dataclass, field

from ..srp import (
    Broadcast,
    ConfigurationChanged,
    LogMessage,
    RingSeqStore,
    SrpConfig,
    State,
    StateChanged,
)
from ..stack import MessageReceived, TotemStack
from ..statefile import fresh_ring_seq
from ..wire import RingId
from .faults import FAULT_KINDS, Fault, make_schedule
from .network import LinkModel, VirtualNetwork

GROUP = b"sim"
_APP_HEADER = struct.Struct("<IIIII")  # nodeid, incarnation, counter, length, crc32 of the rest
INBOX_MAX = 4096
"""Datagrams a paused node's socket buffer holds before it drops the rest."""


@dataclass
class SimConfig:
    nodes: int = 3
    seed: int = 0
    faults: tuple[str, ...] = FAULT_KINDS
    fault_window: float = 3.0
    """Seconds (virtual) during which faults happen; the network heals at its end."""
    timer_scale: float = 0.1
    """Multiplies every totem timer: 0.1 turns corosync's 3 s token into 300 ms."""
    rate: float = 40.0
    """Messages per second each node submits while the fault window is open."""
    large_every: int = 40
    """About one message in this many is large (fragmented over several frames)."""
    large_max: int = 64 * 1024
    settle: float | None = None
    """Seconds after healing that liveness may take; derived from the timers if None."""
    link: LinkModel | None = None
    """The healthy network; by default LAN-like for the ring size (see :meth:`healthy_link`)."""
    trace_len: int = 400

    def healthy_link(self) -> LinkModel:
        """The link model outside faults.

        The timers are scaled down, so the links must be too: a large ring's recovery
        (four token rotations) has to fit well inside ``merge`` as it does on a LAN with
        corosync's real timers, or merge detects keep interrupting recoveries and the
        simulation measures its own time scale rather than the protocol.
        """
        if self.link is not None:
            return self.link
        k = min(1.0, 8 / self.nodes)
        base = LinkModel()
        return LinkModel(delay=base.delay * k, jitter=base.jitter * k)


Incarnation = tuple[int, int]


@dataclass
class NodeRecord:
    """What one incarnation of a node did: its configurations and deliveries, in order."""

    key: Incarnation
    started: float = 0.0
    wiped: bool = False
    """This incarnation started without the ring seq its predecessor had stored."""
    history: list[tuple] = field(default_factory=list)
    """("conf", kind, ring id, members, time) and ("msg", id, cut by a configuration change)."""
    sent: list[tuple[int, int, int]] = field(default_factory=list)
    alive: bool = True


@dataclass
class SimResult:
    config: SimConfig
    schedule: list[Fault]
    records: dict[Incarnation, NodeRecord]
    sent: dict[tuple[int, int, int], tuple[int, int]]
    final: dict[int, tuple[State, RingId, tuple[int, ...]]]
    """For every node up at the end: state, ring id, members."""
    up_at_end: set[int]
    heal_at: float
    end_at: float
    trace: list[str]
    stats: dict[str, int]
    corrupt: list[str]
    virtual_seconds: float


class _Node:
    __slots__ = ("nodeid", "inc", "stack", "store", "record", "paused_until", "inbox", "up", "counter",
                 "wiped")

    def __init__(self, nodeid: int) -> None:
        self.nodeid = nodeid
        self.inc = 0
        self.store = RingSeqStore()
        self.stack: TotemStack | None = None
        self.record: NodeRecord | None = None
        self.paused_until: float | None = None
        self.inbox: deque[tuple[int, bytes]] = deque()
        self.up = False
        self.counter = 0
        self.wiped = False


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.net = VirtualNetwork(random.Random(self.rng.getrandbits(64)), config.healthy_link())
        self.app_rng = random.Random(self.rng.getrandbits(64))
        self.srp_config = SrpConfig.derive(config.nodes).scaled(config.timer_scale)
        self.nodeids = list(range(1, config.nodes + 1))
        self.nodes = {n: _Node(n) for n in self.nodeids}
        self.now = 0.0
        self._queue: list = []
        self._seq = itertools.count()
        self.records: dict[Incarnation, NodeRecord] = {}
        self.sent: dict[tuple[int, int, int], tuple[int, int]] = {}
        self.trace: deque[str] = deque(maxlen=config.trace_len)
        self.corrupt: list[str] = []
        c = self.srp_config
        self.heal_at = 0.5 + config.fault_window
        self.settle = config.settle if config.settle is not None else (
            (2 * c.token + 2 * c.consensus + c.merge + c.hold + 20 * c.join) / 1000 + 0.5)
        self.schedule = make_schedule(self.rng, self.nodeids, config.faults, 0.5, self.heal_at,
                                      c.token / 1000)

    # -- scheduling ------------------------------------------------------------------

    def _push(self, at: float, kind: str, *data) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), kind, data))

    def _log(self, node: int | None, text: str) -> None:
        who = f"n{node}" if node is not None else "--"
        self.trace.append(f"{self.now:9.4f} {who} {text}")

    # -- node lifecycle ----------------------------------------------------------------

    def _start(self, n: _Node) -> None:
        wiped, n.wiped = n.wiped, False
        n.inc += 1
        n.stack = self._new_stack(n)
        n.record = NodeRecord((n.nodeid, n.inc), started=self.now, wiped=wiped)
        self.records[n.record.key] = n.record
        n.up = True
        n.paused_until = None
        n.inbox.clear()
        self._log(n.nodeid, f"start incarnation {n.inc}{' (ring seq wiped)' if wiped else ''}")
        n.stack.start(self.now)
        self._after(n)

    def _new_stack(self, n: _Node) -> TotemStack:
        """The protocol stack of a new incarnation (a subclass may run more on top)."""
        return TotemStack(n.nodeid, self.srp_config, n.store)

    def _stop(self, n: _Node, graceful: bool) -> None:
        if not n.up:
            return
        assert n.stack is not None and n.record is not None
        if graceful and n.paused_until is None:
            n.stack.leave(self.now)
            self._after(n)
        n.up = False
        n.record.alive = False
        n.stack = None
        n.inbox.clear()
        n.paused_until = None
        self._log(n.nodeid, "leave" if graceful else "crash")

    # -- moving bytes and events -------------------------------------------------------

    def _after(self, n: _Node) -> None:
        """Send what the node produced and record its events."""
        stack = n.stack
        if stack is None:
            return
        for d in stack.datagrams_to_send():
            dests = self.nodeids if isinstance(d, Broadcast) else (d.nodeid,)
            data = self._wire_out(n, d.data)
            for dst in dests:
                for delay in self.net.arrivals(n.nodeid, dst):
                    self._push(self.now + delay, "dgram", dst, n.nodeid, data)
        rec = n.record
        assert rec is not None
        while (ev := stack.next_event()) is not None:
            if self._node_event(n, ev):
                continue
            if isinstance(ev, MessageReceived):
                rec.history.append(("msg", self._check_payload(n, ev), ev.first_ring != ev.ring_id))
            elif isinstance(ev, ConfigurationChanged):
                rec.history.append(("conf", ev.kind, ev.ring_id, ev.members, self.now))
                self._log(n.nodeid, f"{ev.kind.name.lower()} {ev.ring_id} members={list(ev.members)}"
                                    f" left={list(ev.left)} joined={list(ev.joined)}")
            elif isinstance(ev, StateChanged):
                self._log(n.nodeid, f"{ev.old.name} -> {ev.new.name}: {ev.reason}")
            elif isinstance(ev, LogMessage) and ev.level != "debug":
                self._log(n.nodeid, ev.text)

    def _wire_out(self, n: _Node, data: bytes) -> bytes:
        """What goes on the wire for a datagram of node ``n`` (a hook: crypto seals it)."""
        return data

    def _node_event(self, n: _Node, ev: object) -> bool:
        """A hook seeing each event of node ``n`` first; True keeps it out of the record."""
        return False

    def _check_payload(self, n: _Node, ev: MessageReceived) -> tuple[int, int, int]:
        body = ev.body
        if len(body) < _APP_HEADER.size or ev.groups != (GROUP,):
            self.corrupt.append(f"n{n.nodeid} got a message it cannot read from {ev.sender}")
            return (0, 0, 0)
        node, inc, counter, length, crc = _APP_HEADER.unpack_from(body)
        rest = body[_APP_HEADER.size:]
        if len(rest) != length or zlib.crc32(rest) != crc:
            self.corrupt.append(f"n{n.nodeid}: payload of {(node, inc, counter)} corrupted")
        if node != ev.sender:
            self.corrupt.append(f"n{n.nodeid}: message {(node, inc, counter)} delivered as from {ev.sender}")
        return (node, inc, counter)

    def _app_send(self, n: _Node) -> None:
        if not n.up or n.paused_until is not None:
            return
        assert n.stack is not None and n.record is not None
        rng = self.app_rng
        if rng.randrange(self.cfg.large_every) == 0:
            size = rng.randint(1400, self.cfg.large_max)
        else:
            size = rng.randint(0, 300)
        rest = rng.randbytes(size)
        msg_id = (n.nodeid, n.inc, n.counter)
        body = _APP_HEADER.pack(*msg_id, size, zlib.crc32(rest)) + rest
        if n.stack.send([GROUP], body):
            n.counter += 1
            self.sent[msg_id] = (size, zlib.crc32(rest))
            n.record.sent.append(msg_id)
            self._after(n)

    # -- faults ------------------------------------------------------------------------

    def _apply(self, f: Fault) -> None:
        self._log(None, f"fault: {f}")
        model = self.net.model
        if f.kind == "loss":
            model.loss = f.value
        elif f.kind == "dup":
            model.duplicate = f.value
        elif f.kind == "reorder":
            model.reorder = f.value
        elif f.kind == "delay":
            model.jitter = f.value
        elif f.kind == "oneway":
            self.net.cut.add((f.nodes[0], f.nodes[1]))
        elif f.kind == "partition":
            self.net.partition = [frozenset(g) for g in f.groups]
        elif f.kind == "merge":
            self.net.partition = None
        elif f.kind in ("crash", "wipe"):
            n = self.nodes[f.nodes[0]]
            self._stop(n, graceful=False)
            if f.kind == "wipe":
                # what totemd does without its ringid file: start from the clock
                n.store = RingSeqStore(fresh_ring_seq(self.now))
                n.wiped = True
        elif f.kind == "leave":
            self._stop(self.nodes[f.nodes[0]], graceful=True)
        elif f.kind == "restart":
            n = self.nodes[f.nodes[0]]
            if not n.up:
                self._start(n)
        elif f.kind == "pause":
            n = self.nodes[f.nodes[0]]
            if n.up and n.paused_until is None:
                n.paused_until = self.now + f.value
                self._push(n.paused_until, "resume", n.nodeid)
        elif f.kind == "heal":
            self.net.model = self.cfg.healthy_link()
            self.net.partition = None
            self.net.cut.clear()
            for n in self.nodes.values():
                if not n.up:
                    self._start(n)
                elif n.paused_until is not None:
                    self._resume(n)

    def _resume(self, n: _Node) -> None:
        if n.paused_until is None or not n.up:
            return
        n.paused_until = None
        self._log(n.nodeid, "resume")
        assert n.stack is not None
        n.stack.handle_timer(self.now)
        self._after(n)
        while n.inbox and n.up and n.paused_until is None:
            src, data = n.inbox.popleft()
            self._deliver(n, src, data)

    def _deliver(self, n: _Node, src: int, data: bytes) -> None:
        assert n.stack is not None
        n.stack.receive_datagram(data, self.now)
        self._after(n)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> SimResult:
        for f in self.schedule:
            self._push(f.at, "fault", f)
        for n in self.nodes.values():
            self._push(self.rng.random() * 0.05, "boot", n.nodeid)
            t = 0.3 + self.app_rng.expovariate(self.cfg.rate)
            self._push(t, "app", n.nodeid)
        end = self.heal_at + self.settle
        queue = self._queue
        nodes = self.nodes
        while True:
            # the earliest node timer competes with the earliest queued item
            tnode, tmin = None, None
            for n in nodes.values():
                if n.up and n.paused_until is None and n.stack is not None:
                    t = n.stack.get_timer()
                    if t is not None and (tmin is None or t < tmin):
                        tnode, tmin = n, t
            if queue and (tmin is None or queue[0][0] <= tmin):
                at, _, kind, data = heapq.heappop(queue)
                if at > end:
                    break
                self.now = max(self.now, at)
                if kind == "dgram":
                    dst, src, payload = data
                    n = nodes[dst]
                    if not n.up:
                        continue
                    if n.paused_until is not None:
                        if len(n.inbox) < INBOX_MAX:
                            n.inbox.append((src, payload))
                        continue
                    self._deliver(n, src, payload)
                elif kind == "app":
                    n = nodes[data[0]]
                    self._app_send(n)
                    nxt = self.now + self.app_rng.expovariate(self.cfg.rate)
                    if nxt < self.heal_at:
                        self._push(nxt, "app", n.nodeid)
                elif kind == "fault":
                    self._apply(data[0])
                elif kind == "resume":
                    self._resume(nodes[data[0]])
                elif kind == "boot":
                    n = nodes[data[0]]
                    if not n.up and n.inc == 0:
                        self._start(n)
            else:
                if tmin is None or tmin > end:
                    break
                self.now = max(self.now, tmin)
                assert tnode is not None and tnode.stack is not None
                tnode.stack.handle_timer(self.now)
                self._after(tnode)
        self.now = end
        final = {}
        for n in nodes.values():
            if n.up and n.stack is not None:
                srp = n.stack.srp
                final[n.nodeid] = (srp.state, srp.ring_id, srp.members)
        stats: dict[str, int] = dict(self.net.stats)
        for n in nodes.values():
            if n.stack is not None:
                for k, v in n.stack.srp.stats.items():
                    stats[k] = stats.get(k, 0) + v
        return SimResult(self.cfg, self.schedule, self.records, self.sent, final,
                         {n for n in final}, self.heal_at, end, list(self.trace), stats,
                         self.corrupt, end)
