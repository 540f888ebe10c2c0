"""A seeded virtual network: delay, loss, duplication, reordering, partitions, cut links."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class LinkModel:
    """How datagrams fare on the network; every probability is per datagram and destination."""

    delay: float = 0.0002
    """Base one-way delay in seconds. Keep it small against the (scaled) timers, as a
    LAN is against corosync's: recovery of a large ring must fit well inside ``merge``."""
    jitter: float = 0.0002
    """Extra uniform random delay; with reordering this is what lets datagrams overtake."""
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Probability that a datagram is held back by up to ``reorder_delay``."""
    reorder_delay: float = 0.003


@dataclass
class VirtualNetwork:
    """Decides, from one seeded generator, whether and when each datagram arrives."""

    rng: random.Random
    model: LinkModel = field(default_factory=LinkModel)
    partition: list[frozenset[int]] | None = None
    """Groups that can talk among themselves only; None = everyone connected."""
    cut: set[tuple[int, int]] = field(default_factory=set)
    """One-way links (src, dst) on which everything is lost."""
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "lost": 0, "duplicated": 0,
                                                           "blocked": 0})

    def connected(self, src: int, dst: int) -> bool:
        if src == dst:
            return True
        if (src, dst) in self.cut:
            return False
        if self.partition is None:
            return True
        return any(src in g and dst in g for g in self.partition)

    def arrivals(self, src: int, dst: int) -> list[float]:
        """Delays after which copies of one datagram from src reach dst (empty: lost)."""
        self.stats["sent"] += 1
        if not self.connected(src, dst):
            self.stats["blocked"] += 1
            return []
        m = self.model
        rng = self.rng
        if src != dst and m.loss and rng.random() < m.loss:
            self.stats["lost"] += 1
            return []
        copies = 1
        if src != dst and m.duplicate and rng.random() < m.duplicate:
            copies = 2
            self.stats["duplicated"] += 1
        out = []
        for _ in range(copies):
            d = m.delay + rng.random() * m.jitter
            if m.reorder and rng.random() < m.reorder:
                d += rng.random() * m.reorder_delay
            out.append(d)
        return out
