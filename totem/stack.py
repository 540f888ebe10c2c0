"""One node's pure protocol stack: the SRP ring with the process-group layer on top.

This is what the simulator runs N times and what the daemon wraps in trio: whole
application messages (addressed to named groups, up to 1 MiB) go in, are packed
and fragmented into totempg frames, ordered by the ring, reassembled per sender
and come out as :class:`MessageReceived` events between configuration changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

from .pg import MESSAGE_SIZE_MAX, PgReceiver, PgSender
from .srp import (
    ConfigurationChanged,
    ConfigurationKind,
    Datagram,
    LogMessage,
    MessageDelivered,
    RingSeqStore,
    SrpConfig,
    SrpCore,
    StateChanged,
)
from .wire import Message, RingId
from .wire.pg import frame_continues


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole application message, delivered in agreed order."""

    sender: int
    groups: tuple[bytes, ...]
    body: bytes
    ring_id: RingId
    """The ring in which the message's last fragment was ordered."""
    first_ring: RingId
    """The ring of its first fragment: differs from ``ring_id`` when the message was
    cut by a configuration change, and then nodes that joined in between cannot
    reassemble it (as with corosync)."""


StackEvent = MessageReceived | ConfigurationChanged | StateChanged | LogMessage


class TotemStack:
    """SRP core + totempg for one node; no I/O, time passed in."""

    def __init__(
        self,
        nodeid: int,
        config: SrpConfig | None = None,
        store: RingSeqStore | None = None,
        *,
        auto_trans_ack: bool = True,
    ) -> None:
        self.config = config or SrpConfig()
        self.nodeid = nodeid
        self.srp = SrpCore(nodeid, self.config, store, on_token_received=self._token_received)
        self.pg_out = PgSender(self.config.frame_max)
        self._frame_room = self.config.frame_max - 10
        self.pg_in = PgReceiver()
        self._ready: deque[StackEvent] = deque()
        self._first_ring: dict[int, RingId] = {}
        self.auto_trans_ack = auto_trans_ack
        """Without a sync engine above, leave the transitional send queue as soon as
        the regular configuration is delivered."""

    # -- driving --------------------------------------------------------------------

    def start(self, now: float) -> None:
        self.srp.start(now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        self.srp.receive_datagram(data, now)

    def receive_message(self, msg: Message, now: float, data: bytes) -> None:
        """A message already parsed from ``data`` (e.g. by the crypto layer's checks)."""
        self.srp.receive(msg, now, data)

    def handle_timer(self, now: float) -> None:
        self.srp.handle_timer(now)

    def get_timer(self) -> float | None:
        return self.srp.get_timer()

    def datagrams_to_send(self) -> list[Datagram]:
        return self.srp.datagrams_to_send()

    def leave(self, now: float) -> None:
        self.srp.leave(now)

    def trans_ack(self) -> None:
        self.srp.trans_ack()

    # -- sending ----------------------------------------------------------------------

    def frames_needed(self, size: int) -> int:
        return size // self._frame_room + 1

    def cost(self, size: int) -> int:
        """Send-queue slots a message body of ``size`` bytes may take: its frames and
        one more (a packed frame it may complete)."""
        return size // self._frame_room + 2

    def fits(self, cost: int) -> bool:
        """Whether messages costing ``cost`` in all (:meth:`cost`) would be accepted by
        :meth:`send` now. O(1): the sync engine asks for every client message."""
        return cost + self.pg_out.pending_frames <= self.srp.avail()

    def room(self, sizes: Sequence[int]) -> bool:
        """Whether messages of these sizes (bodies) would all be accepted by :meth:`send` now."""
        return self.fits(sum(map(self.cost, sizes)))

    def send(self, groups: Sequence[bytes], body: bytes | Sequence[bytes]) -> bool:
        """Queue one message for agreed delivery to ``groups``; False if the queue is full."""
        size = len(body) if isinstance(body, bytes) else sum(len(b) for b in body)
        if size > MESSAGE_SIZE_MAX:
            raise ValueError(f"message of {size} bytes exceeds the 1 MiB limit")
        if not self.fits(self.cost(size)):
            return False
        self.srp.signal_new_message()
        self.pg_out.submit(groups, body)
        self._hand_over()
        return True

    def _hand_over(self) -> None:
        for frame in self.pg_out.take_frames():
            if not self.srp.mcast(frame):
                raise AssertionError("send queue overflow despite the room check")

    def _token_received(self) -> None:
        self.pg_out.flush()
        self._hand_over()

    # -- events -----------------------------------------------------------------------

    def _reassemble(self, ev: MessageDelivered) -> None:
        sender, ring = ev.sender, ev.ring_id
        pg_in = self.pg_in
        was_partial = pg_in.partial_size(sender) > 0
        start = self._first_ring.get(sender, ring) if was_partial else ring
        msgs = pg_in.deliver(sender, ev.payload)
        for i, m in enumerate(msgs):
            self._ready.append(MessageReceived(m.sender, m.groups, m.body, ring, start if i == 0 else ring))
        if pg_in.partial_size(sender) > 0:
            self._first_ring[sender] = start if (was_partial and not msgs) else ring

    def _finish_cut_message(self) -> None:
        """A new ring starts and its sync holds the regular queue back: frames that
        continue a message begun in the old ring go first, so that receivers see that
        message whole instead of cut by the sync messages."""
        queue = self.srp.new_message_queue
        n = 0
        while n < len(queue) and frame_continues(queue[n]):
            n += 1
        if n:
            self.srp.send_first_during_sync(n)

    def next_event(self) -> StackEvent | None:
        """The next event: whole messages, configuration changes, state changes, logs."""
        ready = self._ready
        while not ready:
            ev = self.srp.next_event()
            if ev is None:
                return None
            if isinstance(ev, MessageDelivered):
                self._reassemble(ev)
                continue
            if isinstance(ev, ConfigurationChanged):
                if ev.kind is ConfigurationKind.TRANSITIONAL:
                    for n in ev.left:
                        self.pg_in.forget(n)
                elif self.auto_trans_ack:
                    self.srp.trans_ack()
                else:
                    self._finish_cut_message()
            return ev
        return ready.popleft()
