"""Many seeded simulator runs, checked and summarised: the engine of ``totemctl sim``.

Each seed gives one :class:`~totem.sim.cluster.Simulation` with its own random fault
schedule; every result goes through the invariant checker. A run that breaks an
invariant (or crashes the simulator) is reported with its seed, node count,
violations, fault schedule, the tail of its trace and a command that replays it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, TextIO

from . import invariants
from .cluster import SimConfig, SimResult, Simulation
from .faults import FAULT_KINDS, Fault
from .invariants import Violation

TRACE_TAIL = 60
VIOLATIONS_SHOWN = 20

def deliveries(r: SimResult) -> int:
    """Messages delivered, summed over every node incarnation."""
    return sum(1 for rec in r.records.values() for e in rec.history if e[0] == "msg")


COUNTERS = (
    # (label, how to get it from one run)
    ("datagrams sent", lambda r: r.stats.get("sent", 0)),
    ("lost", lambda r: r.stats.get("lost", 0)),
    ("duplicated", lambda r: r.stats.get("duplicated", 0)),
    ("blocked", lambda r: r.stats.get("blocked", 0)),
    ("messages sent", lambda r: len(r.sent)),
    ("deliveries", deliveries),
    ("token receptions", lambda r: r.stats.get("orf_token_rx", 0)),
    ("retransmissions", lambda r: r.stats.get("mcast_retx", 0)),
    ("rings installed", lambda r: r.stats.get("operational_entered", 0)),
)


def faults_text(kinds: tuple[str, ...]) -> str:
    """The ``--faults`` argument that selects ``kinds``.

    The order is kept: the schedule draws discrete faults from the kinds in the order
    given, so ``crash,wipe`` and ``wipe,crash`` are different runs of the same seed.
    """
    if tuple(kinds) == FAULT_KINDS:
        return "all"
    if not kinds:
        return "none"
    return ",".join(kinds)


def parse_range(text: str) -> tuple[int, int]:
    """``"3-8"`` -> (3, 8); raises ValueError on anything else."""
    lo, sep, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi)
    except ValueError:
        raise ValueError(f"node range {text!r} is not of the form A-B (e.g. 3-8)") from None
    if not sep or a < 1 or b < a:
        raise ValueError(f"node range {text!r} must be A-B with 1 <= A <= B")
    return a, b


def nodes_for(seed: int, nodes: int, nodes_range: tuple[int, int] | None) -> int:
    """The node count of a seed: fixed, or drawn from the range by the seed alone."""
    if nodes_range is None:
        return nodes
    a, b = nodes_range
    return a + seed % (b - a + 1)


def reproduce_command(seed: int, nodes: int, kinds: tuple[str, ...]) -> str:
    return f"totemctl sim --seed {seed} --seeds 1 --nodes {nodes} --faults {faults_text(kinds)}"


@dataclass
class RunOutcome:
    seed: int
    nodes: int
    violations: list[Violation]
    schedule: list[Fault]
    trace: list[str]
    result: SimResult | None
    """None when the simulation raised (then ``violations`` holds the exception)."""
    wall: float
    error: str | None = None
    """The traceback, if the simulation raised."""

    @property
    def ok(self) -> bool:
        return not self.violations


def run_seed(seed: int, nodes: int, kinds: tuple[str, ...]) -> RunOutcome:
    """One seeded run, checked. An exception in the simulation counts as a violation."""
    t0 = time.perf_counter()
    sim = Simulation(SimConfig(nodes=nodes, seed=seed, faults=kinds))
    try:
        result = sim.run()
    except Exception as exc:  # a crash of a node's stack is a finding, not the end of the sweep
        return RunOutcome(seed, nodes, [Violation("exception", f"{type(exc).__name__}: {exc}")],
                          list(sim.schedule), list(sim.trace), None, time.perf_counter() - t0,
                          traceback.format_exc())
    violations = invariants.check(result)
    return RunOutcome(seed, nodes, violations, result.schedule, result.trace, result,
                      time.perf_counter() - t0)


@dataclass
class Summary:
    runs: int = 0
    failed: list[tuple[int, int]] = field(default_factory=list)
    """(seed, nodes) of every run with violations."""
    virtual_seconds: float = 0.0
    wall: float = 0.0
    counters: dict[str, int] = field(default_factory=lambda: {label: 0 for label, _ in COUNTERS})

    def add(self, o: RunOutcome) -> None:
        self.runs += 1
        if not o.ok:
            self.failed.append((o.seed, o.nodes))
        if o.result is not None:
            self.virtual_seconds += o.result.virtual_seconds
            for label, get in COUNTERS:
                self.counters[label] += get(o.result)


def run_many(seeds: range, nodes: int, nodes_range: tuple[int, int] | None, kinds: tuple[str, ...],
             on_outcome: Callable[[RunOutcome], None] | None = None) -> Summary:
    summary = Summary()
    t0 = time.perf_counter()
    for seed in seeds:
        outcome = run_seed(seed, nodes_for(seed, nodes, nodes_range), kinds)
        summary.add(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    summary.wall = time.perf_counter() - t0
    return summary


# -- output ------------------------------------------------------------------------------


def format_run_line(o: RunOutcome) -> str:
    """One line per run (``--verbose``)."""
    status = "ok" if o.ok else f"FAIL ({len(o.violations)} violations)"
    if o.result is None:
        return f"seed {o.seed:6d}  {o.nodes} nodes  {status}  {o.wall:6.2f}s wall"
    r = o.result
    faults = sum(1 for f in o.schedule if f.kind != "heal")
    return (f"seed {o.seed:6d}  {o.nodes} nodes  {faults:2d} faults  "
            f"{r.virtual_seconds:5.2f}s sim  {o.wall:5.2f}s wall  {len(r.sent):5d} msgs  "
            f"{deliveries(r):6d} deliveries  {status}")


def format_failure(o: RunOutcome, kinds: tuple[str, ...], tail: int = TRACE_TAIL) -> str:
    rule = "=" * 78
    lines = [rule, f"VIOLATION  seed {o.seed}, {o.nodes} nodes, {len(o.violations)} violation(s)", rule]
    for v in o.violations[:VIOLATIONS_SHOWN]:
        lines.append(f"  ! {v}")
    if len(o.violations) > VIOLATIONS_SHOWN:
        lines.append(f"  ! ... and {len(o.violations) - VIOLATIONS_SHOWN} more")
    if o.error:
        lines.append("-- exception")
        lines += ["  " + line for line in o.error.rstrip().splitlines()]
    lines.append("-- fault schedule")
    lines += ["  " + str(f) for f in o.schedule] or ["  (none)"]
    shown = o.trace[-tail:]
    lines.append(f"-- trace (last {len(shown)} of {len(o.trace)} lines kept)")
    lines += ["  " + t for t in shown]
    lines.append("-- reproduce")
    lines.append("  " + reproduce_command(o.seed, o.nodes, kinds))
    lines.append(rule)
    return "\n".join(lines)


def format_summary(s: Summary, kinds: tuple[str, ...]) -> str:
    rate = s.virtual_seconds / s.wall if s.wall > 0 else float("inf")
    c = s.counters
    lines = [
        f"sim: {s.runs} runs, {len(s.failed)} with violations, faults {faults_text(kinds)}",
        f"  time      {s.virtual_seconds:.1f} s simulated in {s.wall:.1f} s wall ({rate:.1f} sim-s per wall-s)",
        f"  network   {c['datagrams sent']} datagrams sent, {c['lost']} lost, {c['duplicated']} duplicated, "
        f"{c['blocked']} blocked",
        f"  messages  {c['messages sent']} sent, {c['deliveries']} deliveries, "
        f"{c['retransmissions']} retransmissions",
        f"  ring      {c['token receptions']} token receptions, {c['rings installed']} rings installed",
    ]
    if s.failed:
        shown = ", ".join(f"{seed} ({n} nodes)" for seed, n in s.failed[:20])
        more = f", ... {len(s.failed) - 20} more" if len(s.failed) > 20 else ""
        lines.append(f"  FAILED    seeds {shown}{more}")
    return "\n".join(lines)


def sweep(seeds: range, nodes: int, nodes_range: tuple[int, int] | None, kinds: tuple[str, ...],
          out: TextIO, verbose: bool = False) -> int:
    """Run, print failures as they happen and the summary at the end; 1 if anything broke."""

    def report(o: RunOutcome) -> None:
        if verbose:
            print(format_run_line(o), file=out, flush=True)
        if not o.ok:
            print(format_failure(o, kinds), file=out, flush=True)

    summary = run_many(seeds, nodes, nodes_range, kinds, report)
    print(format_summary(summary, kinds), file=out)
    return 1 if summary.failed else 0
