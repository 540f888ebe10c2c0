"""The libqb connection handshake on the setup socket (spec client-ipc.md §1.2-1.5).

The client sends a 24-byte connection request; the server always answers with the
full 12,328-byte connection response, even to refuse. Both layouts are defined once
here with construct; the ``struct`` formats used to pack and parse them are derived
from those definitions.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from construct import Bytes, Int32sl, Int32ul, Int64sl, Padding, Struct

from ..lib.common import RequestHeader, ResponseHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format

MSG_AUTHENTICATE = -1
"""``QB_IPC_MSG_AUTHENTICATE``: the id of both handshake messages."""
MSG_NEW_EVENT_SOCK = -2
"""``QB_IPC_MSG_NEW_EVENT_SOCK``: obsolete; a server treats it as malformed."""
MSG_DISCONNECT = -3
"""``QB_IPC_MSG_DISCONNECT``: a client asks to be disconnected (2.0.x never sends it)."""

IPC_SOCKET = 0
"""``QB_IPC_SOCKET``: the datagram-socket transport."""
IPC_SHM = 1
"""``QB_IPC_SHM``: the shared-memory ring-buffer transport."""

PATH_MAX = 4096
NAME_MAX = 255
"""libqb writes the ring/socket names with ``snprintf(.., NAME_MAX, ..)``."""

ConnectionRequest = Struct("hdr" / RequestHeader, "max_msg_size" / Int32ul, Padding(4))
"""``struct qb_ipc_connection_request`` (24 bytes)."""
ConnectionResponse = Struct(
    "hdr" / ResponseHeader,
    "connection_type" / Int32sl,
    "max_msg_size" / Int32ul,
    "connection" / Int64sl,
    "request" / Bytes(PATH_MAX),
    "response" / Bytes(PATH_MAX),
    "event" / Bytes(PATH_MAX),
)
"""``struct qb_ipc_connection_response`` (12,328 bytes); paths are NUL-terminated."""

_REQ = struct.Struct(flat_format(ConnectionRequest).fmt)
_RES = struct.Struct(flat_format(ConnectionResponse).fmt)
CONNECTION_REQUEST_SIZE = _REQ.size
CONNECTION_RESPONSE_SIZE = _RES.size
assert (CONNECTION_REQUEST_SIZE, CONNECTION_RESPONSE_SIZE) == (24, 12328)

MIN_MSG_SIZE = CONNECTION_RESPONSE_SIZE
"""libqb raises every ``max_msg_size`` below the connection response's size to it."""


@dataclass(frozen=True)
class ConnRequest:
    """A client's connection request."""

    msg_id: int
    size: int
    max_msg_size: int


@dataclass(frozen=True)
class ConnResponse:
    """A server's connection response: ``error`` is 0 or a negative errno."""

    error: int
    connection_type: int = IPC_SHM
    max_msg_size: int = 0
    connection: int = 0
    request: str = ""
    response: str = ""
    event: str = ""


def pack_connection_request(max_msg_size: int) -> bytes:
    """The 24-byte request a libqb client sends right after ``connect``."""
    return _REQ.pack(MSG_AUTHENTICATE, CONNECTION_REQUEST_SIZE, max_msg_size)


def parse_connection_request_untrusted(data: bytes) -> ConnRequest:
    """Decode a client's connection request (the caller checks the id)."""
    if len(data) != CONNECTION_REQUEST_SIZE:
        raise WireError(f"connection request of {len(data)} bytes, "
                        f"expected {CONNECTION_REQUEST_SIZE}", 0)
    return ConnRequest(*_REQ.unpack(data))


def _path_field(path: str) -> bytes:
    raw = os.fsencode(path)
    if len(raw) >= NAME_MAX:
        raise ValueError(f"IPC path {path!r} is {len(raw)} bytes, libqb allows {NAME_MAX - 1}")
    return raw


def pack_connection_response(resp: ConnResponse) -> bytes:
    """The full 12,328-byte response (also sent, with a negative errno, to refuse)."""
    return _RES.pack(MSG_AUTHENTICATE, CONNECTION_RESPONSE_SIZE, resp.error,
                     resp.connection_type, resp.max_msg_size, resp.connection,
                     _path_field(resp.request), _path_field(resp.response),
                     _path_field(resp.event))


def _c_string(raw: bytes) -> str:
    return os.fsdecode(raw.split(b"\0", 1)[0])


def parse_connection_response_untrusted(data: bytes) -> ConnResponse:
    """Decode a server's connection response."""
    if len(data) != CONNECTION_RESPONSE_SIZE:
        raise WireError(f"connection response of {len(data)} bytes, "
                        f"expected {CONNECTION_RESPONSE_SIZE}", 0)
    msg_id, size, error, ctype, max_msg, connection, req, res, evt = _RES.unpack(data)
    if msg_id != MSG_AUTHENTICATE or size != CONNECTION_RESPONSE_SIZE:
        raise WireError(f"connection response header id {msg_id} size {size}", 0)
    return ConnResponse(error, ctype, max_msg, connection,
                        _c_string(req), _c_string(res), _c_string(evt))
