"""The namespace cluster harness (interop/cluster.py) with real corosync, and with
pytotem's totemd as one of the nodes once that daemon runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interop.cluster import Cluster, totemd_available
from interop.netns import PREFIX, Network, list_namespaces, sweep_stale

TOKEN = 1000
COROSYNC3 = ("corosync", "corosync", "corosync")
MIXED = ("corosync", "corosync", "totemd")

_totemd_reason: list[str | None] = []


def _skip_without_totemd(kinds) -> None:
    if "totemd" not in kinds:
        return
    if not _totemd_reason:
        _totemd_reason.append(totemd_available())
    if _totemd_reason[0] is not None:
        if os.environ.get("PYTOTEM_REQUIRE_INTEROP") == "1":
            pytest.fail(f"pytotem's daemon cannot run: {_totemd_reason[0]}", pytrace=False)
        pytest.skip(f"pytotem's daemon cannot run: {_totemd_reason[0]}")


def _wait_ring(c: Cluster, ids, nodes=None, after=None, timeout: float = 20.0) -> None:
    """Wait until ``nodes`` (default ``ids``) are in one ring of exactly ``ids``.

    "Sync members[N]: ..." is logged (by corosync and totemd) when the totem membership is
    formed; corosync logs "Members[N]: ..." and "Completed service synchronization" only
    after its service sync, which needs every member to run corosync's sync engine, so
    that is checked when all of ``ids`` are corosync."""
    ids = sorted(ids)
    nodes = ids if nodes is None else nodes
    listed = " ".join(map(str, ids))
    c.wait_log_all(rf"Sync members\[{len(ids)}\]: {listed}\n", timeout, nodes=nodes, after=after)
    if all(c.node(i).kind == "corosync" for i in ids):
        c.wait_log_all(rf"Members\[{len(ids)}\]: {listed}\n", timeout, nodes=nodes, after=after)


def _assert_cleaned_up(c: Cluster, tmp_path: Path, pids: list[int]) -> None:
    assert pids, "the cluster started no process?"
    leftover_ns = [n for n in list_namespaces() if n.startswith(c.prefix)]
    assert leftover_ns == []
    alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
    assert alive == [], f"processes of the harness still running: {alive}"
    mine = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(tmp_path).encode() in cmdline:
                mine.append((entry, cmdline.decode(errors="replace")))
    assert mine == [], f"processes still using the cluster's files: {mine}"


@pytest.fixture
def cluster_factory(corosync_available, tmp_path):
    """Clusters made by a test; after the test, check they left nothing behind."""
    made: list[Cluster] = []

    def make(kinds=COROSYNC3, **kwargs) -> Cluster:
        _skip_without_totemd(kinds)
        c = Cluster(tmp_path / f"cluster{len(made)}", list(kinds), token=TOKEN, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
        _assert_cleaned_up(c, tmp_path, c.all_pids())


def test_three_corosync_nodes_form_one_ring_in_their_namespaces(cluster_factory):
    with cluster_factory() as c:
        _wait_ring(c, [1, 2, 3])
        c.wait_log_all(r"Completed service synchronization, ready to provide service")

        cfg = c.run(2, ["corosync-cfgtool", "-s"])
        assert cfg.returncode == 0, cfg.stderr
        assert "Local node ID 2" in cfg.stdout
        for n in (1, 3):
            assert re.search(rf"nodeid:\s+{n}:\s+connected", cfg.stdout), cfg.stdout
        assert re.search(r"nodeid:\s+2:\s+localhost", cfg.stdout), cfg.stdout

        q = c.run(2, ["corosync-quorumtool", "-l"])
        assert q.returncode == 0, q.stderr
        listed = re.findall(r"^\s+(\d+)\s+1 (node\d)", q.stdout, re.M)
        assert listed == [("1", "node1"), ("2", "node2"), ("3", "node3")], q.stdout
        assert "node2 (local)" in q.stdout

        assert c.members(1) == [1, 2, 3]
        for n in c.nodeids:
            # each node: its own hostname, its own /run (corosync's pid file), its own address
            assert c.run(n, ["cat", "/proc/sys/kernel/hostname"]).stdout.strip() == f"node{n}"
            assert c.run(n, ["cat", "/run/corosync.pid"]).stdout.strip() == str(c.pid(n))
            addrs = c.run(n, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
            assert f"inet 198.18.0.{n}/24" in addrs
            shm = c.run(n, ["ls", "/dev/shm"]).stdout.split()
            assert any(f"qb-corosync-{c.pid(n)}-" in f for f in shm), shm
            assert not any(f"qb-corosync-{c.pid(m)}-" in f for f in shm for m in c.nodeids if m != n)


@pytest.mark.parametrize("kinds", [COROSYNC3, MIXED], ids=["corosync", "mixed"])
def test_sigkill_then_restart(cluster_factory, kinds):
    with cluster_factory(kinds) as c:
        _wait_ring(c, [1, 2, 3])
        mark = c.marks()
        c.kill(3)
        c.wait_log_all(r"left: 3\n", nodes=[1, 2], after=mark)
        _wait_ring(c, [1, 2], after=mark)
        mark = c.marks()
        c.start(3)
        _wait_ring(c, [1, 2, 3], after=mark)


@pytest.mark.parametrize("kinds", [COROSYNC3, MIXED], ids=["corosync", "mixed"])
def test_partition_2_1_and_heal(cluster_factory, kinds):
    with cluster_factory(kinds) as c:
        _wait_ring(c, [1, 2, 3])
        mark = c.marks()
        c.partition([[1, 2], [3]])
        assert c.network.cuts == {(1, 3), (3, 1), (2, 3), (3, 2)}
        _wait_ring(c, [1, 2], after=mark)
        _wait_ring(c, [3], after=mark)
        if kinds == COROSYNC3:
            c.wait_members([1, 2], [1, 2])
            c.wait_members([3], [3])
        mark = c.marks()
        c.heal_all()
        assert c.network.cuts == set()
        _wait_ring(c, [1, 2, 3], after=mark)
        if kinds == COROSYNC3:
            c.wait_members([1, 2, 3], [1, 2, 3])


def test_mixed_ring_totemd_status(cluster_factory):
    _skip_without_totemd(MIXED)
    with cluster_factory(MIXED) as c:
        _wait_ring(c, [1, 2, 3])
        c.wait_members([3], [1, 2, 3])
        st = c.status(3)
        assert st["state"] == "OPERATIONAL", st
        assert set(st["ring_id"]) >= {"rep", "seq"}, st


def test_pause_and_resume(cluster_factory):
    with cluster_factory() as c:
        c.wait_log_all(r"Members\[3\]: 1 2 3\n")
        mark = c.marks()
        c.pause(2)
        c.wait_log_all(r"Members\[2\]: 1 3\n", nodes=[1, 3], after=mark)
        mark = c.marks()
        c.resume(2)
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", after=mark)
        mark = c.marks()
        c.stop(1)  # graceful: the others see it leave at once
        c.wait_log_all(r"Members\[2\]: 2 3\n", nodes=[2, 3], after=mark, timeout=5)


def test_cleanup_when_the_body_raises(cluster_factory):
    with pytest.raises(RuntimeError, match="boom"):
        with cluster_factory(start=False) as c:
            assert sorted(n for n in list_namespaces() if n.startswith(c.prefix)) == sorted(
                [c.network.bridge_ns] + [c.node(n).netns for n in c.nodeids])
            c.popen(1, ["sleep", "1000"])
            raise RuntimeError("boom")
    assert not [n for n in list_namespaces() if n.startswith(c.prefix)]
    # the factory checks that no process remains


def test_sweeper_removes_namespaces_of_dead_processes(corosync_available):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    net = Network(f"{PREFIX}{dead.pid}-stale-", [1])
    net.create()
    try:
        names = [n for n in list_namespaces() if n.startswith(net.prefix)]
        assert len(names) == 2
        mine = Network(f"{PREFIX}{os.getpid()}-live-", [1])
        mine.create()
        try:
            swept = sweep_stale()
            assert set(names) <= set(swept)
            left = list_namespaces()
            assert not [n for n in left if n.startswith(net.prefix)]
            assert mine.netns(1) in left, "a live process's namespaces must be kept"
        finally:
            mine.destroy()
    finally:
        net.destroy()
