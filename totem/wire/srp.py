"""The six totemsrp messages of corosync 3.x as Python objects, and their codec.

Parsing (:func:`parse_untrusted`) takes bytes straight from the network and either
returns a message or raises :class:`~totem.wire.errors.WireError`. Building
(``msg.pack()``) is its exact inverse: every field that corosync puts on the wire,
including the ones it leaves uninitialised (``target_nodeid``) and any trailing
bytes, survives a round trip, so a captured datagram rebuilds to identical bytes.

The ``struct`` formats used here are derived from :mod:`totem.wire.layout` at
import time; the field order is asserted against the construct definitions so
the two can never drift apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple, Union

from .errors import WireError
from .layout import MAGIC, MAGIC_SWAPPED, VERSION, MessageType, flat_format, layouts

HEADER_SIZE = 13
MCAST_HEADER_SIZE = 45
RTR_LIST_MAX = 30
"""corosync never puts more retransmission requests than this into a token."""


class RingId(NamedTuple):
    """A ring identifier: the representative's nodeid and the ring sequence number.

    ``str()`` prints it as corosync's logs do (``1.d``: the seq in hex).
    """

    rep: int
    seq: int

    def __str__(self) -> str:
        return f"{self.rep:x}.{self.seq:x}"


class RtrItem(NamedTuple):
    """A retransmission request in the token: message ``seq`` of ring ``ring_id``."""

    ring_id: RingId
    seq: int


class MembEntry(NamedTuple):
    """One member's state from its old ring, as carried in the commit token."""

    ring_id: RingId
    aru: int
    high_delivered: int
    received_flg: int


EMPTY_MEMB_ENTRY = MembEntry(RingId(0, 0), 0, 0, 0)


@dataclass(slots=True)
class OrfToken:
    """The ordering, reliability and flow-control token (type 0)."""

    seq: int
    token_seq: int
    aru: int
    aru_addr: int
    ring_id: RingId
    backlog: int = 0
    fcc: int = 0
    retrans_flg: int = 0
    rtr_list: list[RtrItem] = field(default_factory=list)
    nodeid: int = 0
    target_nodeid: int = 0
    encapsulated: int = 0
    byteorder: str = "<"
    trailing: bytes = b""

    type = MessageType.orf_token

    def pack(self) -> bytes:
        s = _STRUCTS[self.byteorder]
        head = s.orf_token.pack(
            MAGIC, VERSION, 0, self.encapsulated, self.nodeid, self.target_nodeid,
            self.seq, self.token_seq, self.aru, self.aru_addr,
            self.ring_id[0], self.ring_id[1], self.backlog, self.fcc,
            self.retrans_flg, len(self.rtr_list),
        )
        if not self.rtr_list and not self.trailing:
            return head
        rtr = s.rtr_item.pack
        return b"".join([head, *(rtr(r[0][0], r[0][1], r[1]) for r in self.rtr_list), self.trailing])


@dataclass(slots=True)
class Mcast:
    """An ordered message (type 1): a totempg frame, or (encapsulated 1) an old-ring mcast."""

    system_from: int
    seq: int
    ring_id: RingId
    payload: bytes
    this_seqno: int = 0
    encapsulated: int = 2
    node_id: int = 0
    guarantee: int = 0
    nodeid: int = 0
    target_nodeid: int = 0
    byteorder: str = "<"

    type = MessageType.mcast

    ENCAPSULATED = 1
    NORMAL = 2

    def pack(self) -> bytes:
        return _STRUCTS[self.byteorder].mcast.pack(
            MAGIC, VERSION, 1, self.encapsulated, self.nodeid, self.target_nodeid,
            self.system_from, self.seq, self.this_seqno,
            self.ring_id[0], self.ring_id[1], self.node_id, self.guarantee,
        ) + self.payload

    def inner(self) -> "Mcast":
        """The old-ring mcast wrapped in a recovery rebroadcast (encapsulated == 1)."""
        if self.encapsulated != Mcast.ENCAPSULATED:
            raise WireError("mcast is not encapsulated", 4)
        try:
            msg = parse_untrusted(self.payload)
        except WireError as exc:
            raise exc.shifted(MCAST_HEADER_SIZE, "encapsulated message") from None
        if not isinstance(msg, Mcast) or msg.encapsulated != Mcast.NORMAL:
            raise WireError("encapsulated message is not a normal mcast", MCAST_HEADER_SIZE)
        return msg


@dataclass(slots=True)
class MembMergeDetect:
    """Sent by an idle ring's representative so that other rings can merge (type 2)."""

    system_from: int
    ring_id: RingId
    nodeid: int = 0
    target_nodeid: int = 0
    encapsulated: int = 0
    byteorder: str = "<"
    trailing: bytes = b""

    type = MessageType.memb_merge_detect

    def pack(self) -> bytes:
        return _STRUCTS[self.byteorder].memb_merge_detect.pack(
            MAGIC, VERSION, 2, self.encapsulated, self.nodeid, self.target_nodeid,
            self.system_from, self.ring_id[0], self.ring_id[1],
        ) + self.trailing


@dataclass(slots=True)
class MembJoin:
    """A membership proposal (type 3); with header nodeid 0 it is a LEAVE."""

    system_from: int
    proc_list: tuple[int, ...]
    failed_list: tuple[int, ...]
    ring_seq: int
    nodeid: int = 0
    target_nodeid: int = 0
    encapsulated: int = 0
    byteorder: str = "<"
    trailing: bytes = b""

    type = MessageType.memb_join

    @property
    def is_leave(self) -> bool:
        return self.nodeid == 0

    def pack(self) -> bytes:
        o = self.byteorder
        p, f = len(self.proc_list), len(self.failed_list)
        return (
            _STRUCTS[o].memb_join.pack(
                MAGIC, VERSION, 3, self.encapsulated, self.nodeid, self.target_nodeid,
                self.system_from, p, f, self.ring_seq,
            )
            + struct.pack(f"{o}{p + f}I", *self.proc_list, *self.failed_list)
            + self.trailing
        )


@dataclass(slots=True)
class MembCommitToken:
    """The commit token that installs a new ring (type 4)."""

    token_seq: int
    ring_id: RingId
    memb_index: int
    addr: list[int]
    memb_list: list[MembEntry]
    retrans_flg: int = 0
    nodeid: int = 0
    target_nodeid: int = 0
    encapsulated: int = 0
    byteorder: str = "<"
    trailing: bytes = b""

    type = MessageType.memb_commit_token

    def pack(self) -> bytes:
        o = self.byteorder
        s = _STRUCTS[o]
        n = len(self.addr)
        if len(self.memb_list) != n:
            raise ValueError("commit token needs one memb entry per address")
        entry = s.memb_entry.pack
        return b"".join([
            s.memb_commit_token.pack(
                MAGIC, VERSION, 4, self.encapsulated, self.nodeid, self.target_nodeid,
                self.token_seq, self.ring_id[0], self.ring_id[1], self.retrans_flg,
                self.memb_index, n,
            ),
            struct.pack(f"{o}{n}I", *self.addr),
            *(entry(e[0][0], e[0][1], e[1], e[2], e[3]) for e in self.memb_list),
            self.trailing,
        ])


@dataclass(slots=True)
class TokenHoldCancel:
    """Asks the representative to release a held token at once (type 5)."""

    ring_id: RingId
    nodeid: int = 0
    target_nodeid: int = 0
    encapsulated: int = 0
    byteorder: str = "<"
    trailing: bytes = b""

    type = MessageType.token_hold_cancel

    def pack(self) -> bytes:
        return _STRUCTS[self.byteorder].token_hold_cancel.pack(
            MAGIC, VERSION, 5, self.encapsulated, self.nodeid, self.target_nodeid,
            self.ring_id[0], self.ring_id[1],
        ) + self.trailing


Message = Union[OrfToken, Mcast, MembMergeDetect, MembJoin, MembCommitToken, TokenHoldCancel]


# -- struct formats derived from the construct layouts ---------------------------------

class _Structs:
    """Compiled ``struct.Struct`` objects for one byte order."""

    # name of the construct layout -> the field order this module's code assumes
    EXPECTED = {
        "header": ("magic", "version", "type", "encapsulated", "nodeid", "target_nodeid"),
        "orf_token_fixed": ("header.*", "seq", "token_seq", "aru", "aru_addr", "ring_id.rep",
                            "ring_id.seq", "backlog", "fcc", "retrans_flg", "rtr_list_entries"),
        "rtr_item": ("ring_id.rep", "ring_id.seq", "seq"),
        "mcast_fixed": ("header.*", "system_from", "seq", "this_seqno", "ring_id.rep",
                        "ring_id.seq", "node_id", "guarantee"),
        "memb_merge_detect": ("header.*", "system_from", "ring_id.rep", "ring_id.seq"),
        "memb_join_fixed": ("header.*", "system_from", "proc_list_entries",
                            "failed_list_entries", "ring_seq"),
        "memb_commit_token_fixed": ("header.*", "token_seq", "ring_id.rep", "ring_id.seq",
                                    "retrans_flg", "memb_index", "addr_entries"),
        "memb_entry": ("ring_id.rep", "ring_id.seq", "aru", "high_delivered", "received_flg"),
        "token_hold_cancel": ("header.*", "ring_id.rep", "ring_id.seq"),
    }

    def __init__(self, byteorder: str) -> None:
        lay = layouts(byteorder)
        header_names = tuple(f"header.{n}" for n in self.EXPECTED["header"])
        for name, expected in self.EXPECTED.items():
            flat = flat_format(getattr(lay, name))
            want = tuple(
                n for e in expected for n in (header_names if e == "header.*" else (e,))
            )
            if flat.names != want:
                raise AssertionError(f"layout {name} changed: {flat.names} != {want}")
            setattr(self, name.removesuffix("_fixed"), struct.Struct(flat.fmt))
        self.u32 = struct.Struct(byteorder + "I")


_STRUCTS = {"<": _Structs("<"), ">": _Structs(">")}
_LE = _STRUCTS["<"]


# -- parsing -------------------------------------------------------------------------

def byteorder_of(data: bytes) -> str:
    """The sender's byte order, from the magic; WireError if this is no totem 3.x packet."""
    if len(data) < HEADER_SIZE:
        raise WireError(f"datagram of {len(data)} bytes is shorter than the 13-byte header", 0)
    magic = data[0] | data[1] << 8
    if magic == MAGIC:
        order = "<"
    elif magic == MAGIC_SWAPPED:
        order = ">"
    else:
        raise WireError(f"bad magic 0x{magic:04x} ({guess_sender(data)})", 0)
    if data[2] != VERSION:
        raise WireError(f"unsupported totem version {data[2]}", 2)
    return order


def guess_sender(data: bytes) -> str:
    """What kind of sender a non-3.x datagram probably came from (spec totem-wire §1.4)."""
    if data[:2] == b"\xfe\xfe":
        return "probably corosync 2.3/2.4"
    if data[:2] == b"\xff\xff":
        return "probably corosync 2.2"
    if len(data) >= 4 and data[0] <= 5 and data[2:4] in (b"\x22\xff", b"\xff\x22"):
        return "probably unencrypted corosync 1.x or 2.0/2.1"
    if data[:1] == b"\x01":
        return "probably knet"
    return "not a corosync 3.x totem packet"


def parse_untrusted(data: bytes) -> Message:
    """Decode one datagram received from the network.

    Returns a message object or raises WireError saying what is wrong and where.
    """
    order = byteorder_of(data)
    kind = data[3]
    if kind > 5:
        raise WireError(f"unknown message type {kind}", 3)
    try:
        return _PARSERS[kind](data, order, _STRUCTS[order])
    except struct.error as exc:  # pragma: no cover - lengths are checked first
        raise WireError(f"malformed {MessageType(kind).name}: {exc}", 0) from None


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise WireError(f"{what} needs {size} bytes, datagram has {len(data)}", len(data))


def _parse_orf_token(data: bytes, order: str, s: _Structs) -> OrfToken:
    _need(data, 57, "orf_token")
    (_, _, _, enc, nodeid, target, seq, token_seq, aru, aru_addr, rep, rseq,
     backlog, fcc, retrans_flg, n) = s.orf_token.unpack_from(data)
    if n < 0:
        raise WireError(f"negative rtr_list_entries {n}", 53)
    end = 57 + 16 * n
    _need(data, end, f"orf_token with {n} retransmit entries")
    rtr = [RtrItem(RingId(a, b), c) for a, b, c in s.rtr_item.iter_unpack(data[57:end])] if n else []
    return OrfToken(seq, token_seq, aru, aru_addr, RingId(rep, rseq), backlog, fcc,
                    retrans_flg, rtr, nodeid, target, enc, order, data[end:])


def _parse_mcast(data: bytes, order: str, s: _Structs) -> Mcast:
    _need(data, MCAST_HEADER_SIZE, "mcast")
    (_, _, _, enc, nodeid, target, system_from, seq, this_seqno, rep, rseq,
     node_id, guarantee) = s.mcast.unpack_from(data)
    if enc not in (1, 2):
        raise WireError(f"mcast with encapsulated={enc} (expected 1 or 2)", 4)
    return Mcast(system_from, seq, RingId(rep, rseq), data[MCAST_HEADER_SIZE:], this_seqno,
                 enc, node_id, guarantee, nodeid, target, order)


def _parse_merge_detect(data: bytes, order: str, s: _Structs) -> MembMergeDetect:
    _need(data, 29, "memb_merge_detect")
    _, _, _, enc, nodeid, target, system_from, rep, rseq = s.memb_merge_detect.unpack_from(data)
    return MembMergeDetect(system_from, RingId(rep, rseq), nodeid, target, enc, order, data[29:])


def _parse_join(data: bytes, order: str, s: _Structs) -> MembJoin:
    _need(data, 33, "memb_join")
    _, _, _, enc, nodeid, target, system_from, p, f, ring_seq = s.memb_join.unpack_from(data)
    end = 33 + 4 * (p + f)
    _need(data, end, f"memb_join with {p} proc and {f} failed entries")
    ids = struct.unpack_from(f"{order}{p + f}I", data, 33)
    return MembJoin(system_from, ids[:p], ids[p:], ring_seq, nodeid, target, enc, order, data[end:])


def _parse_commit_token(data: bytes, order: str, s: _Structs) -> MembCommitToken:
    _need(data, 41, "memb_commit_token")
    (_, _, _, enc, nodeid, target, token_seq, rep, rseq, retrans_flg, memb_index,
     n) = s.memb_commit_token.unpack_from(data)
    if n < 0:
        raise WireError(f"negative addr_entries {n}", 37)
    end = 41 + 28 * n
    _need(data, end, f"memb_commit_token with {n} members")
    addr = list(struct.unpack_from(f"{order}{n}I", data, 41))
    memb = [MembEntry(RingId(a, b), c, d, e)
            for a, b, c, d, e in s.memb_entry.iter_unpack(data[41 + 4 * n:end])]
    return MembCommitToken(token_seq, RingId(rep, rseq), memb_index, addr, memb, retrans_flg,
                           nodeid, target, enc, order, data[end:])


def _parse_token_hold_cancel(data: bytes, order: str, s: _Structs) -> TokenHoldCancel:
    _need(data, 25, "token_hold_cancel")
    _, _, _, enc, nodeid, target, rep, rseq = s.token_hold_cancel.unpack_from(data)
    return TokenHoldCancel(RingId(rep, rseq), nodeid, target, enc, order, data[25:])


_PARSERS = (_parse_orf_token, _parse_mcast, _parse_merge_detect, _parse_join,
            _parse_commit_token, _parse_token_hold_cancel)
