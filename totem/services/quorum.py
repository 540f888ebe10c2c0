"""quorum (service 3): no exec messages; in 3.1.x a sync step that only computes
the joined and left lists for its clients, so a node just sends its barrier
(spec services-wire.md §4.7)."""

from __future__ import annotations

from ..wire import RingId
from .base import Service

SERVICE_ID = 3


class QuorumService(Service):
    service_id = SERVICE_ID
    name = "corosync cluster quorum service v0.1"
    subsys = "QUORUM"
    exec_count = 0

    def __init__(self, nodeid: int) -> None:
        super().__init__(nodeid)
        self.members: tuple[int, ...] = ()
        self.old_members: tuple[int, ...] = ()
        self.joined: tuple[int, ...] = ()
        self.left: tuple[int, ...] = ()
        self.ring_id: RingId | None = None

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self.members = tuple(members)
        self.ring_id = ring_id
        # left: old members not in the transitional list, or in it but not in the new ring
        left = [n for n in self.old_members if n not in trans or n not in members]
        # joined: members not in the old list, or in it but also counted as left
        joined = [n for n in members if n not in self.old_members or n in left]
        self.left, self.joined = tuple(left), tuple(joined)
        self._view("Sync members", self.members)
        if joined:
            self._view("Sync joined", self.joined)
        if left:
            self._view("Sync left", self.left)

    def sync_activate(self) -> None:
        self.old_members = self.members

    def _view(self, what: str, nodes: tuple[int, ...]) -> None:
        self.log("notice", f"{what}[{len(nodes)}]:" + "".join(f" {n}" for n in nodes))
