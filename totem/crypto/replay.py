"""Replay protection for authenticated totem messages (corosync 3.x dialect).

corosync 2.x's envelope has no sequence number: a datagram recorded on the wire
authenticates forever. Replayed into a later ring, an old mcast or merge_detect makes
every member leave OPERATIONAL and form a new ring, and an old join from a node that
is down makes them try to include it: the ring is disturbed without any key.

The envelope stays as corosync 2.x defines it; instead, once a datagram is authenticated,
its ring id is checked against two facts that only move forward:

* the rings this node has been in before its current one (``history``): no message of
  such a ring can matter any more, since old-ring messages are re-sent inside the new
  ring during recovery;
* per sender, the highest ring seq it has used (``highest``): a node's ring seq never
  decreases (it is kept in the ringid file, and a node without one starts from the
  clock), so a message carrying a lower one is older than one already heard.

Commit tokens carry the ring being formed, so they are only checked against the
history and the current ring's seq. What can get through: replays of a sender's
current ring before anything newer from it has been heard (e.g. just after this node
started); those are exactly what the ring would accept from that sender anyway.
"""

from __future__ import annotations

from collections import OrderedDict

from ..wire import (
    Mcast,
    MembCommitToken,
    MembJoin,
    MembMergeDetect,
    Message,
    OrfToken,
    RingId,
    TokenHoldCancel,
)

HISTORY_MAX = 1024
"""Previous rings remembered (a few per membership change)."""


class StaleFilter:
    """Decides whether an authenticated message is from a ring that is over."""

    def __init__(self) -> None:
        self.current: RingId | None = None
        self.history: OrderedDict[RingId, None] = OrderedDict()
        self.highest: dict[int, int] = {}

    def local_ring(self, ring: RingId) -> None:
        """This node's ring id now (call before :meth:`check`)."""
        if ring != self.current:
            if self.current is not None:
                self.history[self.current] = None
                if len(self.history) > HISTORY_MAX:
                    self.history.popitem(last=False)
            self.history.pop(ring, None)
            self.current = ring

    def check(self, msg: Message) -> str | None:
        """None if ``msg`` may be processed (and remember its sender's ring seq), else why
        it is stale."""
        if isinstance(msg, MembJoin):
            return self._seq(msg.system_from, msg.ring_seq, "join")
        if isinstance(msg, MembCommitToken):
            ring = msg.ring_id
            if ring in self.history:
                return f"commit token of ring {ring}, which is over"
            if self.current is not None and ring.seq < self.current.seq:
                return f"commit token of ring {ring}, older than the current ring {self.current}"
            return None
        if isinstance(msg, (OrfToken, TokenHoldCancel)):
            sender = msg.nodeid
        elif isinstance(msg, (Mcast, MembMergeDetect)):
            sender = msg.system_from
        else:  # pragma: no cover - every message type is handled above
            return None
        ring = msg.ring_id
        if ring in self.history:
            return f"{type(msg).__name__} of ring {ring}, which is over"
        return self._seq(sender, ring.seq, type(msg).__name__)

    def _seq(self, sender: int, seq: int, what: str) -> str | None:
        high = self.highest.get(sender)
        if high is not None and seq < high:
            return (f"{what} of node {sender} with ring seq {seq:x}, lower than {high:x} "
                    "already heard from it")
        if high is None or seq > high:
            self.highest[sender] = seq
        return None
