"""The libcpg protocol of corosync 3.1.7: requests, responses and events (spec
client-ipc.md §2.2), for both ends of the connection.

The daemon's CPG service parses requests and packs responses and events; a Python
client packs requests and parses responses and events. Every message is a
dataclass with ``pack()`` (or a small function for one-field messages) and a
``parse_*_untrusted`` function that raises only :class:`~totem.wire.errors.WireError`.

Layouts are defined once with construct below (x86_64: every member 8-byte aligned,
padding sent as zeros and never read); the codecs derive their ``struct`` formats
from them with :func:`~totem.wire.layout.flat_format`. Two oddities of libcpg are
kept: MCAST and PARTIAL_MCAST requests start with the 24-byte *response* header, and
a TOTEM_CONFCHG event is sized ``48 + 4n`` although its node ids start at byte 44.

Group names (``mar_cpg_name_t``) keep every byte the sender put in them, the 4
padding bytes after ``length`` and the buffer after the name included, because
corosync copies names whole from a JOIN request into the PROCJOIN it multicasts
and from exec messages into the events it sends.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from construct import Array, Bytes, Construct, Int32ul, Int64ul, Padding, Struct

from ..wire import RingId
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .common import (
    CS_OK,
    IPC_REQUEST_SIZE,
    REQUEST_HEADER_SIZE,
    RESPONSE_HEADER_SIZE,
    MarRingId,
    RequestHeader,
    ResponseHeader,
    parse_response_header_untrusted,
    request_header,
    response_header,
)

CPG_MAX_NAME_LENGTH = 128
"""Bytes of a group name buffer; a JOIN with a longer ``length`` is NAME_TOO_LONG."""
MEMBERSHIP_MAX = 384
"""Entries of the MEMBERSHIP response's fixed array (``PROCESSOR_COUNT_MAX``)."""
FRAGMENT_SIZE = IPC_REQUEST_SIZE - 1024
"""libcpg sends a multicast larger than this as PARTIAL_MCAST fragments of this size."""
JOIN_FLAG_INITIAL_TOTEM_CONF = 1
"""JOIN flags bit 0 (``CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF``)."""


class CpgRequestId(enum.IntEnum):
    """``req_cpg_types``: the request ids a client sends."""

    JOIN = 0
    LEAVE = 1
    MCAST = 2
    MEMBERSHIP = 3
    LOCAL_GET = 4
    ITERATIONINITIALIZE = 5
    ITERATIONNEXT = 6
    ITERATIONFINALIZE = 7
    FINALIZE = 8
    ZC_ALLOC = 9
    ZC_FREE = 10
    ZC_EXECUTE = 11
    PARTIAL_MCAST = 12


class CpgResponseId(enum.IntEnum):
    """``res_cpg_types``: ids of responses and events."""

    JOIN = 0
    LEAVE = 1
    MCAST = 2
    MEMBERSHIP = 3
    CONFCHG_CALLBACK = 4
    DELIVER_CALLBACK = 5
    FLOW_CONTROL_STATE_SET = 6
    LOCAL_GET = 7
    FLOWCONTROL_CALLBACK = 8
    ITERATIONINITIALIZE = 9
    ITERATIONNEXT = 10
    ITERATIONFINALIZE = 11
    FINALIZE = 12
    TOTEM_CONFCHG_CALLBACK = 13
    ZC_ALLOC = 14
    ZC_FREE = 15
    ZC_EXECUTE = 16
    PARTIAL_DELIVER_CALLBACK = 17
    PARTIAL_SEND = 18


class CpgReason(enum.IntEnum):
    """Why a process is in a confchg's left or joined list (also PROCJOIN/PROCLEAVE)."""

    UNDEFINED = 0
    JOIN = 1
    LEAVE = 2
    NODEDOWN = 3
    NODEUP = 4
    PROCDOWN = 5


class IterationType(enum.IntEnum):
    NAME_ONLY = 1
    ONE_GROUP = 2
    ALL = 3


class PartialType(enum.IntEnum):
    FIRST = 1
    CONTINUED = 2
    LAST = 3


class Guarantee(enum.IntEnum):
    """Requested delivery guarantee; corosync 3.1.7 delivers everything agreed."""

    UNORDERED = 0
    FIFO = 1
    AGREED = 2
    SAFE = 3


@dataclass(frozen=True, slots=True, eq=False)
class CpgName:
    """A group name as on the wire (``mar_cpg_name_t``): equal by length and name bytes."""

    length: int
    value: bytes = bytes(CPG_MAX_NAME_LENGTH)
    """The whole 128-byte buffer; bytes after ``length`` are whatever the sender had."""
    pad: bytes = bytes(4)

    @classmethod
    def of(cls, name: bytes) -> "CpgName":
        if len(name) > CPG_MAX_NAME_LENGTH:
            raise ValueError(f"CPG group names are at most {CPG_MAX_NAME_LENGTH} bytes")
        return cls(len(name), name.ljust(CPG_MAX_NAME_LENGTH, b"\0"))

    @property
    def name(self) -> bytes:
        return self.value[:self.length]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CpgName) and other.length == self.length and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"CpgName({self.name!r})"

    def printable(self) -> str:
        """The name as corosync logs it (non-printable bytes as \\xNN)."""
        out = []
        for b in self.name:
            c = chr(b)
            if c == "\\":
                out.append("\\\\")
            elif 0x20 <= b < 0x7F:
                out.append(c)
            else:
                out.append(f"\\x{b:02X}")
        return "".join(out)


Address = tuple[int, int, int]
"""(nodeid, pid, reason), as ``mar_cpg_address_t``."""
Member = tuple[int, int]
"""(nodeid, pid) of a group member."""


# -- layouts ------------------------------------------------------------------------------

CpgNameLayout = Struct("length" / Int32ul, "pad" / Bytes(4), "value" / Bytes(CPG_MAX_NAME_LENGTH))
"""``mar_cpg_name_t`` with its padding kept (136 bytes)."""
CpgAddressLayout = Struct("nodeid" / Int32ul, Padding(4), "pid" / Int32ul, Padding(4), "reason" / Int32ul, Padding(4))
"""``mar_cpg_address_t`` (24 bytes)."""


def _u32(name: str) -> tuple[Construct, Construct]:
    """An aligned ``mar_uint32_t`` member: 4 bytes, then 4 of padding."""
    return name / Int32ul, Padding(4)


ReqJoin = Struct("header" / RequestHeader, "group_name" / CpgNameLayout, *_u32("pid"), *_u32("flags"))
ReqLeave = Struct("header" / RequestHeader, "group_name" / CpgNameLayout, *_u32("pid"))
ReqMcast = Struct("header" / ResponseHeader, *_u32("guarantee"), *_u32("msglen"))
"""Then ``msglen`` bytes of message."""
ReqMembership = Struct("header" / RequestHeader, "group_name" / CpgNameLayout)
ReqIterationInitialize = Struct("header" / RequestHeader, "group_name" / CpgNameLayout, *_u32("iteration_type"))
ReqIterationHandle = Struct("header" / RequestHeader, "iteration_handle" / Int64ul)
"""ITERATIONNEXT and ITERATIONFINALIZE."""
ReqZcAlloc = Struct("header" / RequestHeader, "map_size" / Int64ul, "path_to_file" / Bytes(128))
ReqZcFree = Struct("header" / RequestHeader, "map_size" / Int64ul, "server_address" / Int64ul)
ReqZcExecute = Struct("header" / RequestHeader, "server_address" / Int64ul)
ReqPartialMcast = Struct("header" / ResponseHeader, *_u32("guarantee"), *_u32("msglen"), *_u32("fraglen"),
                         *_u32("type"))
"""Then ``fraglen`` bytes of fragment."""

ResMembership = Struct("header" / ResponseHeader, *_u32("member_count"),
                       "member_list" / Array(MEMBERSHIP_MAX, CpgAddressLayout))
ResMembershipFixed = Struct("header" / ResponseHeader, *_u32("member_count"))
ResLocalGet = Struct("header" / ResponseHeader, *_u32("local_nodeid"))
ResIterationInitialize = Struct("header" / ResponseHeader, "iteration_handle" / Int64ul)
ResIterationNext = Struct("header" / ResponseHeader, "group" / CpgNameLayout, "nodeid" / Int32ul, "pid" / Int32ul)
"""``mar_cpg_iteration_description_t`` is not aligned: nodeid @160, pid @164."""

EvConfchg = Struct("header" / ResponseHeader, "group_name" / CpgNameLayout, *_u32("member_list_entries"),
                   *_u32("joined_list_entries"), *_u32("left_list_entries"))
"""Then members, **left**, joined: ``CpgAddressLayout`` each."""
EvDeliver = Struct("header" / ResponseHeader, "group_name" / CpgNameLayout, *_u32("msglen"), *_u32("nodeid"),
                   *_u32("pid"))
EvTotemConfchg = Struct("header" / ResponseHeader, "ring_id" / MarRingId, "member_list_entries" / Int32ul)
"""Then u32 node ids from byte 44; the event is sized 48 + 4n (the C struct's size)."""
EvPartialDeliver = Struct("header" / ResponseHeader, "group_name" / CpgNameLayout, *_u32("msglen"), *_u32("fraglen"),
                          *_u32("nodeid"), *_u32("pid"), *_u32("type"))
EvFlowControl = Struct("header" / ResponseHeader, *_u32("flow_control_state"))

_HDR = ("header.id", "header.size")
_RHDR = _HDR + ("header.error",)
_NAME = ("group_name.length", "group_name.pad", "group_name.value")


def _compile(con: Construct, names: tuple[str, ...], size: int) -> struct.Struct:
    """The ``struct`` of a layout, checked against the field order the codec assumes."""
    flat = flat_format(con)
    if flat.names != names:
        raise AssertionError(f"layout fields {flat.names} != {names}")
    s = struct.Struct(flat.fmt)
    if s.size != size:
        raise AssertionError(f"layout size {s.size} != {size}")
    return s


_JOIN = _compile(ReqJoin, _HDR + _NAME + ("pid", "flags"), 168)
_LEAVE = _compile(ReqLeave, _HDR + _NAME + ("pid",), 160)
_MCAST = _compile(ReqMcast, _RHDR + ("guarantee", "msglen"), 40)
_MEMBERSHIP_REQ = _compile(ReqMembership, _HDR + _NAME, 152)
_ITER_INIT = _compile(ReqIterationInitialize, _HDR + _NAME + ("iteration_type",), 160)
_ITER_HANDLE = _compile(ReqIterationHandle, _HDR + ("iteration_handle",), 24)
_ZC_ALLOC = _compile(ReqZcAlloc, _HDR + ("map_size", "path_to_file"), 152)
_ZC_FREE = _compile(ReqZcFree, _HDR + ("map_size", "server_address"), 32)
_ZC_EXECUTE = _compile(ReqZcExecute, _HDR + ("server_address",), 24)
_PARTIAL = _compile(ReqPartialMcast, _RHDR + ("guarantee", "msglen", "fraglen", "type"), 56)
_MEMBERSHIP_RES = _compile(ResMembershipFixed, _RHDR + ("member_count",), 32)
_ADDRESS = _compile(CpgAddressLayout, ("nodeid", "pid", "reason"), 24)
_LOCAL_GET = _compile(ResLocalGet, _RHDR + ("local_nodeid",), 32)
_ITER_INIT_RES = _compile(ResIterationInitialize, _RHDR + ("iteration_handle",), 32)
_ITER_NEXT_RES = _compile(ResIterationNext, _RHDR + ("group.length", "group.pad", "group.value", "nodeid", "pid"),
                          168)
_CONFCHG = _compile(EvConfchg, _RHDR + _NAME + ("member_list_entries", "joined_list_entries",
                                                "left_list_entries"), 184)
_DELIVER = _compile(EvDeliver, _RHDR + _NAME + ("msglen", "nodeid", "pid"), 184)
_TOTEM = _compile(EvTotemConfchg, _RHDR + ("ring_id.nodeid", "ring_id.seq", "member_list_entries"), 44)
_PARTIAL_DELIVER = _compile(EvPartialDeliver, _RHDR + _NAME + ("msglen", "fraglen", "nodeid", "pid", "type"), 200)
_FLOW = _compile(EvFlowControl, _RHDR + ("flow_control_state",), 32)

MEMBERSHIP_RESPONSE_SIZE = _MEMBERSHIP_RES.size + MEMBERSHIP_MAX * _ADDRESS.size
assert MEMBERSHIP_RESPONSE_SIZE == ResMembership.sizeof() == 9248
TOTEM_CONFCHG_SIZE = 48
"""``sizeof(struct res_lib_cpg_totem_confchg_callback)``: the event is this + 4 per node."""
EVENT_SIZE_MAX = IPC_REQUEST_SIZE
"""libcpg receives events into a buffer of this size (``IPC_DISPATCH_SIZE``)."""


# -- helpers ------------------------------------------------------------------------------


def _fields(g: CpgName) -> tuple[int, bytes, bytes]:
    return g.length, g.pad, g.value


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise WireError(f"CPG {what} needs {size} bytes, has {len(data)}", len(data))


def _name_untrusted(length: int, pad: bytes, value: bytes, offset: int) -> CpgName:
    """A name received from the daemon: its length must fit its buffer."""
    if length > CPG_MAX_NAME_LENGTH:
        raise WireError(f"CPG group name length {length} exceeds {CPG_MAX_NAME_LENGTH}", offset)
    return CpgName(length, value, pad)


def _check_id(got: int, want: int, what: str) -> None:
    if got != want:
        raise WireError(f"CPG {what}: message id {got}, expected {want}", 0)


# -- requests (client -> daemon) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group: CpgName
    """The name as sent: its ``length`` may exceed 128 (the daemon answers NAME_TOO_LONG)."""
    pid: int
    flags: int = 0

    def pack(self) -> bytes:
        return _JOIN.pack(CpgRequestId.JOIN, _JOIN.size, *_fields(self.group), self.pid, self.flags)


def parse_join_untrusted(data: bytes) -> JoinRequest:
    _need(data, _JOIN.size, "JOIN")
    _, _, length, pad, value, pid, flags = _JOIN.unpack_from(data)
    return JoinRequest(CpgName(length, value, pad), pid, flags)


@dataclass(frozen=True, slots=True)
class LeaveRequest:
    group: CpgName
    pid: int

    def pack(self) -> bytes:
        return _LEAVE.pack(CpgRequestId.LEAVE, _LEAVE.size, *_fields(self.group), self.pid)


def parse_leave_untrusted(data: bytes) -> LeaveRequest:
    _need(data, _LEAVE.size, "LEAVE")
    _, _, length, pad, value, pid = _LEAVE.unpack_from(data)
    return LeaveRequest(CpgName(length, value, pad), pid)


@dataclass(frozen=True, slots=True)
class McastRequest:
    """MCAST: no response is sent for it."""

    data: bytes
    guarantee: int = Guarantee.AGREED

    def pack(self) -> bytes:
        size = _MCAST.size + len(self.data)
        return _MCAST.pack(CpgRequestId.MCAST, size, 0, self.guarantee, len(self.data)) + self.data


def parse_mcast_untrusted(data: bytes) -> McastRequest:
    """``msglen`` bytes of message must follow the 40-byte fixed part (more are ignored)."""
    _need(data, _MCAST.size, "MCAST")
    _, _, _, guarantee, msglen = _MCAST.unpack_from(data)
    if _MCAST.size + msglen > len(data):
        raise WireError(f"CPG MCAST msglen {msglen} exceeds the {len(data) - _MCAST.size} bytes present", 32)
    return McastRequest(data[_MCAST.size:_MCAST.size + msglen], guarantee)


@dataclass(frozen=True, slots=True)
class PartialMcastRequest:
    """One fragment of a multicast larger than :data:`FRAGMENT_SIZE`."""

    msglen: int
    """Length of the whole message."""
    type: int
    data: bytes
    """This fragment (``fraglen`` bytes)."""
    guarantee: int = Guarantee.AGREED

    def pack(self) -> bytes:
        size = _PARTIAL.size + len(self.data)
        return _PARTIAL.pack(CpgRequestId.PARTIAL_MCAST, size, 0, self.guarantee, self.msglen, len(self.data),
                             self.type) + self.data


def parse_partial_mcast_untrusted(data: bytes) -> PartialMcastRequest:
    _need(data, _PARTIAL.size, "PARTIAL_MCAST")
    _, _, _, guarantee, msglen, fraglen, type_ = _PARTIAL.unpack_from(data)
    if _PARTIAL.size + fraglen > len(data):
        raise WireError(f"CPG PARTIAL_MCAST fraglen {fraglen} exceeds the {len(data) - _PARTIAL.size} bytes present",
                        40)
    return PartialMcastRequest(msglen, type_, data[_PARTIAL.size:_PARTIAL.size + fraglen], guarantee)


def membership_request(group: CpgName) -> bytes:
    return _MEMBERSHIP_REQ.pack(CpgRequestId.MEMBERSHIP, _MEMBERSHIP_REQ.size, *_fields(group))


def parse_membership_request_untrusted(data: bytes) -> CpgName:
    _need(data, _MEMBERSHIP_REQ.size, "MEMBERSHIP")
    _, _, length, pad, value = _MEMBERSHIP_REQ.unpack_from(data)
    return CpgName(length, value, pad)


@dataclass(frozen=True, slots=True)
class IterationInitializeRequest:
    type: int
    group: CpgName = CpgName(0)
    """Only read for ONE_GROUP."""

    def pack(self) -> bytes:
        return _ITER_INIT.pack(CpgRequestId.ITERATIONINITIALIZE, _ITER_INIT.size, *_fields(self.group), self.type)


def parse_iteration_initialize_untrusted(data: bytes) -> IterationInitializeRequest:
    _need(data, _ITER_INIT.size, "ITERATIONINITIALIZE")
    _, _, length, pad, value, type_ = _ITER_INIT.unpack_from(data)
    return IterationInitializeRequest(type_, CpgName(length, value, pad))


def iteration_request(msg_id: int, handle: int) -> bytes:
    """ITERATIONNEXT or ITERATIONFINALIZE of iteration ``handle``."""
    return _ITER_HANDLE.pack(msg_id, _ITER_HANDLE.size, handle)


def parse_iteration_handle_untrusted(data: bytes) -> int:
    _need(data, _ITER_HANDLE.size, "iteration request")
    return _ITER_HANDLE.unpack_from(data)[2]


def simple_request(msg_id: int) -> bytes:
    """A request that is only a header: LOCAL_GET, FINALIZE."""
    return request_header(msg_id, REQUEST_HEADER_SIZE)


def zc_alloc_request(map_size: int, path: bytes) -> bytes:
    return _ZC_ALLOC.pack(CpgRequestId.ZC_ALLOC, _ZC_ALLOC.size, map_size, path)


def zc_free_request(map_size: int, server_address: int) -> bytes:
    return _ZC_FREE.pack(CpgRequestId.ZC_FREE, _ZC_FREE.size, map_size, server_address)


def zc_execute_request(server_address: int) -> bytes:
    return _ZC_EXECUTE.pack(CpgRequestId.ZC_EXECUTE, _ZC_EXECUTE.size, server_address)


# -- responses (daemon -> client) -------------------------------------------------------------


def status_response(res_id: int, error: int = CS_OK) -> bytes:
    """A response that is only a header (JOIN, LEAVE, FINALIZE, PARTIAL_SEND, ...)."""
    return response_header(res_id, RESPONSE_HEADER_SIZE, error)


def parse_status_untrusted(data: bytes) -> tuple[int, int]:
    """(id, error) of any response."""
    msg_id, _, error = parse_response_header_untrusted(data)
    return msg_id, error


@dataclass(frozen=True, slots=True)
class MembershipResponse:
    members: tuple[Member, ...]
    error: int = CS_OK

    def pack(self) -> bytes:
        if len(self.members) > MEMBERSHIP_MAX:
            raise ValueError(f"a MEMBERSHIP response holds at most {MEMBERSHIP_MAX} members")
        out = bytearray(MEMBERSHIP_RESPONSE_SIZE)
        _MEMBERSHIP_RES.pack_into(out, 0, CpgResponseId.MEMBERSHIP, MEMBERSHIP_RESPONSE_SIZE, self.error,
                                  len(self.members))
        for i, (nodeid, pid) in enumerate(self.members):
            _ADDRESS.pack_into(out, _MEMBERSHIP_RES.size + i * _ADDRESS.size, nodeid, pid, CpgReason.UNDEFINED)
        return bytes(out)


def parse_membership_response_untrusted(data: bytes) -> MembershipResponse:
    _need(data, _MEMBERSHIP_RES.size, "MEMBERSHIP response")
    msg_id, _, error, count = _MEMBERSHIP_RES.unpack_from(data)
    _check_id(msg_id, CpgResponseId.MEMBERSHIP, "MEMBERSHIP response")
    if count > MEMBERSHIP_MAX:
        raise WireError(f"CPG MEMBERSHIP response names {count} members (at most {MEMBERSHIP_MAX})", 24)
    _need(data, _MEMBERSHIP_RES.size + count * _ADDRESS.size, "MEMBERSHIP response")
    members = tuple(_ADDRESS.unpack_from(data, _MEMBERSHIP_RES.size + i * _ADDRESS.size)[:2] for i in range(count))
    return MembershipResponse(members, error)


def local_get_response(nodeid: int, error: int = CS_OK) -> bytes:
    return _LOCAL_GET.pack(CpgResponseId.LOCAL_GET, _LOCAL_GET.size, error, nodeid)


def parse_local_get_response_untrusted(data: bytes) -> tuple[int, int]:
    """(error, local nodeid)."""
    _need(data, _LOCAL_GET.size, "LOCAL_GET response")
    msg_id, _, error, nodeid = _LOCAL_GET.unpack_from(data)
    _check_id(msg_id, CpgResponseId.LOCAL_GET, "LOCAL_GET response")
    return error, nodeid


def iteration_initialize_response(handle: int, error: int = CS_OK) -> bytes:
    return _ITER_INIT_RES.pack(CpgResponseId.ITERATIONINITIALIZE, _ITER_INIT_RES.size, error, handle)


def parse_iteration_initialize_response_untrusted(data: bytes) -> tuple[int, int]:
    """(error, iteration handle)."""
    _need(data, _ITER_INIT_RES.size, "ITERATIONINITIALIZE response")
    msg_id, _, error, handle = _ITER_INIT_RES.unpack_from(data)
    _check_id(msg_id, CpgResponseId.ITERATIONINITIALIZE, "ITERATIONINITIALIZE response")
    return error, handle


@dataclass(frozen=True, slots=True)
class IterationNextResponse:
    """One (group, nodeid, pid) of an iteration; NO_SECTIONS after the last (still 168 bytes)."""

    group: CpgName
    nodeid: int
    pid: int
    error: int = CS_OK

    def pack(self) -> bytes:
        return _ITER_NEXT_RES.pack(CpgResponseId.ITERATIONNEXT, _ITER_NEXT_RES.size, self.error,
                                   *_fields(self.group), self.nodeid, self.pid)


def parse_iteration_next_response_untrusted(data: bytes) -> IterationNextResponse:
    _need(data, _ITER_NEXT_RES.size, "ITERATIONNEXT response")
    msg_id, _, error, length, pad, value, nodeid, pid = _ITER_NEXT_RES.unpack_from(data)
    _check_id(msg_id, CpgResponseId.ITERATIONNEXT, "ITERATIONNEXT response")
    return IterationNextResponse(_name_untrusted(length, pad, value, 24), nodeid, pid, error)


# -- events (daemon -> client) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfchgCallback:
    """A group's membership changed: members after the change, who left, who joined."""

    group: CpgName
    members: tuple[Member, ...]
    left: tuple[Address, ...] = ()
    joined: tuple[Address, ...] = ()

    def pack(self) -> bytes:
        n = len(self.members) + len(self.left) + len(self.joined)
        size = _CONFCHG.size + n * _ADDRESS.size
        out = bytearray(size)
        _CONFCHG.pack_into(out, 0, CpgResponseId.CONFCHG_CALLBACK, size, CS_OK, *_fields(self.group),
                           len(self.members), len(self.joined), len(self.left))
        pos = _CONFCHG.size
        for nodeid, pid in self.members:
            _ADDRESS.pack_into(out, pos, nodeid, pid, CpgReason.UNDEFINED)
            pos += _ADDRESS.size
        for nodeid, pid, reason in self.left + self.joined:
            _ADDRESS.pack_into(out, pos, nodeid, pid, reason)
            pos += _ADDRESS.size
        return bytes(out)


def _parse_confchg(data: bytes) -> ConfchgCallback:
    _need(data, _CONFCHG.size, "CONFCHG_CALLBACK")
    _, size, _, length, pad, value, m, j, left_n = _CONFCHG.unpack_from(data)
    _need(data, _CONFCHG.size + (m + j + left_n) * _ADDRESS.size, "CONFCHG_CALLBACK")
    entries = [_ADDRESS.unpack_from(data, _CONFCHG.size + i * _ADDRESS.size) for i in range(m + left_n + j)]
    return ConfchgCallback(_name_untrusted(length, pad, value, 24),
                           tuple((e[0], e[1]) for e in entries[:m]),
                           tuple(entries[m:m + left_n]), tuple(entries[m + left_n:]))


@dataclass(frozen=True, slots=True)
class DeliverCallback:
    """A multicast of process (nodeid, pid) to ``group``, in agreed order."""

    group: CpgName
    nodeid: int
    pid: int
    data: bytes

    def pack(self) -> bytes:
        size = _DELIVER.size + len(self.data)
        return _DELIVER.pack(CpgResponseId.DELIVER_CALLBACK, size, CS_OK, *_fields(self.group), len(self.data),
                             self.nodeid, self.pid) + self.data


def _parse_deliver(data: bytes) -> DeliverCallback:
    _need(data, _DELIVER.size, "DELIVER_CALLBACK")
    _, _, _, length, pad, value, msglen, nodeid, pid = _DELIVER.unpack_from(data)
    _need(data, _DELIVER.size + msglen, "DELIVER_CALLBACK")
    return DeliverCallback(_name_untrusted(length, pad, value, 24), nodeid, pid,
                           data[_DELIVER.size:_DELIVER.size + msglen])


@dataclass(frozen=True, slots=True)
class TotemConfchgCallback:
    """The ring CPG last synchronised on and its nodes."""

    ring_id: RingId
    members: tuple[int, ...]

    def pack(self) -> bytes:
        n = len(self.members)
        size = TOTEM_CONFCHG_SIZE + 4 * n
        out = bytearray(size)
        _TOTEM.pack_into(out, 0, CpgResponseId.TOTEM_CONFCHG_CALLBACK, size, CS_OK, self.ring_id.rep,
                         self.ring_id.seq, n)
        struct.pack_into(f"<{n}I", out, _TOTEM.size, *self.members)
        return bytes(out)


def _parse_totem_confchg(data: bytes) -> TotemConfchgCallback:
    _need(data, _TOTEM.size, "TOTEM_CONFCHG_CALLBACK")
    _, _, _, rep, seq, n = _TOTEM.unpack_from(data)
    _need(data, _TOTEM.size + 4 * n, "TOTEM_CONFCHG_CALLBACK")
    return TotemConfchgCallback(RingId(rep, seq), struct.unpack_from(f"<{n}I", data, _TOTEM.size))


@dataclass(frozen=True, slots=True)
class PartialDeliverCallback:
    """One fragment of a large multicast; the client library reassembles per (nodeid, pid)."""

    group: CpgName
    msglen: int
    nodeid: int
    pid: int
    type: int
    data: bytes

    def pack(self) -> bytes:
        size = _PARTIAL_DELIVER.size + len(self.data)
        return _PARTIAL_DELIVER.pack(CpgResponseId.PARTIAL_DELIVER_CALLBACK, size, CS_OK, *_fields(self.group),
                                     self.msglen, len(self.data), self.nodeid, self.pid, self.type) + self.data


def _parse_partial_deliver(data: bytes) -> PartialDeliverCallback:
    _need(data, _PARTIAL_DELIVER.size, "PARTIAL_DELIVER_CALLBACK")
    _, _, _, length, pad, value, msglen, fraglen, nodeid, pid, type_ = _PARTIAL_DELIVER.unpack_from(data)
    _need(data, _PARTIAL_DELIVER.size + fraglen, "PARTIAL_DELIVER_CALLBACK")
    return PartialDeliverCallback(_name_untrusted(length, pad, value, 24), msglen, nodeid, pid, type_,
                                  data[_PARTIAL_DELIVER.size:_PARTIAL_DELIVER.size + fraglen])


@dataclass(frozen=True, slots=True)
class FlowControlCallback:
    """Defined by the protocol; corosync 3 never sends it."""

    state: int

    def pack(self) -> bytes:
        return _FLOW.pack(CpgResponseId.FLOWCONTROL_CALLBACK, _FLOW.size, CS_OK, self.state)


def _parse_flow_control(data: bytes) -> FlowControlCallback:
    _need(data, _FLOW.size, "FLOWCONTROL_CALLBACK")
    return FlowControlCallback(_FLOW.unpack_from(data)[3])


CpgEvent = ConfchgCallback | DeliverCallback | TotemConfchgCallback | PartialDeliverCallback | FlowControlCallback

_EVENT_PARSERS = {
    CpgResponseId.CONFCHG_CALLBACK: _parse_confchg,
    CpgResponseId.DELIVER_CALLBACK: _parse_deliver,
    CpgResponseId.TOTEM_CONFCHG_CALLBACK: _parse_totem_confchg,
    CpgResponseId.PARTIAL_DELIVER_CALLBACK: _parse_partial_deliver,
    CpgResponseId.FLOWCONTROL_CALLBACK: _parse_flow_control,
}


def parse_event_untrusted(data: bytes) -> CpgEvent:
    """Decode an event message (any of the five ids libcpg dispatches)."""
    msg_id, size, _ = parse_response_header_untrusted(data)
    if size != len(data):
        raise WireError(f"CPG event header says {size} bytes, {len(data)} received", 8)
    parser = _EVENT_PARSERS.get(msg_id)
    if parser is None:
        raise WireError(f"CPG event id {msg_id} is not an event libcpg knows", 0)
    return parser(data)
