"""No partition schedule leaves two partitions quorate at once (totem/sim/quorum.py).

Every simulated node runs totem + the sync engine + cmap/cpg/quorum/votequorum, and
the schedules keep re-cutting the cluster (two or three groups, merges, crashes,
graceful leaves, restarts, wiped state, light loss). Checked for every run: at no
instant are two nodes quorate with disjoint views, and once the network heals every
node is back in one quorate view of all nodes.

The sweep covers the options that keep quorum a majority of the same expected votes
(plain majority, uneven votes, wait_for_all, expected_votes_tracking).
last_man_standing, auto_tie_breaker and two_node trade that guarantee away in
corosync 3.1.7 itself; test_quorum_arithmetic.py reproduces the sequences the
simulator found for them step by step, and the control below shows the checker
catching two_node's designed split brain.
"""

from __future__ import annotations

import pytest

from quorum.arithmetic import QuorumConfig
from totem.sim.quorum import QuorumRecord, SplitBrain, check_quorum, run_quorum_seed
from totem.wire import RingId

SEEDS = 50


def ones(n: int) -> dict[int, int]:
    return {i: 1 for i in range(1, n + 1)}


CONFIGS = {
    "majority": lambda n: QuorumConfig(nodelist=ones(n)),
    "uneven votes": lambda n: QuorumConfig(nodelist={i: 1 + (i % 3 == 0) for i in range(1, n + 1)}),
    "wait_for_all": lambda n: QuorumConfig(nodelist=ones(n), wait_for_all=True),
    "expected_votes_tracking": lambda n: QuorumConfig(nodelist=ones(n), expected_votes_tracking=True,
                                                      wait_for_all=True),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_no_two_partitions_quorate_at_once(name: str) -> None:
    failures = []
    for seed in range(SEEDS):
        n = 3 + seed % 5
        o = run_quorum_seed(seed, n, CONFIGS[name](n), fault_window=3.0)
        if o.split_brains:
            failures.append(f"seed {seed}, {n} nodes: {o.split_brains[0]}")
        everyone = tuple(range(1, n + 1))
        if o.final != {i: (True, everyone) for i in everyone}:
            failures.append(f"seed {seed}, {n} nodes: not one quorate view after healing: {o.final}")
    assert not failures, "\n".join(failures)


def test_the_checker_sees_two_node_split_brain() -> None:
    """two_node keeps each half quorate (fencing is meant to settle it): the checker
    reports it, and the cluster is whole again after healing."""
    found = 0
    for seed in range(4):
        o = run_quorum_seed(seed, 2, QuorumConfig(nodelist=ones(2), two_node=True), fault_window=3.0)
        found += bool(o.split_brains)
        assert o.final == {1: (True, (1, 2)), 2: (True, (1, 2))}
    # (not every schedule keeps the two apart long enough for both to sync alone)
    assert found >= 1


def test_check_quorum_on_hand_made_records() -> None:
    r = RingId(1, 4)
    recs = {
        (1, 1): QuorumRecord((1, 1), [(0.0, True, (1, 2, 3), r), (2.0, False, (1,), r)]),
        (2, 1): QuorumRecord((2, 1), [(0.0, True, (1, 2, 3), r), (1.0, True, (2, 3), r)], ended=3.0),
        (3, 1): QuorumRecord((3, 1), [(0.0, True, (1, 2, 3), r), (1.0, True, (2, 3), r)]),
    }
    # node 1 keeps its old view (1, 2, 3) until 2.0: it overlaps (2, 3), fine
    assert check_quorum(recs) == []
    recs[(1, 1)].decisions.insert(1, (1.5, True, (1,), r))
    assert check_quorum(recs) == [SplitBrain(1.5, ((1, 1), (1,)), ((2, 1), (2, 3))),
                                  SplitBrain(1.5, ((1, 1), (1,)), ((3, 1), (2, 3)))]
    # a node that died no longer counts; its next incarnation starts afresh
    recs = {
        (1, 1): QuorumRecord((1, 1), [(0.0, True, (1,), r)], ended=1.0),
        (2, 1): QuorumRecord((2, 1), [(1.0, True, (2,), r)]),
    }
    assert check_quorum(recs) == []
