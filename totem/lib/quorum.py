"""libquorum's messages (corosync 3.1.7 ``ipc_quorum.h``; spec client-ipc.md §2.3).

Layouts are defined once with construct, for x86_64 (little endian, members 8-byte
aligned where the header file asks for it). Both directions are here: the daemon
decodes requests and encodes responses and events, a Python client does the
reverse.

The notifications carry their node lists 4 bytes before the end of the fixed part
of the C struct and are sized ``sizeof(struct) + 4·n``, so every one of them ends in
4 bytes that belong to no field (corosync leaves stack bytes there; we write zeros).

:func:`ring_id_fields` and :func:`ring_id_of` are shared with the libvotequorum codecs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from construct import Array, Int32sl, Int32ul, Int64ul, Padding, Struct, this

from ..wire import RingId
from .common import CS_OK, MarRingId, RequestHeader, ResponseHeader, build, parse


class ReqId(enum.IntEnum):
    GETQUORATE = 0
    TRACKSTART = 1
    TRACKSTOP = 2
    GETTYPE = 3
    MODEL_GETTYPE = 4


class ResId(enum.IntEnum):
    GETQUORATE = 0
    TRACKSTART = 1
    TRACKSTOP = 2
    NOTIFICATION = 3
    GETTYPE = 4
    MODEL_GETTYPE = 5
    V1_QUORUM_NOTIFICATION = 6
    V1_NODELIST_NOTIFICATION = 7


class Model(enum.IntEnum):
    """The model a client initialised with (``quorum_initialize`` is V0)."""

    V0 = 0
    V1 = 1


QUORUM_FREE = 0
"""GETTYPE: no quorum provider configured (the node is always quorate)."""
QUORUM_SET = 1
"""GETTYPE: a quorum provider (votequorum) decides; Pacemaker requires this."""


# -- layouts ------------------------------------------------------------------------------

Header = RequestHeader
"""GETQUORATE, TRACKSTOP, GETTYPE: the bare 16-byte header."""
TrackStartReq = Struct("header" / RequestHeader, "track_flags" / Int32ul, Padding(4))
ModelGetTypeReq = Struct("header" / RequestHeader, "model" / Int32ul, Padding(4))

StatusRes = ResponseHeader
"""TRACKSTART, TRACKSTOP: the bare 24-byte header."""
QuorateRes = Struct("header" / ResponseHeader, "quorate" / Int32ul, Padding(4))
TypeRes = Struct("header" / ResponseHeader, "quorum_type" / Int32ul, Padding(4))
"""GETTYPE and MODEL_GETTYPE."""
NotificationV0 = Struct(
    "header" / ResponseHeader,
    "quorate" / Int32sl, Padding(4),
    "ring_seq" / Int64ul,
    "entries" / Int32ul,
    "view_list" / Array(this.entries, Int32ul),
    Padding(4),
)
QuorumNotificationV1 = Struct(
    "header" / ResponseHeader,
    "quorate" / Int32sl, Padding(4),
    "ring_id" / MarRingId,
    "entries" / Int32ul,
    "view_list" / Array(this.entries, Int32ul),
    Padding(4),
)
NodelistNotificationV1 = Struct(
    "header" / ResponseHeader,
    "ring_id" / MarRingId,
    "member_entries" / Int32ul, Padding(4),
    "joined_entries" / Int32ul, Padding(4),
    "left_entries" / Int32ul,
    "members" / Array(this.member_entries, Int32ul),
    "joined" / Array(this.joined_entries, Int32ul),
    "left" / Array(this.left_entries, Int32ul),
    Padding(4),
)


# -- shared helpers -------------------------------------------------------------------------

def ring_id_fields(ring_id: RingId | None) -> dict[str, int]:
    return {"nodeid": ring_id.rep if ring_id else 0, "seq": ring_id.seq if ring_id else 0}


def ring_id_of(c: Any) -> RingId:
    return RingId(c.nodeid, c.seq)


# -- requests (client encodes, daemon decodes) ---------------------------------------------------


def encode_request(req: ReqId) -> bytes:
    """GETQUORATE, TRACKSTOP or GETTYPE."""
    return build(Header, req)


def encode_trackstart(track_flags: int) -> bytes:
    return build(TrackStartReq, ReqId.TRACKSTART, track_flags=track_flags)


def encode_model_gettype(model: int) -> bytes:
    return build(ModelGetTypeReq, ReqId.MODEL_GETTYPE, model=model)


def decode_trackstart(data: bytes) -> int:
    """The track flags of a TRACKSTART."""
    return int(parse(TrackStartReq, data, "quorum TRACKSTART").track_flags)


def decode_model_gettype(data: bytes) -> int:
    return int(parse(ModelGetTypeReq, data, "quorum MODEL_GETTYPE").model)


# -- responses and events (daemon encodes, client decodes) ---------------------------------------


def encode_status(res: ResId, error: int = CS_OK) -> bytes:
    """TRACKSTART / TRACKSTOP responses: the header alone."""
    return build(StatusRes, res, error)


def encode_getquorate(quorate: bool, error: int = CS_OK) -> bytes:
    return build(QuorateRes, ResId.GETQUORATE, error, quorate=int(quorate))


def encode_type(res: ResId, quorum_type: int, error: int = CS_OK) -> bytes:
    """GETTYPE or MODEL_GETTYPE response."""
    return build(TypeRes, res, error, quorum_type=quorum_type)


def encode_notification_v0(quorate: bool, ring_seq: int, members: tuple[int, ...]) -> bytes:
    return build(NotificationV0, ResId.NOTIFICATION, CS_OK, quorate=int(quorate),
                         ring_seq=ring_seq, entries=len(members), view_list=list(members))


def encode_quorum_notification_v1(quorate: bool, ring_id: RingId | None, members: tuple[int, ...]) -> bytes:
    return build(QuorumNotificationV1, ResId.V1_QUORUM_NOTIFICATION, CS_OK, quorate=int(quorate),
                         ring_id=ring_id_fields(ring_id), entries=len(members), view_list=list(members))


def encode_nodelist_notification_v1(ring_id: RingId | None, members: tuple[int, ...],
                                    joined: tuple[int, ...] = (), left: tuple[int, ...] = ()) -> bytes:
    return build(NodelistNotificationV1, ResId.V1_NODELIST_NOTIFICATION, CS_OK,
                         ring_id=ring_id_fields(ring_id), member_entries=len(members),
                         joined_entries=len(joined), left_entries=len(left), members=list(members),
                         joined=list(joined), left=list(left))


@dataclass(frozen=True, slots=True)
class Status:
    """A response that carries only its header (or the generic refusal, id 0)."""

    res_id: int
    error: int


@dataclass(frozen=True, slots=True)
class Quorate:
    error: int
    quorate: bool


@dataclass(frozen=True, slots=True)
class QuorumType:
    res_id: int
    error: int
    quorum_type: int


@dataclass(frozen=True, slots=True)
class Notification:
    """V0 NOTIFICATION (``ring_id.rep`` is 0: V0 carries the seq only) or V1 QUORUM."""

    quorate: bool
    ring_id: RingId
    members: tuple[int, ...]
    v1: bool


@dataclass(frozen=True, slots=True)
class NodelistNotification:
    ring_id: RingId
    members: tuple[int, ...]
    joined: tuple[int, ...]
    left: tuple[int, ...]


QuorumMessage = Status | Quorate | QuorumType | Notification | NodelistNotification


def decode_message(data: bytes) -> QuorumMessage:
    """Any response or event of the quorum service."""
    head = parse(StatusRes, data, "quorum response")
    rid, err = head.id, head.error
    if rid == ResId.GETQUORATE and len(data) >= QuorateRes.sizeof():
        return Quorate(err, bool(parse(QuorateRes, data, "GETQUORATE").quorate))
    if rid in (ResId.GETTYPE, ResId.MODEL_GETTYPE) and len(data) >= TypeRes.sizeof():
        return QuorumType(rid, err, parse(TypeRes, data, "GETTYPE").quorum_type)
    if rid == ResId.NOTIFICATION:
        m = parse(NotificationV0, data, "NOTIFICATION")
        return Notification(bool(m.quorate), RingId(0, m.ring_seq), tuple(m.view_list), False)
    if rid == ResId.V1_QUORUM_NOTIFICATION:
        m = parse(QuorumNotificationV1, data, "V1 QUORUM_NOTIFICATION")
        return Notification(bool(m.quorate), ring_id_of(m.ring_id), tuple(m.view_list), True)
    if rid == ResId.V1_NODELIST_NOTIFICATION:
        m = parse(NodelistNotificationV1, data, "V1 NODELIST_NOTIFICATION")
        return NodelistNotification(ring_id_of(m.ring_id), tuple(m.members), tuple(m.joined), tuple(m.left))
    return Status(rid, err)
