"""Pacemaker 2.1.5 on three nodes, each in its own namespaces (issue 8).

Debian's real Pacemaker runs on every node over the node's messaging daemon: three real
corosync 3.1.7 (the reference that proves the harness), three totemd, and two totemd with
one corosync in the same ring. In every cluster:

* a DC is elected, every node's ``crm_mon -1`` shows the three nodes online with quorum,
  an ``ocf:pacemaker:Dummy`` resource starts (``crm_resource --locate`` finds it) on
  node1, which it prefers (score 100: node1 is a totemd node in both totemd kinds);
* a graceful stop of node1 (pacemakerd SIGTERM, then the daemon SIGTERM) moves it to a
  survivor with no failed action; node1 comes back and the resource fails back to it;
  the whole cluster stops cleanly (every pacemakerd exits 0);
* SIGKILL of node1's messaging daemon: the two survivors keep quorum (crm_mon says
  "partition with quorum", ``no-quorum-policy=stop``) and run the resource again; node1
  rejoins when its daemons restart (messaging daemon first, then pacemakerd) and the
  resource ends up active exactly once, back on node1.

Each phase is bounded (60 s at most; with the seeded CIB's dc-deadtime of 5 s a DC is
there about 9 s after pacemakerd starts) and its duration is printed (``-s``) and
recorded as a junit property. Like every interop test they get ``xdist_group("corosync")``
from the interop conftest; each cluster lives in its own namespaces, so they also run
correctly side by side with other interop tests.

A last test migrates a running corosync cluster to totemd one node at a time, as
docs/pacemaker.md describes.
"""

from __future__ import annotations

import re
import time

import pytest

from interop.cluster import totemd_available
from interop.pacemaker import PacemakerCluster

KINDS = {
    "3corosync": ("corosync", "corosync", "corosync"),
    "3totemd": ("totemd", "totemd", "totemd"),
    "2totemd+corosync": ("totemd", "totemd", "corosync"),
}
RSC = "R"


@pytest.fixture(params=list(KINDS.values()), ids=list(KINDS))
def kinds(request, corosync_available, pacemaker_available):
    if "totemd" in request.param:
        reason = totemd_available()
        if reason is not None:
            pytest.fail(f"totemd cannot run: {reason}")
    return request.param


class Phases:
    """Times the phases of a scenario; prints them and records them as properties."""

    def __init__(self, record_property, kinds) -> None:
        self.record = record_property
        self.kinds = "+".join(kinds)
        self.t0 = self.t = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        print(f"[{self.kinds}] {name}: {now - self.t:.1f} s (total {now - self.t0:.1f} s)")
        self.record(name, round(now - self.t, 1))
        self.t = now


def eventually(check, timeout: float = 15.0, interval: float = 0.5):
    """Retry ``check`` (which asserts) until it passes; its last AssertionError if not.
    For single reads right after a ``wait_*`` that a busy machine may answer late."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def assert_crm_mon(pc: PacemakerCluster, nodes, online) -> None:
    """The human-readable ``crm_mon -1`` on each of ``nodes`` says "partition with quorum"
    and lists exactly ``online`` as online (and the others as offline)."""
    want = " ".join(sorted(pc.name(n) for n in online))
    gone = " ".join(sorted(pc.name(n) for n in pc.nodeids if n not in online))

    def check(n):
        text = pc.crm_mon_text(n)
        assert re.search(rf"\bOnline: \[ {want} \]", text), f"{pc.name(n)}:\n{text}"
        if gone:
            assert re.search(rf"\bOFFLINE: \[ {gone} \]", text), f"{pc.name(n)}:\n{text}"
        assert "partition with quorum" in text, f"{pc.name(n)}:\n{text}"

    for n in nodes:
        eventually(lambda: check(n))


def start_cluster_with_resource(pc: PacemakerCluster, ph: Phases) -> str:
    """Daemons, Pacemaker, a DC, the resource R (preferring node1, a totemd node in the
    totemd kinds) running; R's node."""
    pc.start_all()
    ph.done("ring formed")
    dc = pc.wait_dc(timeout=60)

    def same_dc():
        seen = {pc.name(n): pc.dc(n) for n in pc.nodeids}
        assert set(seen.values()) == {dc}, f"crmadmin -D {seen}, crm_mon: {dc}"

    eventually(same_dc)
    assert_crm_mon(pc, pc.nodeids, pc.nodeids)

    def stonith_off():
        assert pc.property("stonith-enabled") == "false"

    eventually(stonith_off)
    ph.done(f"DC {dc} elected, 3 nodes online everywhere")
    pc.add_dummy(RSC, prefer=pc.name(1))
    where = pc.wait_running(RSC, timeout=60)
    assert where == pc.name(1), f"{RSC} ignored its location preference: on {where}"
    assert pc.locate(RSC) == [where]
    ph.done(f"{RSC} started on {where}")
    return where


def test_resource_starts_and_moves_on_graceful_stop(kinds, tmp_path, record_property):
    ph = Phases(record_property, kinds)
    with PacemakerCluster(tmp_path, kinds) as pc:
        where = start_cluster_with_resource(pc, ph)

        leaving = pc.nodeid(where)
        rest = [n for n in pc.nodeids if n != leaving]
        rc, _ = pc.stop_node(leaving)
        assert rc == 0, f"pacemakerd on {where} exited {rc}" + pc.diagnostics([leaving])
        pc.wait_dc(rest, timeout=60)
        now = pc.wait_running(RSC, rest, allowed={pc.name(n) for n in rest}, timeout=60)
        assert_crm_mon(pc, rest, rest)
        st = pc.status(rest[0])
        assert not st.failures, f"failed actions after a graceful stop: {st.failures}"
        log = pc.pacemaker_logs(leaving, since_start=True)
        assert re.search(rf"Result of stop operation for {RSC} on {where}: ok", log), \
            f"no clean stop of {RSC} on {where}" + pc.diagnostics([leaving])
        ph.done(f"graceful stop of {where}: {RSC} moved to {now}")

        pc.start_messaging(leaving)
        pc.wait_ring(pc.nodeids)
        pc.start_pacemaker(leaving)
        pc.wait_dc(timeout=60)
        assert_crm_mon(pc, pc.nodeids, pc.nodeids)
        back = pc.wait_running(RSC, timeout=60)
        assert back == where, f"{RSC} did not fail back to {where} (on {back})"
        assert not pc.status(leaving).failures
        ph.done(f"{where} rejoined, {RSC} failed back to it")

        rcs = pc.stop_all()
        assert rcs == {n: 0 for n in pc.nodeids}, rcs
        ph.done("whole cluster stopped")


def test_sigkill_of_the_messaging_daemon_under_the_resource(kinds, tmp_path, record_property):
    ph = Phases(record_property, kinds)
    with PacemakerCluster(tmp_path, kinds) as pc:
        where = start_cluster_with_resource(pc, ph)

        victim = pc.nodeid(where)
        survivors = [n for n in pc.nodeids if n != victim]
        pc.kill_messaging(victim)
        dc = pc.wait_dc(survivors, timeout=60)  # quorate, only the survivors online
        now = pc.wait_running(RSC, survivors, allowed={pc.name(n) for n in survivors},
                              timeout=60)
        assert_crm_mon(pc, survivors, survivors)
        ph.done(f"SIGKILL of {pc.cluster.node(victim).kind} on {where}: survivors kept quorum "
                f"(DC {dc}), {RSC} recovered on {now}")

        # The victim's Pacemaker lost its cluster layer: its cluster subdaemons exited and
        # pacemakerd waits for the layer to return. Stop what is left of it, then restart
        # the node's daemons: the messaging daemon first, then pacemakerd.
        assert "Lost connection to cluster layer" in pc.pacemaker_logs(victim, since_start=True), \
            pc.diagnostics([victim])
        pc.stop_pacemaker(victim, timeout=30)
        pc.start_messaging(victim)
        pc.wait_ring(pc.nodeids)
        pc.start_pacemaker(victim)
        pc.wait_dc(timeout=60)
        assert_crm_mon(pc, pc.nodeids, pc.nodeids)
        # Without fencing, the victim's Dummy kept running through the outage: after the
        # rejoin the probe finds it active twice; Pacemaker stops both and starts it on
        # the preferred node.
        final = pc.wait_running(RSC, timeout=60)
        assert pc.locate(RSC) == [final]
        assert final == where, f"{RSC} did not fail back to {where} (on {final})"
        ph.done(f"{where} rejoined, {RSC} active once (on {final})")

        rcs = pc.stop_all()
        assert rcs == {n: 0 for n in pc.nodeids}, rcs
        ph.done("whole cluster stopped")


def test_rolling_migration_from_corosync_to_totemd(corosync_available, pacemaker_available,
                                                    tmp_path, record_property):
    """docs/pacemaker.md's migration: a running 3-corosync Pacemaker cluster becomes a
    3-totemd one, one node at a time (pacemakerd SIGTERM, corosync SIGTERM, totemd with
    the same corosync.conf and state directory, pacemakerd), without ever losing quorum
    or leaving the resource stopped once the node that ran it is back."""
    reason = totemd_available()
    if reason is not None:
        pytest.fail(f"totemd cannot run: {reason}")
    kinds = ("corosync",) * 3
    ph = Phases(record_property, ("corosync→totemd",))
    with PacemakerCluster(tmp_path, kinds) as pc:
        start_cluster_with_resource(pc, ph)
        for n in pc.nodeids:
            rest = [m for m in pc.nodeids if m != n]
            rc, _ = pc.stop_node(n)
            assert rc == 0, pc.diagnostics([n])
            pc.wait_dc(rest, timeout=60)
            pc.wait_running(RSC, rest, allowed={pc.name(m) for m in rest}, timeout=60)

            pc.switch_kind(n, "totemd")
            pc.start_messaging(n)
            pc.wait_ring(pc.nodeids)
            pc.start_pacemaker(n)
            pc.wait_dc(timeout=60)
            assert_crm_mon(pc, pc.nodeids, pc.nodeids)
            on = pc.wait_running(RSC, timeout=60)
            assert on == pc.name(1), f"{RSC} on {on}, not back on its preferred node1"
            assert not pc.status(n).failures
            mix = "+".join(pc.cluster.node(m).kind for m in pc.nodeids)
            ph.done(f"{pc.name(n)} migrated ({mix}), {RSC} on {on}")
        for n in pc.nodeids:
            assert pc.cluster.node(n).kind == "totemd"
        rcs = pc.stop_all()
        assert rcs == {n: 0 for n in pc.nodeids}, rcs
        ph.done("whole cluster stopped")
