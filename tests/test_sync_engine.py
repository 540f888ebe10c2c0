"""SyncEngine on an ideal total-order bus: the rules of sync.c one by one."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totem.services import cpg as cpg_codec
from totem.services import default_services
from totem.services import votequorum as vq_codec
from totem.services.cmap import build_sync_message
from totem.services.base import Service, ServiceLog
from totem.srp import ConfigurationChanged, ConfigurationKind
from totem.sync import (
    Outgoing,
    ServiceSynced,
    SyncAborted,
    SyncCompleted,
    SyncEngine,
    SyncStarted,
    SyncState,
)
from totem.wire import Barrier, RingId, ServiceBuild, parse_sync_untrusted
from totem.wire.pg import GROUP_A, GROUP_SYNC

T, R = ConfigurationKind.TRANSITIONAL, ConfigurationKind.REGULAR



class CountRoom:
    """A transport queue where every message costs one slot; ``fits`` is given the
    number of messages that would be queued."""

    def __init__(self, fits) -> None:
        self.fits = fits

    def cost(self, size: int) -> int:
        return 1

def conf(kind: ConfigurationKind, ring: RingId, members) -> ConfigurationChanged:
    return ConfigurationChanged(kind, ring, tuple(members), (), ())


class Recorder(Service):
    """A sync service that records its hooks and can be told to be not done yet."""

    exec_count = 2

    def __init__(self, nodeid: int, service_id: int, *, not_done: int = 0, payload: bool = True) -> None:
        super().__init__(nodeid)
        self.service_id = service_id
        self.name = f"recorder {service_id}"
        self.calls: list[tuple] = []
        self.not_done = not_done
        self.payload = payload
        self.delivered: list[tuple[int, int, bytes]] = []

    def sync_init(self, trans, members, ring_id) -> None:
        self.calls.append(("init", trans, members, ring_id))

    def sync_process(self):
        self.calls.append(("process",))
        msgs = [(self.service_id << 16 | 1).to_bytes(4, "little") + bytes(4) + (20).to_bytes(4, "little")
                + bytes(4) + self.nodeid.to_bytes(4, "little")] if self.payload else []
        if self.not_done > 0:
            self.not_done -= 1
            return msgs, False
        return msgs, True

    def sync_activate(self) -> None:
        self.calls.append(("activate",))

    def sync_abort(self) -> None:
        self.calls.append(("abort",))

    def deliver(self, sender, fn, body) -> None:
        self.delivered.append((sender, fn, body))


class Bus:
    """Perfect agreed order: everything sent is delivered to every member in send order."""

    def __init__(self, engines: dict[int, SyncEngine]) -> None:
        self.engines = engines
        self.queue: deque[tuple[int, Outgoing]] = deque()
        self.log: list[tuple[int, Outgoing]] = []
        self.members: tuple[int, ...] = tuple(engines)
        self.drop = lambda sender, out: False

    def send(self, sender: int, outs: list[Outgoing]) -> None:
        for o in outs:
            if not self.drop(sender, o):
                self.queue.append((sender, o))

    def configure(self, ring: RingId, members, trans=None) -> None:
        """A transitional then a regular configuration at every member; pending messages
        of the old ring are lost (as if never ordered)."""
        self.queue.clear()
        old = self.members
        self.members = tuple(members)
        for n in self.members:
            t = trans if trans is not None else [m for m in old if m in self.members]
            self.send(n, self.engines[n].configuration_changed(conf(T, ring, t)))
            self.send(n, self.engines[n].configuration_changed(conf(R, ring, self.members)))

    def run(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            sender, o = self.queue.popleft()
            self.log.append((sender, o))
            for n in self.members:
                self.send(n, self.engines[n].deliver(sender, o.groups, o.body))
        raise AssertionError("bus did not settle")

    def poll(self) -> None:
        for n in self.members:
            self.send(n, self.engines[n].poll())


def events(engine: SyncEngine, kind) -> list:
    return [e for e in engine.take_events() if isinstance(e, kind)]


def cluster(n: int, factory=None):
    factory = factory or (lambda node: default_services(node, expected_votes=n))
    engines = {i: SyncEngine(i, factory(i)) for i in range(1, n + 1)}
    return engines, Bus(engines)


# -- the normal round ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_node_completes(n: int) -> None:
    engines, bus = cluster(n)
    ring = RingId(1, 8)
    bus.configure(ring, range(1, n + 1), trans=[])
    bus.run()
    for e in engines.values():
        assert not e.in_sync
        evs = e.take_events()
        assert [ev.service_id for ev in evs if isinstance(ev, ServiceSynced)] == [0, 2, 3, 5]
        assert [ev.ring_id for ev in evs if isinstance(ev, SyncCompleted)] == [ring]
    # per node: one SERVICE_BUILD, then per step data before exactly one barrier
    for node in engines:
        sent = [o for s, o in bus.log if s == node]
        sync = [parse_sync_untrusted(o.body) for o in sent if o.groups == (GROUP_SYNC,)]
        assert isinstance(sync[0], ServiceBuild) and sync[0].services == (0, 2, 3, 5)
        assert all(isinstance(m, Barrier) and m.ring_id == ring for m in sync[1:])
        assert len(sync) == 5
        assert sent[0].groups == (GROUP_SYNC,)


def test_members_and_trans_given_to_sync_init() -> None:
    engines = {i: SyncEngine(i, [Recorder(i, 7)]) for i in (1, 2, 3)}
    bus = Bus(engines)
    bus.members = (1, 2)
    bus.configure(RingId(1, 4), (1, 2, 3), trans=[4, 2, 1])
    rec = engines[1].services[7]
    assert rec.calls[0] == ("init", (2, 1), (1, 2, 3), RingId(1, 4))
    started = events(engines[1], SyncStarted)
    assert started == [SyncStarted(RingId(1, 4), (1, 2, 3), (2, 1))]


def test_no_services_anywhere_completes_after_the_builds() -> None:
    engines = {i: SyncEngine(i) for i in (1, 2)}
    bus = Bus(engines)
    bus.configure(RingId(1, 4), (1, 2))
    bus.run()
    assert [m.services for s, o in bus.log for m in [parse_sync_untrusted(o.body)]] == [(), ()]
    assert all(not e.in_sync for e in engines.values())
    assert engines[1].state is SyncState.SERVICELIST_BUILD


def test_union_of_service_lists_with_unknown_ids() -> None:
    engines = {1: SyncEngine(1, [Recorder(1, 0), Recorder(1, 9)]), 2: SyncEngine(2, [Recorder(2, 4)])}
    bus = Bus(engines)
    bus.configure(RingId(2, 4), (1, 2))
    bus.run()
    assert engines[1].service_list == [(0, "recorder 0"), (4, "Unknown External Service (id = 4)"), (9, "recorder 9")]
    assert engines[2].service_list == [(0, "Unknown External Service (id = 0)"), (4, "recorder 4"),
                                       (9, "Unknown External Service (id = 9)")]
    assert all(not e.in_sync for e in engines.values())
    # 3 barriers each; unknown steps send no data
    for node in (1, 2):
        sent = [o for s, o in bus.log if s == node]
        assert sum(o.groups == (GROUP_SYNC,) for o in sent) == 4
        assert sum(o.groups == (GROUP_A,) for o in sent) == (2 if node == 1 else 1)
    logs = [e.text for e in engines[2].take_events() if isinstance(e, ServiceLog)]
    assert "Committing synchronization for Unknown External Service (id = 9)" in logs


def test_data_of_a_step_is_delivered_before_its_activation_everywhere() -> None:
    engines = {i: SyncEngine(i, [Recorder(i, 1), Recorder(i, 2)]) for i in (1, 2, 3)}
    bus = Bus(engines)
    bus.configure(RingId(1, 4), (1, 2, 3))
    bus.run()
    for e in engines.values():
        for sid in (1, 2):
            rec = e.services[sid]
            assert sorted(s for s, _, _ in rec.delivered) == [1, 2, 3]
            assert rec.calls[-1] == ("activate",)


# -- stalls and mismatches ----------------------------------------------------------------------


def test_ring_id_mismatch_is_ignored() -> None:
    e = SyncEngine(1, [Recorder(1, 0)])
    out = e.configuration_changed(conf(R, RingId(1, 8), (1, 2)))
    assert [o.groups for o in out] == [(GROUP_SYNC,)]
    for bad in (RingId(1, 4), RingId(2, 8)):
        assert e.deliver(2, (GROUP_SYNC,), ServiceBuild(bad, (0,)).pack()) == []
        assert e.deliver(2, (GROUP_SYNC,), Barrier(bad).pack()) == []
    assert e.stats["old_ring_discarded"] == 4
    assert e.deliver(1, (GROUP_SYNC,), out[0].body) == []  # own build: node 2's still missing
    assert e.state is SyncState.SERVICELIST_BUILD
    out = e.deliver(2, (GROUP_SYNC,), ServiceBuild(RingId(1, 8), (0,)).pack())
    assert [o.groups for o in out] == [(GROUP_A,), (GROUP_SYNC,)]
    texts = [x.text for x in e.take_events() if isinstance(x, ServiceLog)]
    assert texts.count("service build for old ring - discarding") == 2
    assert texts.count("barrier for old ring - discarding") == 2


def test_missing_service_build_stalls_forever() -> None:
    engines, bus = cluster(3)
    bus.drop = lambda sender, o: sender == 3 and o.groups == (GROUP_SYNC,)
    bus.configure(RingId(1, 8), (1, 2, 3), trans=[])
    bus.run()
    for _ in range(5):
        bus.poll()
        bus.run()
    for e in (engines[1], engines[2]):
        assert e.in_sync and e.state is SyncState.SERVICELIST_BUILD
        sync_lines = [x.text for x in e.take_events() if isinstance(x, ServiceLog) and x.subsys == "SYNC"]
        assert sync_lines == ["call init for locally known services"]  # spec §2.5: the last SYNC line
    # only SERVICE_BUILDs went out: nobody entered a step
    assert {parse_sync_untrusted(o.body).__class__ for s, o in bus.log if o.groups == (GROUP_SYNC,)} == {ServiceBuild}


def test_missing_barrier_stalls_until_a_new_configuration() -> None:
    engines, bus = cluster(3)
    dropping = True
    bus.drop = lambda sender, o: dropping and sender == 3 and o.body[:4] == bytes(4) and o.groups == (GROUP_SYNC,)
    bus.configure(RingId(1, 8), (1, 2, 3), trans=[])
    bus.run()
    for e in engines.values():
        assert e.in_sync and e.current_step == (0, "corosync configuration map access")
    dropping = False
    # node 3 leaves: the sync is aborted and restarted without it
    bus.configure(RingId(1, 12), (1, 2))
    bus.run()
    for n in (1, 2):
        evs = engines[n].take_events()
        assert [e.ring_id for e in evs if isinstance(e, SyncAborted)] == [RingId(1, 8)]
        assert [e.ring_id for e in evs if isinstance(e, SyncCompleted)] == [RingId(1, 12)]


def test_barrier_before_all_builds_is_wiped() -> None:
    """A barrier delivered while SERVICE_BUILDs are missing marks its sender, but the
    marks are reset when the last build arrives: the step then waits for it again."""
    e = SyncEngine(1, [Recorder(1, 0)])
    ring = RingId(1, 8)
    e.configuration_changed(conf(R, ring, (1, 2, 3)))
    e.deliver(1, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack())
    e.deliver(3, (GROUP_SYNC,), Barrier(ring).pack())  # early: counts as node 3's mark
    out = e.deliver(2, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack())  # all marked -> enter step
    assert [o.groups for o in out] == [(GROUP_A,), (GROUP_SYNC,)]
    e.deliver(1, (GROUP_SYNC,), Barrier(ring).pack())
    e.deliver(2, (GROUP_SYNC,), Barrier(ring).pack())
    assert e.in_sync  # node 3's barrier was wiped
    e.deliver(3, (GROUP_SYNC,), Barrier(ring).pack())
    assert not e.in_sync


def test_a_second_service_build_restarts_the_current_step() -> None:
    e = SyncEngine(1, [Recorder(1, 0), Recorder(1, 1)])
    ring = RingId(1, 8)
    e.configuration_changed(conf(R, ring, (1, 2)))
    e.deliver(1, (GROUP_SYNC,), ServiceBuild(ring, (0, 1)).pack())
    first = e.deliver(2, (GROUP_SYNC,), ServiceBuild(ring, (0, 1)).pack())
    assert len(first) == 2
    e.deliver(1, (GROUP_SYNC,), Barrier(ring).pack())
    # node 2's second build counts as its mark and completes "enter sync process" again
    again = e.deliver(2, (GROUP_SYNC,), ServiceBuild(ring, (0, 1)).pack())
    assert [o.groups for o in again] == [(GROUP_A,), (GROUP_SYNC,)]
    rec = e.services[0]
    assert rec.calls.count(("process",)) == 2 and ("activate",) not in rec.calls


def test_sync_messages_after_completion_are_ignored() -> None:
    engines, bus = cluster(2)
    ring = RingId(1, 8)
    bus.configure(ring, (1, 2))
    bus.run()
    e = engines[1]
    assert not e.in_sync
    assert e.deliver(2, (GROUP_SYNC,), Barrier(ring).pack()) == []
    assert e.deliver(2, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack()) == []
    assert e.stats["after_completion_discarded"] == 2 and not e.in_sync


# -- abort, not-done, room -------------------------------------------------------------------------


def test_not_done_step_is_retried_by_poll_and_delays_the_barrier() -> None:
    engines = {1: SyncEngine(1, [Recorder(1, 0, not_done=2)]), 2: SyncEngine(2, [Recorder(2, 0)])}
    bus = Bus(engines)
    bus.configure(RingId(1, 8), (1, 2))
    bus.run()
    assert engines[1].wants_poll and engines[1].in_sync and engines[2].in_sync
    bus.poll()
    bus.run()
    assert engines[1].in_sync
    bus.poll()
    bus.run()
    assert not engines[1].in_sync and not engines[2].in_sync
    sent1 = [o for s, o in bus.log if s == 1]
    assert sum(o.groups == (GROUP_A,) for o in sent1) == 3  # one data message per call
    assert sent1[-1].groups == (GROUP_SYNC,)


def test_abort_calls_the_hook_only_while_the_step_is_processing() -> None:
    """As sync.c: the current service's abort runs only in the PROCESS state (its
    sync_process has not reported done), at every configuration change until a new start."""
    e = SyncEngine(1, [Recorder(1, 0, not_done=100)])
    ring = RingId(1, 8)
    e.configuration_changed(conf(R, ring, (1,)))
    e.deliver(1, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack())
    assert e.state is SyncState.PROCESS and e.wants_poll
    e.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert not e.wants_poll and e.ring_id is None
    e.configuration_changed(conf(R, RingId(1, 12), (1, 2)))
    rec = e.services[0]
    assert [c[0] for c in rec.calls] == ["init", "process", "abort", "abort", "init"]
    assert [x.ring_id for x in e.take_events() if isinstance(x, SyncAborted)] == [ring]

    done = SyncEngine(1, [Recorder(1, 0)])
    done.configuration_changed(conf(R, ring, (1, 2)))
    done.deliver(1, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack())
    done.deliver(2, (GROUP_SYNC,), ServiceBuild(ring, (0,)).pack())
    assert done.state is SyncState.BARRIER
    done.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert ("abort",) not in done.services[0].calls


def test_a_held_barrier_keeps_the_step_processing() -> None:
    """When the transport has no room for the step's barrier, the step is not done yet
    (as in corosync, where a failed send makes sync_process report not done): an abort
    then runs the service's abort hook."""
    full = {"v": False}
    e = SyncEngine(1, [Recorder(1, 0)], room=CountRoom(lambda n: not full["v"]))
    ring = RingId(1, 8)
    (build,) = e.configuration_changed(conf(R, ring, (1,)))
    full["v"] = True
    assert e.deliver(1, build.groups, build.body) == []
    assert e.state is SyncState.PROCESS and e.wants_poll
    full["v"] = False
    out = e.poll()
    assert [o.groups for o in out] == [(GROUP_A,), (GROUP_SYNC,)]
    assert e.state is SyncState.BARRIER
    e.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert ("abort",) not in e.services[0].calls
    # the same with the barrier still held
    e2 = SyncEngine(1, [Recorder(1, 0)], room=CountRoom(lambda n: not full["v"]))
    (build,) = e2.configuration_changed(conf(R, ring, (1,)))
    full["v"] = True
    e2.deliver(1, build.groups, build.body)
    e2.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert e2.services[0].calls[-1] == ("abort",) and not e2.wants_poll


def test_late_barrier_of_an_aborted_ring_is_discarded() -> None:
    e = SyncEngine(1, [Recorder(1, 0)])
    e.configuration_changed(conf(R, RingId(1, 8), (1, 2)))
    e.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert e.deliver(2, (GROUP_SYNC,), Barrier(RingId(1, 8)).pack()) == []
    e.configuration_changed(conf(R, RingId(1, 12), (1,)))
    assert e.deliver(2, (GROUP_SYNC,), Barrier(RingId(1, 8)).pack()) == []
    assert e.stats["old_ring_discarded"] == 2


def test_room_holds_messages_back_in_order() -> None:
    budget = {"n": 0}

    e = SyncEngine(1, default_services(1, expected_votes=1), room=CountRoom(lambda n: n <= budget["n"]))
    ring = RingId(1, 8)
    assert e.configuration_changed(conf(R, ring, (1,))) == []
    assert e.wants_poll
    budget["n"] = 1
    (build,) = e.poll()
    assert e.deliver(1, build.groups, build.body) == [Outgoing((GROUP_A,), e.services[0].sync_process()[0][0])]
    # the barrier is held until there is room again
    budget["n"] = 0
    assert e.poll() == []
    budget["n"] = 5
    (barrier,) = e.poll()
    assert barrier.body == Barrier(ring).pack()
    sent = [build, barrier]
    # drive the rest with plenty of room
    budget["n"] = 100
    queue = deque([barrier])
    while queue:
        o = queue.popleft()
        queue.extend(e.deliver(1, o.groups, o.body))
    assert not e.in_sync and sent


def test_abort_drops_held_messages_of_the_old_round() -> None:
    e = SyncEngine(1, default_services(1, expected_votes=1), room=CountRoom(lambda n: False))
    e.configuration_changed(conf(R, RingId(1, 8), (1,)))
    assert e.wants_poll
    e.configuration_changed(conf(T, RingId(1, 12), (1,)))
    assert not e.wants_poll
    e.room = None
    (build,) = e.configuration_changed(conf(R, RingId(1, 12), (1,)))
    assert parse_sync_untrusted(build.body).ring_id == RingId(1, 12)


# -- exec dispatch -----------------------------------------------------------------------------------


def test_exec_dispatch() -> None:
    rec = Recorder(1, 4)
    e = SyncEngine(1, [rec])
    hdr = lambda sid, fn: (sid << 16 | fn).to_bytes(4, "little") + bytes(12)  # noqa: E731
    e.deliver(2, (GROUP_A,), hdr(4, 1) + b"x")
    e.deliver(2, (GROUP_A,), hdr(4, 2))  # fn beyond exec_count
    e.deliver(2, (GROUP_A,), hdr(9, 0))  # no such service: silently ignored
    e.deliver(2, (GROUP_A,), b"short")
    e.deliver(2, (b"other",), hdr(4, 0))  # not our group
    assert rec.delivered == [(2, 1, hdr(4, 1) + b"x")]
    assert e.stats["unknown_exec_fn"] == 1 and e.stats["unknown_service"] == 1 and e.stats["malformed_exec"] == 1
    warn = [x for x in e.take_events() if isinstance(x, ServiceLog)]
    assert warn == [ServiceLog("warning", "MAIN", "discarded unknown message 2 for service 4 (max id 2)")]


def test_malformed_service_messages_are_logged_not_raised() -> None:
    e = SyncEngine(1, default_services(1, expected_votes=3))
    for sid, fn in [(0, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 5), (5, 0)]:
        e.deliver(2, (GROUP_A,), (sid << 16 | fn).to_bytes(4, "little") + bytes(20))
    e.deliver(2, (GROUP_SYNC,), b"\x07" + bytes(40))
    assert e.stats["malformed_exec"] == 7 and e.stats["malformed_sync"] == 1


def test_duplicate_service_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        SyncEngine(1, [Recorder(1, 3), Recorder(1, 3)])


# -- bytes from the network never make the engine raise ------------------------------------------

_VALID = [
    (GROUP_SYNC, ServiceBuild(RingId(1, 8), (0, 2, 3, 5)).pack()),
    (GROUP_SYNC, Barrier(RingId(1, 8)).pack()),
    (GROUP_A, build_sync_message(None)),
    (GROUP_A, cpg_codec.ProcJoin(cpg_codec.CpgName.of(b"g"), 5, 1).pack()),
    (GROUP_A, cpg_codec.ProcJoin(cpg_codec.CpgName.of(b"g"), 5, 2, cpg_codec.CpgFn.PROCLEAVE).pack()),
    (GROUP_A, cpg_codec.JoinList((cpg_codec.JoinListEntry(5, cpg_codec.CpgName.of(b"g")),)).pack()),
    (GROUP_A, cpg_codec.DownList(2, 1, (3,) + (0,) * 383).pack()),
    (GROUP_A, cpg_codec.CpgMcast(cpg_codec.CpgName.of(b"g"), 5, b"hi").pack()),
    (GROUP_A, vq_codec.NodeInfo(2, 1, 3, 1).pack()),
    (GROUP_A, vq_codec.NodeInfo(0, 1, 3, 0).pack()),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(1, 4),
                          st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
                          st.integers(0, 2000)), max_size=40))
def test_any_delivered_bytes_are_survived(script) -> None:
    e = SyncEngine(1, default_services(1, expected_votes=3))
    e.configuration_changed(conf(R, RingId(1, 8), (1, 2, 3)))
    for which, sender, edits, cut in script:
        group, body = _VALID[which]
        b = bytearray(body)
        for pos, val in edits:
            if pos < len(b):
                b[pos] = val
        e.deliver(sender, (group,), bytes(b[:cut] if cut < len(b) else b))
        e.poll()
    e.take_events()
