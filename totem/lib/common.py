"""What every corosync client library message shares (spec client-ipc.md §1.5, §2.1).

The libqb message headers (16-byte requests, 24-byte responses and events), the
``cs_error_t`` codes and the name types of the corosync 3.1.7 client libraries on
x86_64 (little endian; 8-byte aligned members, padding never read). The layouts are
defined once with construct; the hot helpers below derive their ``struct`` formats
from them.
"""

from __future__ import annotations

import enum
import struct

from typing import Any

from construct import Bytes, Construct, ConstructError, Int16ul, Int32sl, Int32ul, Int64ul, Padding, Struct

from ..wire.errors import WireError
from ..wire.layout import flat_format


class CsError(enum.IntEnum):
    """``cs_error_t``: the error codes every corosync library call returns."""

    OK = 1
    LIBRARY = 2
    VERSION = 3
    INIT = 4
    TIMEOUT = 5
    TRY_AGAIN = 6
    INVALID_PARAM = 7
    NO_MEMORY = 8
    BAD_HANDLE = 9
    BUSY = 10
    ACCESS = 11
    NOT_EXIST = 12
    NAME_TOO_LONG = 13
    EXIST = 14
    NO_SPACE = 15
    INTERRUPT = 16
    NAME_NOT_FOUND = 17
    NO_RESOURCES = 18
    NOT_SUPPORTED = 19
    BAD_OPERATION = 20
    FAILED_OPERATION = 21
    MESSAGE_ERROR = 22
    QUEUE_FULL = 23
    QUEUE_NOT_AVAILABLE = 24
    BAD_FLAGS = 25
    TOO_BIG = 26
    NO_SECTIONS = 27
    CONTEXT_NOT_FOUND = 28
    TOO_MANY_GROUPS = 30
    SECURITY = 100


CS_OK = CsError.OK
CS_ERR_TRY_AGAIN = CsError.TRY_AGAIN
CS_ERR_NOT_SUPPORTED = CsError.NOT_SUPPORTED

REQUEST_HEADER_SIZE = 16
RESPONSE_HEADER_SIZE = 24
IPC_REQUEST_SIZE = 8192 * 128
"""The ``max_msg_size`` corosync's libraries ask for (1 MiB), ``lib/util.h``."""

TRACK_CURRENT = 1
TRACK_CHANGES = 2
TRACK_CHANGES_ONLY = 4

RequestHeader = Struct("id" / Int32sl, Padding(4), "size" / Int32sl, Padding(4))
"""``struct qb_ipc_request_header`` (16 bytes)."""
ResponseHeader = Struct("id" / Int32sl, Padding(4), "size" / Int32sl, Padding(4), "error" / Int32sl, Padding(4))
"""``struct qb_ipc_response_header`` (24 bytes); events use it too."""
MarName = Struct("length" / Int16ul, Padding(6), "value" / Bytes(256))
"""``mar_name_t`` (cmap keys, cfg reasons): 264 bytes."""
MarCpgName = Struct("length" / Int32ul, Padding(4), "value" / Bytes(128))
"""``mar_cpg_name_t``: 136 bytes, binary safe, compared on ``length`` bytes."""
MarRingId = Struct("nodeid" / Int32ul, Padding(4), "seq" / Int64ul)
"""The ring id of the cpg, quorum and votequorum libraries: 16 bytes."""

_REQ = struct.Struct(flat_format(RequestHeader).fmt)
_RESP = struct.Struct(flat_format(ResponseHeader).fmt)
assert _REQ.size == REQUEST_HEADER_SIZE and _RESP.size == RESPONSE_HEADER_SIZE


def request_header(msg_id: int, size: int) -> bytes:
    """A 16-byte request header for a request of ``size`` bytes in all."""
    return _REQ.pack(msg_id, size)


def response_header(msg_id: int, size: int, error: int = CS_OK) -> bytes:
    """A 24-byte response/event header for a message of ``size`` bytes in all."""
    return _RESP.pack(msg_id, size, error)


def parse_request_header_untrusted(data: bytes) -> tuple[int, int]:
    """(id, size) of a client's request; the size must match the bytes received."""
    if len(data) < REQUEST_HEADER_SIZE:
        raise WireError(f"request of {len(data)} bytes is shorter than its header", 0)
    msg_id, size = _REQ.unpack_from(data)
    if size != len(data):
        raise WireError(f"request header says {size} bytes, {len(data)} received", 8)
    return msg_id, size


def parse_response_header_untrusted(data: bytes) -> tuple[int, int, int]:
    """(id, size, error) of a response or event."""
    if len(data) < RESPONSE_HEADER_SIZE:
        raise WireError(f"response of {len(data)} bytes is shorter than its header", 0)
    return _RESP.unpack_from(data)


_SIZE = struct.Struct("<i")


def build(layout: Construct, msg_id: int, error: int | None = None, tail: bytes = b"", **fields: Any) -> bytes:
    """One message of the libraries that define their layouts with construct (cmap,
    cfg, quorum, votequorum): ``layout`` then ``tail``, the header's ``size`` set to the
    total. ``error`` None builds a request header, anything else a response header;
    ``layout`` may be a bare header."""
    header: dict[str, int] = {"id": int(msg_id), "size": 0}
    if error is not None:
        header["error"] = int(error)
    bare = layout is RequestHeader or layout is ResponseHeader
    data = bytearray(layout.build(header if bare else {"header": header, **fields}))
    data += tail
    _SIZE.pack_into(data, 8, len(data))
    return bytes(data)


def parse(layout: Construct, data: bytes, what: str) -> Any:
    """Decode the fixed part of untrusted bytes with ``layout``; only :class:`WireError`
    escapes."""
    try:
        return layout.parse(data)
    except (ConstructError, ValueError, OverflowError) as exc:
        raise WireError(f"{what} does not decode: {exc}", 0) from None
