"""libcmap's messages (corosync 3.1.7 ``ipc_cmap.h``; spec client-ipc.md §2.5).

Layouts are defined once with construct for x86_64 (little endian, members 8-byte
aligned). Both directions are here: the daemon decodes requests and encodes
responses and events, a Python client does the reverse. Messages that end in a
value (SET requests, GET responses, notifications) are the fixed structure followed
by the value bytes; the header's ``size`` counts both.

Key names travel as ``mar_name_t``; corosync reads them as C strings (the ``length``
field is ignored on the way in, except that a length of 0 means "no key" for
ITER_INIT and TRACK_ADD), so :func:`key_of` does the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from construct import Int8ul, Int32sl, Int64ul, Padding, Struct

from ..wire.errors import WireError
from .common import CS_OK, MarName, RequestHeader, ResponseHeader, build, parse

NAME_MAX = 256
"""Bytes of a ``mar_name_t`` value; a key must be shorter (it needs a NUL)."""


class ReqId(enum.IntEnum):
    SET = 0
    DELETE = 1
    GET = 2
    ADJUST_INT = 3
    ITER_INIT = 4
    ITER_NEXT = 5
    ITER_FINALIZE = 6
    TRACK_ADD = 7
    TRACK_DELETE = 8
    SET_CURRENT_MAP = 9


class ResId(enum.IntEnum):
    SET = 0
    DELETE = 1
    GET = 2
    ADJUST_INT = 3
    ITER_INIT = 4
    ITER_NEXT = 5
    ITER_FINALIZE = 6
    TRACK_ADD = 7
    TRACK_DELETE = 8
    NOTIFY_CALLBACK = 9
    SET_CURRENT_MAP = 10


class MapId(enum.IntEnum):
    """SET_CURRENT_MAP's argument."""

    DEFAULT = 0
    STATS = 1


# -- layouts ------------------------------------------------------------------------------

SetReq = Struct("header" / RequestHeader, "key_name" / MarName, "value_len" / Int64ul,
                "type" / Int8ul, Padding(7))
"""296 bytes, then ``value_len`` bytes of value."""
DeleteReq = Struct("header" / RequestHeader, "key_name" / MarName)
GetReq = Struct("header" / RequestHeader, "key_name" / MarName, "value_len" / Int64ul)
"""``value_len``: the size of the caller's buffer (0 = length and type only)."""
AdjustIntReq = Struct("header" / RequestHeader, "key_name" / MarName, "step" / Int32sl, Padding(4))
IterInitReq = Struct("header" / RequestHeader, "prefix" / MarName)
HandleReq = Struct("header" / RequestHeader, "handle" / Int64ul)
"""ITER_NEXT and ITER_FINALIZE (an iterator handle), TRACK_DELETE (a track handle)."""
TrackAddReq = Struct("header" / RequestHeader, "key_name" / MarName, "track_type" / Int32sl,
                     Padding(4), "track_inst_handle" / Int64ul)
SetCurrentMapReq = Struct("header" / RequestHeader, "map" / Int32sl, Padding(4))

StatusRes = Struct("header" / ResponseHeader)
"""SET, DELETE, ADJUST_INT, ITER_FINALIZE, SET_CURRENT_MAP: the 24-byte header."""
GetRes = Struct("header" / ResponseHeader, "value_len" / Int64ul, "type" / Int8ul, Padding(7))
"""40 bytes, then as many value bytes as the request's ``value_len`` asked for."""
HandleRes = Struct("header" / ResponseHeader, "handle" / Int64ul)
"""ITER_INIT (iterator handle), TRACK_ADD (track handle), TRACK_DELETE (the client's
``track_inst_handle``)."""
IterNextRes = Struct("header" / ResponseHeader, "key_name" / MarName, "value_len" / Int64ul,
                     "type" / Int8ul, Padding(7))
NotifyEvent = Struct(
    "header" / ResponseHeader,
    "track_inst_handle" / Int64ul,
    "key_name" / MarName,
    "event" / Int32sl, Padding(4),
    "new_value_type" / Int8ul, Padding(7),
    "old_value_type" / Int8ul, Padding(7),
    "new_value_len" / Int64ul,
    "old_value_len" / Int64ul,
)
"""336 bytes, then the new value, then the old one."""

def name_fields(name: bytes) -> dict[str, Any]:
    """A ``mar_name_t`` holding ``name`` (NUL padded); ValueError if it does not fit."""
    if len(name) >= NAME_MAX:
        raise ValueError(f"name of {len(name)} bytes does not fit a mar_name_t")
    return {"length": len(name), "value": name.ljust(NAME_MAX, b"\0")}


def key_of(name: Any) -> str:
    """A received ``mar_name_t`` as corosync reads it: its value up to the first NUL
    (bytes map 1:1 to characters)."""
    return bytes(name.value).split(b"\0", 1)[0].decode("latin-1")


def _key_bytes(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode("latin-1")


# -- requests (client encodes, daemon decodes) ---------------------------------------------------


def encode_set(key: str | bytes, vtype: int, value: bytes) -> bytes:
    """A SET; libcmap sends a string without its NUL."""
    return build(SetReq, ReqId.SET, tail=value, key_name=name_fields(_key_bytes(key)),
                 value_len=len(value), type=vtype)


def encode_delete(key: str | bytes) -> bytes:
    return build(DeleteReq, ReqId.DELETE, key_name=name_fields(_key_bytes(key)))


def encode_get(key: str | bytes, value_len: int) -> bytes:
    return build(GetReq, ReqId.GET, key_name=name_fields(_key_bytes(key)), value_len=value_len)


def encode_adjust_int(key: str | bytes, step: int) -> bytes:
    return build(AdjustIntReq, ReqId.ADJUST_INT, key_name=name_fields(_key_bytes(key)), step=step)


def encode_iter_init(prefix: str | bytes = b"") -> bytes:
    return build(IterInitReq, ReqId.ITER_INIT, prefix=name_fields(_key_bytes(prefix)))


def encode_handle_request(req: ReqId, handle: int) -> bytes:
    """ITER_NEXT, ITER_FINALIZE or TRACK_DELETE."""
    return build(HandleReq, req, handle=handle)


def encode_track_add(key: str | bytes, track_type: int, track_inst_handle: int) -> bytes:
    return build(TrackAddReq, ReqId.TRACK_ADD, key_name=name_fields(_key_bytes(key)),
                 track_type=track_type, track_inst_handle=track_inst_handle)


def encode_set_current_map(map_id: int) -> bytes:
    return build(SetCurrentMapReq, ReqId.SET_CURRENT_MAP, map=map_id)


@dataclass(frozen=True, slots=True)
class SetRequest:
    key: str
    type: int
    value: bytes
    """Exactly the ``value_len`` bytes the client sent."""


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """DELETE, GET (``number`` = the buffer size asked for), ADJUST_INT (``number`` = the
    step), ITER_INIT (``key`` None when the prefix is empty)."""

    key: str | None
    number: int = 0


@dataclass(frozen=True, slots=True)
class TrackAddRequest:
    key: str | None
    track_type: int
    track_inst_handle: int


def decode_set(data: bytes) -> SetRequest:
    c = parse(SetReq, data, "cmap SET")
    end = SetReq.sizeof() + c.value_len
    if end > len(data):
        raise WireError(f"cmap SET value of {c.value_len} bytes does not fit in {len(data)} bytes", 280)
    return SetRequest(key_of(c.key_name), c.type, bytes(data[SetReq.sizeof():end]))


def decode_key_request(req: ReqId, data: bytes) -> KeyRequest:
    """DELETE, GET, ADJUST_INT or ITER_INIT."""
    if req == ReqId.DELETE:
        return KeyRequest(key_of(parse(DeleteReq, data, "cmap DELETE").key_name))
    if req == ReqId.GET:
        c = parse(GetReq, data, "cmap GET")
        return KeyRequest(key_of(c.key_name), c.value_len)
    if req == ReqId.ADJUST_INT:
        c = parse(AdjustIntReq, data, "cmap ADJUST_INT")
        return KeyRequest(key_of(c.key_name), c.step)
    if req == ReqId.ITER_INIT:
        c = parse(IterInitReq, data, "cmap ITER_INIT")
        return KeyRequest(key_of(c.prefix) if c.prefix.length else None)
    raise ValueError(f"{req!r} carries no key")


def decode_handle_request(data: bytes) -> int:
    return int(parse(HandleReq, data, "cmap handle request").handle)


def decode_track_add(data: bytes) -> TrackAddRequest:
    c = parse(TrackAddReq, data, "cmap TRACK_ADD")
    return TrackAddRequest(key_of(c.key_name) if c.key_name.length else None, c.track_type,
                           c.track_inst_handle)


def decode_set_current_map(data: bytes) -> int:
    return int(parse(SetCurrentMapReq, data, "cmap SET_CURRENT_MAP").map)


# -- responses and events (daemon encodes, client decodes) ---------------------------------------


def encode_status(res: ResId, error: int = CS_OK) -> bytes:
    return build(StatusRes, res, error)


def encode_get_response(error: int, vtype: int = 0, value: bytes = b"", requested: int = 0) -> bytes:
    """GET's answer: 40 bytes plus the ``requested`` buffer (the value, zero padded)
    when OK; 40 bytes with value_len and type 0 otherwise."""
    if error != CS_OK:
        return build(GetRes, ResId.GET, error, value_len=0, type=0)
    tail = value[:requested].ljust(requested, b"\0") if requested else b""
    return build(GetRes, ResId.GET, error, tail=tail, value_len=len(value), type=vtype)


def encode_handle_response(res: ResId, handle: int, error: int = CS_OK) -> bytes:
    """ITER_INIT, TRACK_ADD or TRACK_DELETE."""
    return build(HandleRes, res, error, handle=handle)


def encode_iter_next(error: int, key: str | None = None, vtype: int = 0, value_len: int = 0) -> bytes:
    """ITER_NEXT's 304 bytes (a zero entry with NO_SECTIONS after the last key)."""
    name = name_fields(_key_bytes(key)) if key is not None else name_fields(b"")
    return build(IterNextRes, ResId.ITER_NEXT, error, key_name=name, value_len=value_len,
                 type=vtype)


def encode_notify(track_inst_handle: int, key: str, event: int, new_type: int, new_value: bytes,
                  old_type: int, old_value: bytes) -> bytes:
    """NOTIFY_CALLBACK: 336 bytes, the new value, the old value."""
    return build(NotifyEvent, ResId.NOTIFY_CALLBACK, CS_OK, tail=new_value + old_value,
                 track_inst_handle=track_inst_handle, key_name=name_fields(_key_bytes(key)),
                 event=event, new_value_type=new_type, old_value_type=old_type,
                 new_value_len=len(new_value), old_value_len=len(old_value))


@dataclass(frozen=True, slots=True)
class Status:
    """A response that carries only its header (or the generic refusal, id 0)."""

    res_id: int
    error: int


@dataclass(frozen=True, slots=True)
class GetResult:
    error: int
    type: int
    value_len: int
    """The length of the stored value (even when only the length was asked for)."""
    value: bytes
    """The bytes of the value that were sent (at most the buffer asked for)."""


@dataclass(frozen=True, slots=True)
class HandleResult:
    res_id: int
    error: int
    handle: int


@dataclass(frozen=True, slots=True)
class IterEntry:
    error: int
    key: str
    value_len: int
    type: int


@dataclass(frozen=True, slots=True)
class NotifyCallback:
    track_inst_handle: int
    key: str
    event: int
    new_type: int
    new_value: bytes
    old_type: int
    old_value: bytes


CmapMessage = Status | GetResult | HandleResult | IterEntry | NotifyCallback


def decode_message(data: bytes) -> CmapMessage:
    """Any response or event of the cmap service."""
    head = parse(StatusRes, data, "cmap response").header
    rid, err = head.id, head.error
    if rid == ResId.GET and len(data) >= GetRes.sizeof():
        c = parse(GetRes, data, "cmap GET")
        body = bytes(data[GetRes.sizeof():])
        return GetResult(err, c.type, c.value_len, body[:c.value_len])
    if rid in (ResId.ITER_INIT, ResId.TRACK_ADD, ResId.TRACK_DELETE) and len(data) >= HandleRes.sizeof():
        return HandleResult(rid, err, parse(HandleRes, data, "cmap handle response").handle)
    if rid == ResId.ITER_NEXT and len(data) >= IterNextRes.sizeof():
        c = parse(IterNextRes, data, "cmap ITER_NEXT")
        key = bytes(c.key_name.value[:c.key_name.length]).decode("latin-1")
        return IterEntry(err, key, c.value_len, c.type)
    if rid == ResId.NOTIFY_CALLBACK:
        c = parse(NotifyEvent, data, "cmap NOTIFY_CALLBACK")
        start = NotifyEvent.sizeof()
        mid = start + c.new_value_len
        end = mid + c.old_value_len
        if end > len(data):
            raise WireError(f"cmap notification values end at {end}, beyond {len(data)} bytes", 320)
        key = bytes(c.key_name.value[:c.key_name.length]).decode("latin-1")
        return NotifyCallback(c.track_inst_handle, key, c.event, c.new_value_type,
                              bytes(data[start:mid]), c.old_value_type, bytes(data[mid:end]))
    return Status(rid, err)
