"""Hundreds of seeded simulator runs with every fault kind; all invariants must hold.

500 seeds, 3 to 8 nodes (the node count follows from the seed), in batches so that
the test runner can spread them over the machine's cores. A failure prints what
`totemctl sim` prints: the seed, the violations, the fault schedule and the trace.
"""

from __future__ import annotations

import pytest

from totem.sim import SimConfig, Simulation, check

SEEDS = 500
BATCH = 25
NODES_MIN, NODES_MAX = 3, 8


def nodes_for(seed: int) -> int:
    return NODES_MIN + seed % (NODES_MAX - NODES_MIN + 1)


@pytest.mark.parametrize("first", range(0, SEEDS, BATCH), ids=lambda s: f"seeds{s}-{s + BATCH - 1}")
def test_random_fault_schedules_keep_every_invariant(first):
    failures = []
    for seed in range(first, first + BATCH):
        result = Simulation(SimConfig(nodes=nodes_for(seed), seed=seed)).run()
        violations = check(result)
        if violations:
            failures.append(
                f"seed {seed}, {nodes_for(seed)} nodes:\n  "
                + "\n  ".join(map(str, violations[:5]))
                + "\nschedule:\n  " + "\n  ".join(map(str, result.schedule))
                + "\ntrace (last 40):\n  " + "\n  ".join(result.trace[-40:])
            )
    assert not failures, "\n\n".join(failures)


def test_fault_free_run_delivers_everything_everywhere():
    """Without faults every node delivers every message: the checker has something to check."""
    result = Simulation(SimConfig(nodes=4, seed=1, faults=())).run()
    assert check(result) == []
    delivered = {
        key: [e[1] for e in rec.history if e[0] == "msg"] for key, rec in result.records.items()
    }
    assert len(result.sent) > 100
    for msgs in delivered.values():
        assert set(msgs) == set(result.sent)
    first = next(iter(delivered.values()))
    assert all(msgs == first for msgs in delivered.values()), "same order everywhere"
