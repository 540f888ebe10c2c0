"""totempg framing inside an mcast payload, and the group envelope of each message.

A frame packs several messages (or pieces of a large one) into one mcast:
an 8-byte header, a u16 length per piece, then the pieces back to back
(spec totem-wire.md §3). Each complete message starts with a group envelope
naming the totempg groups it is for (``a`` for services, ``sync`` for the sync
engine).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import WireError
from .layout import flat_format, layouts

FRAME_HEADER_SIZE = 8

GROUP_A = b"a"
"""The group of every service ("exec") message."""
GROUP_SYNC = b"sync"
"""The group of the service synchronisation protocol."""


@dataclass(slots=True)
class Frame:
    """One totempg frame: pieces of messages and the fragmentation markers.

    ``fragmented`` != 0: the last piece is the start of a message that continues
    in the sender's next frame, which carries ``continuation`` equal to it.
    """

    items: list[bytes] = field(default_factory=list)
    fragmented: int = 0
    continuation: int = 0
    version: int = 0
    type: int = 0
    byteorder: str = "<"

    @property
    def lengths(self) -> list[int]:
        return [len(i) for i in self.items]

    def pack(self) -> bytes:
        o = self.byteorder
        n = len(self.items)
        return b"".join([
            _FRAME[o].pack(self.version, self.type, self.fragmented, self.continuation, n),
            struct.pack(f"{o}{n}H", *(len(i) for i in self.items)),
            *self.items,
        ])


def _frame_struct(order: str) -> struct.Struct:
    flat = flat_format(layouts(order).pg_frame_fixed)
    assert flat.names == ("version", "type", "fragmented", "continuation", "msg_count"), flat.names
    return struct.Struct(flat.fmt)


_FRAME = {"<": _frame_struct("<"), ">": _frame_struct(">")}


def frame_continues(data: bytes, byteorder: str = "<") -> bool:
    """Whether a frame (one we built, so well formed) starts with the rest of a message
    whose beginning was in the sender's previous frame."""
    return _FRAME[byteorder].unpack_from(data)[3] != 0


def frame_size(lengths: list[int]) -> int:
    """Bytes a frame with pieces of these lengths occupies."""
    return FRAME_HEADER_SIZE + 2 * len(lengths) + sum(lengths)


def parse_frame_untrusted(data: bytes, byteorder: str = "<") -> Frame:
    """Decode a totempg frame; the frame must fill ``data`` exactly, as corosync requires."""
    if len(data) < FRAME_HEADER_SIZE:
        raise WireError(f"totempg frame of {len(data)} bytes is shorter than its 8-byte header", 0)
    version, kind, frag, cont, n = _FRAME[byteorder].unpack_from(data)
    table_end = FRAME_HEADER_SIZE + 2 * n
    if len(data) < table_end:
        raise WireError(f"totempg frame declares {n} pieces but has no room for their lengths", 6)
    lengths = struct.unpack_from(f"{byteorder}{n}H", data, FRAME_HEADER_SIZE)
    total = table_end + sum(lengths)
    if total != len(data):
        raise WireError(
            f"totempg frame length {len(data)} does not match its header (8 + 2*{n} + {sum(lengths)} = {total})",
            FRAME_HEADER_SIZE,
        )
    items = []
    pos = table_end
    for ln in lengths:
        items.append(data[pos:pos + ln])
        pos += ln
    return Frame(items, frag, cont, version, kind, byteorder)


def parse_groups_untrusted(message: bytes, byteorder: str = "<") -> tuple[tuple[bytes, ...], int]:
    """Decode the group envelope of a complete message: (group names, offset of the body)."""
    if len(message) < 2:
        raise WireError("message too short for its group count", 0)
    (n,) = struct.unpack_from(f"{byteorder}H", message)
    names_at = 2 + 2 * n
    if len(message) < names_at:
        raise WireError(f"message declares {n} groups but has no room for their lengths", 0)
    lengths = struct.unpack_from(f"{byteorder}{n}H", message, 2)
    body_at = names_at + sum(lengths)
    if len(message) < body_at:
        raise WireError(f"group names need {body_at} bytes, message has {len(message)}", names_at)
    names = []
    pos = names_at
    for ln in lengths:
        names.append(message[pos:pos + ln])
        pos += ln
    return tuple(names), body_at


def group_envelope(groups: tuple[bytes, ...] | list[bytes], byteorder: str = "<") -> bytes:
    """The envelope that addresses a message to these groups."""
    n = len(groups)
    return struct.pack(f"{byteorder}{n + 1}H", n, *(len(g) for g in groups)) + b"".join(groups)


ENVELOPE_A = group_envelope([GROUP_A])
ENVELOPE_SYNC = group_envelope([GROUP_SYNC])
