"""libvotequorum's messages (corosync 3.1.7 ``ipc_votequorum.h``; spec client-ipc.md §2.4).

Layouts are defined once with construct for x86_64. Unlike libquorum's, these
structs mix packed runs of 4-byte fields (GETINFO) with 8-aligned members
(notifications), exactly as the header file declares them. Both directions: the
daemon decodes requests and encodes responses and events; a Python client does the
reverse.

Every reply to a request except GETINFO is the bare 24-byte header with id 0
(``STATUS``). The qdevice requests (5-9) are what corosync-qdevice sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from construct import Array, Bytes, Int32sl, Int32ul, Int64ul, Padding, Struct, this

from quorum.arithmetic import INFO_FLAG_NAMES, NodeState

from ..wire import RingId
from .common import CS_OK, MarRingId, RequestHeader, ResponseHeader, build, parse
from .quorum import ring_id_fields, ring_id_of

QDEVICE_NAME_MAX = 255
"""``VOTEQUORUM_QDEVICE_MAX_NAME_LEN``: bytes of a device name buffer (NUL included)."""


class ReqId(enum.IntEnum):
    GETINFO = 0
    SETEXPECTED = 1
    SETVOTES = 2
    TRACKSTART = 3
    TRACKSTOP = 4
    QDEVICE_REGISTER = 5
    QDEVICE_UNREGISTER = 6
    QDEVICE_UPDATE = 7
    QDEVICE_POLL = 8
    QDEVICE_MASTER_WINS = 9


class ResId(enum.IntEnum):
    STATUS = 0
    GETINFO = 1
    TRACKSTART = 2
    QUORUM_NOTIFICATION = 3
    EXPECTEDVOTES_NOTIFICATION = 4
    NODELIST_NOTIFICATION = 5


# -- layouts ------------------------------------------------------------------------------

Header = RequestHeader
"""TRACKSTOP: the bare 16-byte header."""
GetInfoReq = Struct("header" / RequestHeader, "nodeid" / Int32sl, Padding(4))
SetExpectedReq = Struct("header" / RequestHeader, "expected_votes" / Int32ul, Padding(4))
SetVotesReq = Struct("header" / RequestHeader, "votes" / Int32ul, "nodeid" / Int32sl)
TrackStartReq = Struct("header" / RequestHeader, "context" / Int64ul, "track_flags" / Int32ul, Padding(4))
QdeviceNameReq = Struct("header" / RequestHeader, "name" / Bytes(QDEVICE_NAME_MAX), Padding(1))
"""QDEVICE_REGISTER and QDEVICE_UNREGISTER (272 bytes)."""
QdeviceUpdateReq = Struct("header" / RequestHeader, "oldname" / Bytes(QDEVICE_NAME_MAX),
                          "newname" / Bytes(QDEVICE_NAME_MAX), Padding(2))
QdevicePollReq = Struct("header" / RequestHeader, "name" / Bytes(QDEVICE_NAME_MAX), Padding(1),
                        "cast_vote" / Int32sl, Padding(4), "ring_id" / MarRingId)
QdeviceMasterWinsReq = Struct("header" / RequestHeader, "name" / Bytes(QDEVICE_NAME_MAX), Padding(1),
                              "allow" / Int32ul, Padding(4))

StatusRes = ResponseHeader
GetInfoRes = Struct(
    "header" / ResponseHeader,
    "nodeid" / Int32ul,
    "state" / Int32ul,
    "votes" / Int32ul,
    "expected_votes" / Int32ul,
    "highest_expected" / Int32ul,
    "total_votes" / Int32ul,
    "quorum" / Int32ul,
    "flags" / Int32ul,
    "qdevice_votes" / Int32ul,
    "qdevice_name" / Bytes(QDEVICE_NAME_MAX),
    Padding(5),
)
VotequorumNode = Struct("nodeid" / Int32ul, "state" / Int32ul)
QuorumNotification = Struct(
    "header" / ResponseHeader,
    "quorate" / Int32ul, Padding(4),
    "context" / Int64ul,
    "entries" / Int32ul, Padding(4),
    "nodes" / Array(this.entries, VotequorumNode),
)
NodelistNotification = Struct(
    "header" / ResponseHeader,
    "context" / Int64ul,
    "ring_id" / MarRingId,
    "entries" / Int32ul, Padding(4),
    "nodes" / Array(this.entries, Int32ul),
)
ExpectedVotesNotification = Struct(
    "header" / ResponseHeader,
    "context" / Int64ul,
    "expected_votes" / Int32ul, Padding(4),
)


def flag_names(flags: int) -> list[str]:
    """The names of getinfo ``flags`` (the first seven as corosync-quorumtool prints them)."""
    return [name for bit, name in INFO_FLAG_NAMES if flags & bit]


def state_name(state: int) -> str:
    """``MEMBER``, ``DEAD``, ``LEAVING`` (or the number)."""
    try:
        return NodeState(state).name
    except ValueError:
        return str(state)


def _name(raw: bytes) -> bytes:
    """A C string buffer up to its first NUL."""
    return raw.split(b"\0", 1)[0]


def _name_field(name: bytes) -> bytes:
    if len(name) >= QDEVICE_NAME_MAX:
        raise ValueError(f"qdevice name of {len(name)} bytes is too long")
    return name.ljust(QDEVICE_NAME_MAX, b"\0")


# -- requests (client encodes, daemon decodes) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class QdeviceRequest:
    """A decoded qdevice request (the fields its id does not use are defaults)."""

    name: bytes
    newname: bytes = b""
    cast_vote: int = 0
    ring_id: RingId | None = None
    allow: int = 0


def encode_getinfo(nodeid: int = 0) -> bytes:
    return build(GetInfoReq, ReqId.GETINFO, nodeid=nodeid)


def encode_setexpected(expected_votes: int) -> bytes:
    return build(SetExpectedReq, ReqId.SETEXPECTED, expected_votes=expected_votes)


def encode_setvotes(nodeid: int, votes: int) -> bytes:
    return build(SetVotesReq, ReqId.SETVOTES, votes=votes, nodeid=nodeid)


def encode_trackstart(context: int, track_flags: int) -> bytes:
    return build(TrackStartReq, ReqId.TRACKSTART, context=context, track_flags=track_flags)


def encode_trackstop() -> bytes:
    return build(Header, ReqId.TRACKSTOP)


def encode_qdevice(req: ReqId, name: bytes, *, newname: bytes = b"", cast_vote: int = 0,
                   ring_id: RingId | None = None, allow: int = 0) -> bytes:
    """Any of the qdevice requests (5-9)."""
    if req in (ReqId.QDEVICE_REGISTER, ReqId.QDEVICE_UNREGISTER):
        return build(QdeviceNameReq, req, name=_name_field(name))
    if req == ReqId.QDEVICE_UPDATE:
        return build(QdeviceUpdateReq, req, oldname=_name_field(name), newname=_name_field(newname))
    if req == ReqId.QDEVICE_POLL:
        return build(QdevicePollReq, req, name=_name_field(name), cast_vote=cast_vote,
                             ring_id=ring_id_fields(ring_id))
    if req == ReqId.QDEVICE_MASTER_WINS:
        return build(QdeviceMasterWinsReq, req, name=_name_field(name), allow=allow)
    raise ValueError(f"{req!r} is not a qdevice request")


def decode_getinfo(data: bytes) -> int:
    return int(parse(GetInfoReq, data, "votequorum GETINFO").nodeid)


def decode_setexpected(data: bytes) -> int:
    return int(parse(SetExpectedReq, data, "votequorum SETEXPECTED").expected_votes)


def decode_setvotes(data: bytes) -> tuple[int, int]:
    """(nodeid, votes)."""
    m = parse(SetVotesReq, data, "votequorum SETVOTES")
    return int(m.nodeid), int(m.votes)


def decode_trackstart(data: bytes) -> tuple[int, int]:
    """(context, track_flags)."""
    m = parse(TrackStartReq, data, "votequorum TRACKSTART")
    return int(m.context), int(m.track_flags)


def decode_qdevice(req: int, data: bytes) -> QdeviceRequest:
    what = f"votequorum qdevice request {req}"
    if req in (ReqId.QDEVICE_REGISTER, ReqId.QDEVICE_UNREGISTER):
        return QdeviceRequest(_name(parse(QdeviceNameReq, data, what).name))
    if req == ReqId.QDEVICE_UPDATE:
        m = parse(QdeviceUpdateReq, data, what)
        return QdeviceRequest(_name(m.oldname), newname=_name(m.newname))
    if req == ReqId.QDEVICE_POLL:
        m = parse(QdevicePollReq, data, what)
        return QdeviceRequest(_name(m.name), cast_vote=m.cast_vote, ring_id=ring_id_of(m.ring_id))
    if req == ReqId.QDEVICE_MASTER_WINS:
        m = parse(QdeviceMasterWinsReq, data, what)
        return QdeviceRequest(_name(m.name), allow=m.allow)
    raise ValueError(f"{req!r} is not a qdevice request")


# -- responses and events (daemon encodes, client decodes) ---------------------------------------


@dataclass(frozen=True, slots=True)
class GetInfo:
    """The GETINFO response (``votequorum_info``)."""

    error: int
    nodeid: int = 0
    state: int = 0
    votes: int = 0
    expected_votes: int = 0
    highest_expected: int = 0
    total_votes: int = 0
    quorum: int = 0
    flags: int = 0
    qdevice_votes: int = 0
    qdevice_name: bytes = b""


@dataclass(frozen=True, slots=True)
class Status:
    """A reply that carries only its header (STATUS, or the generic refusal)."""

    res_id: int
    error: int


@dataclass(frozen=True, slots=True)
class QuorumEvent:
    quorate: bool
    context: int
    nodes: tuple[tuple[int, int], ...]
    """(nodeid, state) of every node votequorum knows."""


@dataclass(frozen=True, slots=True)
class NodelistEvent:
    context: int
    ring_id: RingId
    nodes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExpectedVotesEvent:
    context: int
    expected_votes: int


VotequorumMessage = GetInfo | Status | QuorumEvent | NodelistEvent | ExpectedVotesEvent


def encode_status(error: int = CS_OK) -> bytes:
    return build(StatusRes, ResId.STATUS, error)


def encode_getinfo_response(info: GetInfo) -> bytes:
    return build(GetInfoRes, ResId.GETINFO, info.error, nodeid=info.nodeid, state=info.state,
                         votes=info.votes, expected_votes=info.expected_votes,
                         highest_expected=info.highest_expected, total_votes=info.total_votes,
                         quorum=info.quorum, flags=info.flags, qdevice_votes=info.qdevice_votes,
                         qdevice_name=_name_field(info.qdevice_name))


def encode_quorum_notification(quorate: bool, context: int, nodes: tuple[tuple[int, int], ...]) -> bytes:
    return build(QuorumNotification, ResId.QUORUM_NOTIFICATION, CS_OK, quorate=int(quorate),
                         context=context, entries=len(nodes),
                         nodes=[{"nodeid": n, "state": s} for n, s in nodes])


def encode_nodelist_notification(context: int, ring_id: RingId | None, nodes: tuple[int, ...]) -> bytes:
    return build(NodelistNotification, ResId.NODELIST_NOTIFICATION, CS_OK, context=context,
                         ring_id=ring_id_fields(ring_id), entries=len(nodes), nodes=list(nodes))


def encode_expectedvotes_notification(context: int, expected_votes: int) -> bytes:
    return build(ExpectedVotesNotification, ResId.EXPECTEDVOTES_NOTIFICATION, CS_OK,
                         context=context, expected_votes=expected_votes)


def decode_message(data: bytes) -> VotequorumMessage:
    """Any response or event of the votequorum service."""
    head = parse(StatusRes, data, "votequorum response")
    rid, err = head.id, head.error
    if rid == ResId.GETINFO:
        m = parse(GetInfoRes, data, "votequorum GETINFO response")
        return GetInfo(err, m.nodeid, m.state, m.votes, m.expected_votes, m.highest_expected, m.total_votes,
                       m.quorum, m.flags, m.qdevice_votes, _name(m.qdevice_name))
    if rid == ResId.QUORUM_NOTIFICATION:
        m = parse(QuorumNotification, data, "votequorum QUORUM_NOTIFICATION")
        return QuorumEvent(bool(m.quorate), m.context, tuple((n.nodeid, n.state) for n in m.nodes))
    if rid == ResId.NODELIST_NOTIFICATION:
        m = parse(NodelistNotification, data, "votequorum NODELIST_NOTIFICATION")
        return NodelistEvent(m.context, ring_id_of(m.ring_id), tuple(m.nodes))
    if rid == ResId.EXPECTEDVOTES_NOTIFICATION:
        m = parse(ExpectedVotesNotification, data, "votequorum EXPECTEDVOTES_NOTIFICATION")
        return ExpectedVotesEvent(m.context, m.expected_votes)
    return Status(rid, err)
