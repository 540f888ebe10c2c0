"""Fault schedules: what goes wrong, when, drawn from one seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = (
    "loss",       # random datagram loss during the fault window
    "dup",        # duplicated datagrams
    "reorder",    # datagrams held back so that later ones overtake them
    "delay",      # large delay and jitter
    "oneway",     # a link that loses everything in one direction only
    "partition",  # the nodes split into groups that cannot talk, later merged
    "crash",      # a node dies and restarts with its ring seq kept
    "wipe",       # a node dies and restarts without its ring seq (state dir lost)
    "pause",      # a node stops for longer than the token timeout, then resumes
    "leave",      # a node leaves gracefully (LEAVE message) and later starts again
)


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    kind: str
    nodes: tuple[int, ...] = ()
    value: float = 0.0
    groups: tuple[tuple[int, ...], ...] = ()

    def __str__(self) -> str:
        parts = [f"{self.at:8.3f}s {self.kind}"]
        if self.nodes:
            parts.append("nodes=" + ",".join(map(str, self.nodes)))
        if self.groups:
            parts.append("groups=" + "|".join(",".join(map(str, g)) for g in self.groups))
        if self.value:
            parts.append(f"value={self.value:g}")
        return " ".join(parts)


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``"all"`` (or None), ``"none"``, or a comma list of :data:`FAULT_KINDS`."""
    if text is None or text == "all":
        return FAULT_KINDS
    if text == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}")
    return kinds


def make_schedule(rng: random.Random, nodeids: list[int], kinds: tuple[str, ...], start: float,
                  heal: float, token_s: float) -> list[Fault]:
    """Random faults in [start, heal); everything heals at ``heal``.

    Network conditions (loss, dup, reorder, delay) are set once for the window with a
    random strength; discrete faults (crash, partition, ...) are drawn a few times each.
    """
    faults: list[Fault] = []
    span = heal - start
    for kind in ("loss", "dup", "reorder", "delay"):
        if kind in kinds and rng.random() < 0.7:
            strength = {"loss": rng.uniform(0.01, 0.15), "dup": rng.uniform(0.01, 0.2),
                        "reorder": rng.uniform(0.05, 0.4), "delay": rng.uniform(0.001, 0.01)}[kind]
            faults.append(Fault(start + rng.random() * span * 0.3, kind, value=round(strength, 4)))
    discrete = [k for k in kinds if k in ("oneway", "partition", "crash", "wipe", "pause", "leave")]
    n_events = rng.randint(1, 4) if discrete else 0
    for _ in range(n_events):
        kind = rng.choice(discrete)
        at = start + rng.random() * span * 0.8
        if kind == "partition" and len(nodeids) >= 2:
            shuffled = nodeids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(shuffled) - 1)
            groups = (tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:])))
            faults.append(Fault(at, "partition", groups=groups))
            if rng.random() < 0.5:
                faults.append(Fault(min(heal, at + rng.uniform(0.2, 2.0) * token_s * 3), "merge"))
        elif kind == "oneway" and len(nodeids) >= 2:
            a, b = rng.sample(nodeids, 2)
            faults.append(Fault(at, "oneway", nodes=(a, b)))
        elif kind in ("crash", "wipe", "leave"):
            node = rng.choice(nodeids)
            faults.append(Fault(at, kind, nodes=(node,)))
            if rng.random() < 0.6:
                faults.append(Fault(min(heal, at + rng.uniform(0.1, 2.0) * token_s * 2), "restart",
                                    nodes=(node,)))
        elif kind == "pause":
            node = rng.choice(nodeids)
            faults.append(Fault(at, "pause", nodes=(node,), value=round(token_s * rng.uniform(1.1, 3.0), 4)))
    faults.append(Fault(heal, "heal"))
    faults.sort(key=lambda f: f.at)
    return faults
