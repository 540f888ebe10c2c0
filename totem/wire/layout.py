"""Byte layouts of the Totem wire, defined once with construct.

These definitions are the single source of truth for every structure on the wire.
The hot-path codecs in :mod:`totem.wire.srp`, :mod:`totem.wire.pg` and
:mod:`totem.wire.service` do not repeat the layouts: they derive ``struct``
formats from them with :func:`flat_format`, and the test suite checks that both
paths agree on every captured datagram.

Corosync writes every integer in the sender's native byte order, so every layout
exists in a little-endian and a big-endian flavour (:func:`layouts`). A *dialect*
(corosync 3.x today; 2.x and 1.x share the message bodies but differ in the header,
ring id and processor address) is a parameter of :func:`layouts`, not a copy.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from types import SimpleNamespace

from construct import (
    Array,
    Bytes,
    Construct,
    FormatField,
    GreedyBytes,
    Int8ub,
    Int8ul,
    Int16sb,
    Int16sl,
    Int16ub,
    Int16ul,
    Int32sb,
    Int32sl,
    Int32ub,
    Int32ul,
    Int64ub,
    Int64ul,
    Padded,
    Padding,
    Pass,
    Renamed,
    Struct,
    this,
)

MAGIC = 0xC070
"""Totem header magic of corosync 3.x, in the sender's byte order."""
MAGIC_SWAPPED = 0x70C0
"""The magic as read by a receiver of the other byte order."""
VERSION = 3


class MessageType(enum.IntEnum):
    """totemsrp message types (header byte 3), named as corosync names them."""

    orf_token = 0
    mcast = 1
    memb_merge_detect = 2
    memb_join = 3
    memb_commit_token = 4
    token_hold_cancel = 5


class Dialect(enum.Enum):
    """Which corosync generation's framing a layout set describes."""

    V3 = "3.x"
    # 2.x and 1.x differ in the 8-byte header, the 30-byte ring id and the
    # 45/44-byte processor address (see spec totem-wire.md §2.2-2.3). They are
    # expressible as other sub-structures for `layouts`; not implemented yet.


def _ints(byteorder: str) -> SimpleNamespace:
    little = byteorder == "<"
    return SimpleNamespace(
        u8=Int8ul if little else Int8ub,
        u16=Int16ul if little else Int16ub,
        i16=Int16sl if little else Int16sb,
        u32=Int32ul if little else Int32ub,
        i32=Int32sl if little else Int32sb,
        u64=Int64ul if little else Int64ub,
    )


@functools.cache
def layouts(byteorder: str = "<", dialect: Dialect = Dialect.V3) -> SimpleNamespace:
    """All wire structures for one byte order and dialect."""
    if dialect is not Dialect.V3:
        raise NotImplementedError(f"dialect {dialect.value} is not implemented")
    t = _ints(byteorder)

    # -- shared sub-structures (the parts a dialect swaps out) ---------------------
    header = Struct(
        "magic" / t.u16,
        "version" / t.u8,
        "type" / t.u8,
        "encapsulated" / t.u8,
        "nodeid" / t.u32,
        "target_nodeid" / t.u32,
    )
    ring_id = Struct("rep" / t.u32, "seq" / t.u64)
    srp_addr = t.u32

    # -- totemsrp messages (spec totem-wire.md §2.5) ------------------------------
    rtr_item = Struct("ring_id" / ring_id, "seq" / t.u32)
    orf_token_fixed = Struct(
        "header" / header,
        "seq" / t.u32,
        "token_seq" / t.u32,
        "aru" / t.u32,
        "aru_addr" / t.u32,
        "ring_id" / ring_id,
        "backlog" / t.u32,
        "fcc" / t.u32,
        "retrans_flg" / t.i32,
        "rtr_list_entries" / t.i32,
    )
    orf_token = Struct(
        *orf_token_fixed.subcons,
        "rtr_list" / Array(this.rtr_list_entries, rtr_item),
    )
    mcast_fixed = Struct(
        "header" / header,
        "system_from" / srp_addr,
        "seq" / t.u32,
        "this_seqno" / t.i32,
        "ring_id" / ring_id,
        "node_id" / t.u32,
        "guarantee" / t.i32,
    )
    mcast = Struct(*mcast_fixed.subcons, "payload" / GreedyBytes)
    memb_merge_detect = Struct(
        "header" / header,
        "system_from" / srp_addr,
        "ring_id" / ring_id,
    )
    memb_join_fixed = Struct(
        "header" / header,
        "system_from" / srp_addr,
        "proc_list_entries" / t.u32,
        "failed_list_entries" / t.u32,
        "ring_seq" / t.u64,
    )
    memb_join = Struct(
        *memb_join_fixed.subcons,
        "proc_list" / Array(this.proc_list_entries, srp_addr),
        "failed_list" / Array(this.failed_list_entries, srp_addr),
    )
    memb_entry = Struct(
        "ring_id" / ring_id,
        "aru" / t.u32,
        "high_delivered" / t.u32,
        "received_flg" / t.u32,
    )
    memb_commit_token_fixed = Struct(
        "header" / header,
        "token_seq" / t.u32,
        "ring_id" / ring_id,
        "retrans_flg" / t.u32,
        "memb_index" / t.i32,
        "addr_entries" / t.i32,
    )
    memb_commit_token = Struct(
        *memb_commit_token_fixed.subcons,
        "addr" / Array(this.addr_entries, srp_addr),
        "memb_list" / Array(this.addr_entries, memb_entry),
    )
    token_hold_cancel = Struct("header" / header, "ring_id" / ring_id)

    # -- totempg (spec totem-wire.md §3) -----------------------------------------
    pg_frame_fixed = Struct(
        "version" / t.i16,
        "type" / t.i16,
        "fragmented" / t.u8,
        "continuation" / t.u8,
        "msg_count" / t.u16,
    )
    pg_frame = Struct(
        *pg_frame_fixed.subcons,
        "msg_len" / Array(this.msg_count, t.u16),
        "data" / GreedyBytes,
    )
    group_count = t.u16
    group_len = t.u16

    # -- service layer (spec services-wire.md §1.4, §2.1) --------------------------
    # libqb's request header: every member 8-byte aligned, so each i32 is followed
    # by 4 bytes of padding whose content is whatever the sender had there.
    service_header = Struct(
        "id" / t.i32,
        "pad0" / Bytes(4),
        "size" / t.i32,
        "pad1" / Bytes(4),
    )
    sync_barrier = Struct(
        "header" / service_header,
        "ring_id" / ring_id,
        Padding(4),
    )
    sync_service_build = Struct(
        "header" / service_header,
        "ring_id" / ring_id,
        Padding(4),
        "service_list_entries" / t.i32,
        Padding(4),
        "service_list" / Array(128, t.i32),
    )

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, Construct)})


# -- deriving struct formats from the construct definitions --------------------------

_FORMAT_CHARS = set("bBhHiIlLqQ")


@dataclass(frozen=True)
class FlatFormat:
    """A construct Struct of fixed-size integer fields, flattened for ``struct``."""

    fmt: str
    """``struct`` format with byte order prefix and ``x`` for padding."""
    names: tuple[str, ...]
    """Dotted field paths (``header.nodeid``) in wire order, padding excluded."""


def flat_format(con: Construct) -> FlatFormat:
    """Flatten nested Structs of integers (and fixed Bytes/Padding) into one format.

    Raises TypeError if the structure has a variable-size part: only fixed
    prefixes can be flattened, and the hot-path codecs handle lists separately.
    """
    order: list[str] = []
    chars: list[str] = []
    names: list[str] = []

    def walk(c: Construct, prefix: str) -> None:
        if isinstance(c, Renamed):
            name = c.name or ""
            walk(c.subcon, f"{prefix}{name}" if name else prefix.rstrip("."))
            return
        if isinstance(c, Struct):
            for sub in c.subcons:
                if isinstance(sub, Renamed) and sub.name:
                    walk(sub.subcon, f"{prefix}.{sub.name}" if prefix else sub.name)
                else:
                    walk(sub, prefix)
            return
        if isinstance(c, FormatField):
            order.append(c.fmtstr[0])
            if c.fmtstr[1:] not in _FORMAT_CHARS:
                raise TypeError(f"unsupported format {c.fmtstr!r} at {prefix}")
            chars.append(c.fmtstr[1:])
            names.append(prefix)
            return
        if isinstance(c, Array) and isinstance(c.count, int) and isinstance(c.subcon, FormatField):
            order.append(c.subcon.fmtstr[0])
            chars.append(f"{c.count}{c.subcon.fmtstr[1:]}")
            names.extend(f"{prefix}[{i}]" for i in range(c.count))
            return
        size = _fixed_size(c)
        if isinstance(c, Bytes):
            chars.append(f"{size}s")
            names.append(prefix)
            return
        if isinstance(c, Padded) and isinstance(c.subcon, type(Pass)):
            chars.append(f"{size}x")
            return
        raise TypeError(f"cannot flatten {c!r} at {prefix or '<top>'}")

    walk(con, "")
    orders = set(order)
    if len(orders) != 1:
        raise TypeError(f"mixed or missing byte order in {con}")
    return FlatFormat(orders.pop() + "".join(chars), tuple(names))


def _fixed_size(c: Construct) -> int:
    try:
        return c.sizeof()
    except Exception as exc:  # construct raises SizeofError for variable parts
        raise TypeError(f"{c} has no fixed size") from exc
