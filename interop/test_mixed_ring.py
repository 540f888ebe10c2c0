"""Mixed rings: real corosync 3.1.7 and totemd in one ring, each node in its own namespaces.

The real nodes must finish their service synchronisation with totemd nodes in the ring
(their logs say so), agree on one ring id with the totemd nodes, count their votes and
list them as members with corosync's own tools.
"""

from __future__ import annotations

import re
import time

import pytest

from interop.cluster import Cluster

TOKEN = 1000
MIXES = {
    "totemd-lowest+2corosync": ("totemd", "corosync", "corosync"),
    "2corosync+totemd": ("corosync", "corosync", "totemd"),
    "2totemd-lowest+corosync": ("totemd", "totemd", "corosync"),
    "corosync-lowest+2totemd": ("corosync", "totemd", "totemd"),
}


def ring_id_of(c: Cluster, n: int) -> str:
    """The ring id as corosync prints it (rep.seq in hex), from either kind of node."""
    if c.node(n).kind == "totemd":
        r = c.status(n)["ring_id"]
        return f"{r['rep']:x}.{r['seq']:x}"
    out = c.run(n, ["corosync-quorumtool", "-s"], check=True).stdout
    return re.search(r"Ring ID:\s+(\S+)", out).group(1)


@pytest.mark.parametrize("kinds", list(MIXES.values()), ids=list(MIXES))
def test_mixed_ring_syncs_and_counts_every_node(totemd_ok, tmp_path, kinds):
    with Cluster(tmp_path, kinds=kinds, token=TOKEN) as c:
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", 30)
        c.wait_log_all(r"Completed service synchronization, ready to provide service\.", 30)
        # the last membership of every node is the same ring
        deadline = time.monotonic() + 10
        while True:
            rings = {n: ring_id_of(c, n) for n in (1, 2, 3)}
            if len(set(rings.values())) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(set(rings.values())) == 1, rings
        assert rings[1].startswith("1."), "the lowest nodeid represents the ring"

        for n in (1, 2, 3):
            if c.node(n).kind != "corosync":
                continue
            q = c.run(n, ["corosync-quorumtool", "-s"], check=True).stdout
            assert re.search(r"Total votes:\s+3", q), q
            assert re.search(r"Quorate:\s+Yes", q), q
            listing = c.run(n, ["corosync-quorumtool", "-l"], check=True).stdout
            for m in (1, 2, 3):
                assert re.search(rf"^\s+{m}\s+1\s+node{m}\b", listing, re.M), listing
            cfg = c.run(n, ["corosync-cfgtool", "-s"], check=True).stdout
            assert f"Local node ID {n}" in cfg, cfg


def test_totemd_killed_in_a_mixed_ring_is_seen_by_corosync_and_rejoins(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("corosync", "corosync", "totemd"), token=TOKEN) as c:
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", 30)
        marks = c.marks()
        c.kill(3)
        c.wait_log_all(r"Members\[2\]: 1 2\n", 30, nodes=[1, 2], after=marks)
        c.wait_log(1, r"A new membership \(\S+\) was formed\. Members left: 3", 5, after=marks[1])
        marks = c.marks()
        c.start(3)
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", 30, after=marks)
        c.wait_log_all(r"Completed service synchronization", 30, after=marks)


def test_corosync_stopped_in_a_mixed_ring_leaves_at_once(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync", "totemd"), token=TOKEN) as c:
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", 30)
        marks = c.marks()
        t0 = time.monotonic()
        c.stop(2)
        c.wait_log_all(r"Members\[2\]: 1 3\n", 10, nodes=[1, 3], after=marks)
        assert time.monotonic() - t0 < 3.0
