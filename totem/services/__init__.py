"""The corosync services of a node: cmap, cfg, CPG, quorum and votequorum.

Each is pure code: exec messages and client requests in, bytes to send and events
out. Together they make real corosync 3.1.7 nodes complete sync with this node and
count its vote (spec services-wire.md §7 (a), (b)), and they serve corosync's client
libraries (spec client-ipc.md §2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ..cmapdb import CmapDb, StatsMap
from .base import Service, ServiceLog
from .cfg import CfgService, NodeView
from .cmap import CmapService, ShutdownRequested
from .cpg import CpgConfchg, CpgDelivered, CpgService, CpgTotemConfchg
from .quorum import QuorumService, quorum_services
from .votequorum import VotequorumService


@dataclass
class NodeServices:
    """One node's services, in corosync's service id order, and the shared state the
    daemon keeps up to date (the cmap database, the stats map, the cfg view)."""

    cmap: CmapService
    cfg: CfgService
    cpg: CpgService
    quorum: QuorumService
    votequorum: VotequorumService | None
    db: CmapDb
    stats: StatsMap
    view: NodeView

    @property
    def all(self) -> list[Service]:
        out: list[Service] = [self.cmap, self.cfg, self.cpg, self.quorum]
        if self.votequorum is not None:
            out.append(self.votequorum)
        return out


def node_services(nodeid: int, *, cluster: Any = None, expected_votes: int | None = None, votes: int = 1,
                  clock: Callable[[], float] = time.monotonic) -> NodeServices:
    """The services as corosync 3.1.7 loads them for ``cluster`` (a ClusterConfig), or
    without one for ``expected_votes``/``votes`` (tests, the simulator)."""
    if cluster is not None:
        db, view = CmapDb.from_config(cluster), NodeView.from_config(cluster)
    else:
        db, view = CmapDb(), NodeView()
    stats = StatsMap()
    quorum = quorum_services(nodeid, cluster=cluster, expected_votes=expected_votes, votes=votes, clock=clock)
    vq = next((s for s in quorum if isinstance(s, VotequorumService)), None)
    q = next(s for s in quorum if isinstance(s, QuorumService))
    out = NodeServices(CmapService(nodeid, db=db, stats=stats), CfgService(nodeid, view, db, clock=clock),
                       CpgService(nodeid), q, vq, db, stats, view)
    db.register_services((s.service_id, s.lib_name, s.exec_count) for s in out.all if s.lib_name)
    return out


def default_services(nodeid: int, expected_votes: int, votes: int = 1) -> list[Service]:
    """The services of a node with votequorum and no config file: sync list [0, 2, 3, 5]."""
    return node_services(nodeid, expected_votes=expected_votes, votes=votes).all


__all__ = [
    "CfgService", "CmapService", "CpgConfchg", "CpgDelivered", "CpgService", "CpgTotemConfchg", "NodeServices",
    "QuorumService", "Service", "ServiceLog", "ShutdownRequested", "VotequorumService", "default_services",
    "node_services",
]
