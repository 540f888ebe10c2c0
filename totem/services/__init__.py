"""The corosync services a node needs to take part in service synchronisation.

Each is pure code: exec messages in, bytes to send and events out. Together they
make real corosync 3.1.7 nodes complete sync with this node and count its vote
(spec services-wire.md §7 (a), (b)); the CPG member table follows §3.4-3.5.
"""

from .base import Service, ServiceLog
from .cmap import CmapService, ShutdownRequested
from .cpg import CpgConfchg, CpgDelivered, CpgService, CpgTotemConfchg
from .quorum import QuorumService
from .votequorum import VotequorumService


def default_services(nodeid: int, expected_votes: int, votes: int = 1) -> list[Service]:
    """The sync-capable services of a corosync 3.1.7 node with votequorum: [0, 2, 3, 5]."""
    return [
        CmapService(nodeid),
        CpgService(nodeid),
        QuorumService(nodeid),
        VotequorumService(nodeid, expected_votes, votes),
    ]


__all__ = [
    "CmapService", "CpgConfchg", "CpgDelivered", "CpgService", "CpgTotemConfchg", "QuorumService",
    "Service", "ServiceLog", "ShutdownRequested", "VotequorumService", "default_services",
]
