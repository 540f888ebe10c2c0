"""The process-group layer ("totempg") of corosync 3.1.7 as pure code.

Above Totem SRP, every node multicasts *frames*: several small application
messages packed together, or pieces of a large one (spec totem-wire.md §3,
services-wire.md §1.2-1.3). This module holds both directions, without sockets,
clocks or trio:

* :class:`PgSender` turns application messages (a group envelope plus a body)
  into packed frames for the SRP send queue. Small messages are staged and go
  out together in one frame when the token arrives (:meth:`PgSender.flush`); a
  message that does not fit is cut, and the full frames are ready at once.
* :class:`PgReceiver` takes frames in agreed order, keeps one assembly buffer
  per originating node, and returns complete messages with their groups.

The sender cuts exactly where corosync does, so for the same input it produces
the same frames byte for byte (checked against a capture in the tests). Bytes
from the network never make the receiver raise: bad frames and envelopes are
counted in :attr:`PgReceiver.stats` and dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from .wire.errors import WireError
from .wire.pg import (
    FRAME_HEADER_SIZE,
    Frame,
    group_envelope,
    parse_frame_untrusted,
    parse_groups_untrusted,
)

NET_MTU = 1500
FRAME_MAX = NET_MTU - 90
"""Largest totempg frame with the default netmtu (1410 bytes in 3.x udpu)."""

MESSAGE_SIZE_MAX = 1024 * 1024
"""Largest application message, group envelope included, that a sender accepts."""

ASSEMBLY_MAX = MESSAGE_SIZE_MAX + 64 * 1024
"""Size of corosync's per-sender assembly buffer; a longer message would abort it.
The receiver here drops such a message instead."""

_LEN_SLOT = 2
"""Bytes of a piece's entry in the frame's length table."""


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A complete message as delivered: who sent it, to which groups, and its body."""

    sender: int
    groups: tuple[bytes, ...]
    body: bytes


def is_for(groups: Sequence[bytes], joined: Collection[bytes]) -> bool:
    """Whether a message addressed to ``groups`` concerns a member of the ``joined`` groups."""
    return any(g in joined for g in groups)


class PgSender:
    """Packs and fragments one node's outgoing messages into totempg frames.

    The staging buffer holds the data part of the next frame (``frame_max - 8``
    bytes, its length table included). How a message is placed, as corosync's
    totempg does it, is decided per *segment* of the message: the envelope's
    length table, each group name, then each body part.

    * A segment whose whole length fits while leaving at least its length slot
      and one more byte free is appended to the staging buffer, and the fragment
      counter is set back to 1.
    * Otherwise as much as fits is appended, which fills the frame to exactly
      ``frame_max``, and that frame is emitted at once. If message data remains,
      the frame is marked ``fragmented = F`` (the counter, then incremented,
      never 0) and the next frame gets ``continuation = F``.

    Because the envelope's length table is small, the counter is 1 again at the
    start of nearly every message; it wraps only within a message of more than
    255 frames.
    """

    def __init__(self, frame_max: int = FRAME_MAX, byteorder: str = "<") -> None:
        if not 16 <= frame_max <= 0xFFFF:
            raise ValueError(f"frame_max {frame_max} is outside 16..65535")
        if byteorder not in ("<", ">"):
            raise ValueError(f"byteorder must be '<' or '>', not {byteorder!r}")
        self.frame_max = frame_max
        self.byteorder = byteorder
        self._capacity = frame_max - FRAME_HEADER_SIZE
        """Bytes after the frame header: length table plus data."""
        self._pieces: list[bytes] = []
        """Complete pieces staged for the next frame."""
        self._size = 0
        """Data bytes staged (length table not included)."""
        self._continuation = 0
        """``continuation`` of the next frame: the fragment its first piece completes."""
        self._next_frag = 1
        self._out: list[bytes] = []
        self.frames_emitted = 0
        self.messages_submitted = 0

    # -- state ----------------------------------------------------------------

    @property
    def staged(self) -> int:
        """Pieces waiting for the next :meth:`flush`."""
        return len(self._pieces)

    @property
    def pending_bytes(self) -> int:
        """Data bytes waiting for the next :meth:`flush`."""
        return self._size

    @property
    def pending_frames(self) -> int:
        """Frames ready for :meth:`take_frames`."""
        return len(self._out)

    # -- sending ---------------------------------------------------------------

    def submit(self, groups: Sequence[bytes], body: bytes | Sequence[bytes]) -> None:
        """Queue one message to ``groups``; ``body`` is the service message, whole or in parts."""
        if not groups:
            raise ValueError("a message needs at least one group")
        if len(groups) > 0xFFFF or any(len(g) > 0xFFFF for g in groups):
            raise ValueError("too many groups, or a group name longer than 65535 bytes")
        if isinstance(body, (bytes, bytearray, memoryview)):
            parts = [bytes(body)]
        else:
            parts = [bytes(p) for p in body]
        envelope = group_envelope(tuple(groups), self.byteorder)
        total = len(envelope) + sum(len(p) for p in parts)
        if total > MESSAGE_SIZE_MAX:
            raise ValueError(f"message of {total} bytes exceeds MESSAGE_SIZE_MAX ({MESSAGE_SIZE_MAX})")
        self.messages_submitted += 1

        # room for data in the current frame with one more length slot (the new piece's)
        room = self._capacity - _LEN_SLOT * (len(self._pieces) + 1)
        if self._size + total < room - _LEN_SLOT:
            # Fast path: every segment would be staged whole, so the message is.
            self._pieces.append(envelope + parts[0] if len(parts) == 1 else b"".join([envelope, *parts]))
            self._size += total
            self._next_frag = 1
            return

        table_end = 2 + 2 * len(groups)
        segments = [envelope[:table_end], *(bytes(g) for g in groups), *parts]
        segments = [s for s in segments if s]
        current: list[bytes] = []  # parts of the piece being built from this message
        cut = False
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            length = len(segment)
            offset = 0
            while offset < length:
                # corosync tests the segment's full length even for a remainder
                if length + self._size < room - _LEN_SLOT:
                    rest = segment[offset:] if offset else segment
                    current.append(rest)
                    self._size += len(rest)
                    self._next_frag = 1
                    break
                take = min(length - offset, room - self._size)
                current.append(segment[offset:offset + take])
                offset += take
                if offset < length or index < last:
                    if self._next_frag == 0:
                        self._next_frag = 1
                    fragmented = self._next_frag
                    self._next_frag = (self._next_frag + 1) & 0xFF
                else:
                    fragmented = 0
                self._pieces.append(b"".join(current))
                self._emit(fragmented)
                self._continuation = fragmented
                cut = True
                current = []
                room = self._capacity - _LEN_SLOT
        if current:
            self._pieces.append(b"".join(current))
            if cut:
                # Close the tail of a cut message into its own frame at once, so that a
                # receiver that cannot continue it (it joined after the first fragment)
                # loses only this message, not others packed behind it.
                self._emit(0)
                self._continuation = 0

    def flush(self) -> None:
        """Close the staged pieces into a frame (``fragmented`` 0); nothing if none are staged.

        The node calls this when the token arrives, before taking frames to broadcast.
        """
        if not self._pieces:
            return
        self._emit(0)
        self._continuation = 0

    def take_frames(self) -> list[bytes]:
        """The packed frames ready for the SRP send queue, oldest first; clears the list."""
        out = self._out
        self._out = []
        return out

    def _emit(self, fragmented: int) -> None:
        frame = Frame(self._pieces, fragmented, self._continuation, byteorder=self.byteorder)
        self._out.append(frame.pack())
        self.frames_emitted += 1
        self._pieces = []
        self._size = 0


@dataclass(slots=True)
class _Assembly:
    """Reassembly state of one originating node."""

    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    last_frag: int = 0
    discarding: bool = False
    """Out of sync: frames are dropped until one with ``fragmented`` 0 or 1."""
    skipping: bool = False
    """The message being assembled will be dropped when complete (too long, or its
    start was lost)."""

    def clear(self) -> None:
        self.parts = []
        self.size = 0
        self.last_frag = 0
        self.skipping = False

    def start(self, piece: bytes, fragmented: int, skipping: bool = False) -> None:
        self.parts = [] if skipping else [piece]
        self.size = 0 if skipping else len(piece)
        self.last_frag = fragmented
        self.skipping = skipping


STAT_KEYS = (
    "frames",
    "messages",
    "malformed_frames",
    "malformed_envelopes",
    "desyncs",
    "discarded_frames",
    "oversize",
)


class PgReceiver:
    """Reassembles frames delivered in agreed order into complete group messages.

    Per originating node it keeps an assembly buffer and the ``fragmented`` value
    of that node's previous frame (spec totem-wire.md §3.3). ``stats`` counts:

    * ``frames`` handed in, ``messages`` returned;
    * ``malformed_frames``: frames that do not decode (dropped, state untouched);
    * ``malformed_envelopes``: complete messages whose group envelope does not decode;
    * ``desyncs``: times a frame's ``continuation`` did not match, and
      ``discarded_frames``: frames dropped because of that (the mismatching one,
      those in discard mode, and the one that ends discard mode);
    * ``oversize``: messages longer than :data:`ASSEMBLY_MAX`, dropped.
    """

    def __init__(self, max_message: int = ASSEMBLY_MAX) -> None:
        self.max_message = max_message
        self._assemblies: dict[int, _Assembly] = {}
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    def forget(self, nodeid: int) -> None:
        """Drop the assembly state of a node that left the configuration."""
        self._assemblies.pop(nodeid, None)

    def forget_all(self) -> None:
        self._assemblies.clear()

    def partial_size(self, nodeid: int) -> int:
        """Bytes of an incomplete message from ``nodeid`` held for reassembly."""
        a = self._assemblies.get(nodeid)
        return a.size if a is not None else 0

    def deliver(self, sender: int, frame: bytes, byteorder: str = "<") -> list[GroupMessage]:
        """Process the next frame from ``sender`` (originating nodeid); the messages it completes."""
        stats = self.stats
        stats["frames"] += 1
        try:
            f = parse_frame_untrusted(frame, byteorder)
        except WireError:
            stats["malformed_frames"] += 1
            return []
        items = f.items
        n = len(items)
        fragmented = f.fragmented
        continuation = f.continuation
        if n == 0 and (fragmented or continuation):
            # a fragment marker with no piece to carry it
            stats["malformed_frames"] += 1
            return []

        a = self._assemblies.get(sender)
        if a is None:
            a = self._assemblies[sender] = _Assembly()

        if a.discarding or continuation != a.last_frag:
            if not a.discarding:
                stats["desyncs"] += 1
            stats["discarded_frames"] += 1
            self._resync(a, items, fragmented, continuation)
            return []

        out: list[GroupMessage] = []
        complete = n - 1 if fragmented else n
        for i in range(complete):
            if i == 0 and continuation:
                message = self._complete(a, items[0])
                if message is None:
                    continue
            else:
                message = items[i]
            gm = self._message(sender, message, byteorder)
            if gm is not None:
                out.append(gm)

        if fragmented:
            if n == 1 and continuation:
                self._append(a, items[0])
                a.last_frag = fragmented
            else:
                a.start(items[-1], fragmented)
        else:
            a.clear()
        stats["messages"] += len(out)
        return out

    # -- internals ------------------------------------------------------------

    def _resync(self, a: _Assembly, items: list[bytes], fragmented: int, continuation: int) -> None:
        """Discard mode; the frame that starts it is judged like the ones that follow."""
        if fragmented == 0:
            a.discarding = False
            a.clear()
        elif fragmented == 1:
            # Its last piece starts a message, unless it is also the first piece
            # continuing an earlier one (possible after the counter wrapped): then
            # stay in step with the sender but drop that message when complete.
            a.discarding = False
            a.start(items[-1], 1, skipping=(len(items) == 1 and continuation != 0))
        else:
            a.discarding = True
            a.clear()

    def _append(self, a: _Assembly, piece: bytes) -> None:
        if a.skipping:
            return
        if a.size + len(piece) > self.max_message:
            self.stats["oversize"] += 1
            a.parts = []
            a.size = 0
            a.skipping = True
            return
        a.parts.append(piece)
        a.size += len(piece)

    def _complete(self, a: _Assembly, piece: bytes) -> bytes | None:
        self._append(a, piece)
        if a.skipping:
            return None
        return a.parts[0] if len(a.parts) == 1 else b"".join(a.parts)

    def _message(self, sender: int, message: bytes, byteorder: str) -> GroupMessage | None:
        try:
            groups, body_at = parse_groups_untrusted(message, byteorder)
        except WireError:
            self.stats["malformed_envelopes"] += 1
            return None
        return GroupMessage(sender, groups, message[body_at:])
