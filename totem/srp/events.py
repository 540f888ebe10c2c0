"""What the SRP core reports (events) and asks its I/O shell to do (datagrams to send)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..wire import RingId


class State(enum.Enum):
    """The membership states, named as corosync names them in its logs."""

    OPERATIONAL = "operational"
    GATHER = "gather"
    COMMIT = "commit"
    RECOVERY = "recovery"


class ConfigurationKind(enum.Enum):
    TRANSITIONAL = 0
    REGULAR = 1


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """A message delivered in agreed order: ``payload`` is the totempg frame of ``sender``.

    ``ring_id`` and ``seq`` name the ring in which it was ordered and its place there.
    """

    sender: int
    payload: bytes
    ring_id: RingId
    seq: int


@dataclass(frozen=True, slots=True)
class ConfigurationChanged:
    """A transitional or regular configuration (extended virtual synchrony)."""

    kind: ConfigurationKind
    ring_id: RingId
    members: tuple[int, ...]
    left: tuple[int, ...]
    joined: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The core entered another membership state (for logs and counters)."""

    old: State
    new: State
    reason: str


Event = MessageDelivered | ConfigurationChanged | StateChanged


@dataclass(frozen=True, slots=True)
class SendTo:
    """Unicast ``data`` to the totem port of node ``nodeid`` (tokens, commit tokens)."""

    nodeid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``data`` to every node of the nodelist, this node included (udpu's multicast)."""

    data: bytes


Datagram = SendTo | Broadcast


class RingSeqStore:
    """Where the ring sequence number survives restarts (corosync's ``ringid_<nodeid>``).

    The default keeps it in memory only; the daemon supplies a file-backed one.
    """

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq

    def load(self) -> int:
        return self.seq

    def save(self, seq: int) -> None:
        self.seq = seq
