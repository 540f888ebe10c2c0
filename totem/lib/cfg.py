"""libcfg's messages (corosync 3.1.7 ``ipc_cfg.h``; spec client-ipc.md §2.6).

Layouts are defined once with construct for x86_64. Both directions are here: the
daemon decodes requests and encodes responses and events, a Python client does the
reverse. Note the two name types: a KILLNODE request carries its reason as a packed
``cs_name_t`` (u16 length, 256 bytes), the exec message the daemon then multicasts
a ``mar_name_t`` (8-aligned value).
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass

from construct import Array, Bytes, Int8ul, Int16ul, Int32ul, Padding, Struct

from ..wire.errors import WireError
from .common import CS_OK, RequestHeader, ResponseHeader, build, parse

INTERFACES_MAX = 16
"""``CFG_MAX_INTERFACES``: the name/status slots of the legacy RINGSTATUSGET."""
INTERFACE_NAME_LEN = 128
INTERFACE_STATUS_LEN = 512
LINKS_MAX = 8
"""``CFG_MAX_LINKS`` (knet's link count): link slots of a node status."""
HOST_LEN = 256
ADDR_LEN = 16
"""``TOTEMIP_ADDRLEN``: one address slot of GET_NODE_ADDRS."""
NODE_STATUS_V1 = 1


class ReqId(enum.IntEnum):
    RINGSTATUSGET = 0
    RINGREENABLE = 1
    KILLNODE = 2
    TRYSHUTDOWN = 3
    REPLYTOSHUTDOWN = 4
    GET_NODE_ADDRS = 5
    LOCAL_GET = 6
    RELOAD_CONFIG = 7
    REOPEN_LOG_FILES = 8
    NODESTATUSGET = 9
    TRACKSTART = 10
    TRACKSTOP = 11


class ResId(enum.IntEnum):
    RINGSTATUSGET = 0
    RINGREENABLE = 1
    STATETRACKSTART = 2
    STATETRACKSTOP = 3
    KILLNODE = 8
    TRYSHUTDOWN = 9
    TESTSHUTDOWN = 10
    GET_NODE_ADDRS = 11
    LOCAL_GET = 12
    REPLYTOSHUTDOWN = 13
    RELOAD_CONFIG = 14
    REOPEN_LOG_FILES = 15
    NODESTATUSGET = 16


class ShutdownFlag(enum.IntEnum):
    REQUEST = 0
    REGARDLESS = 1
    IMMEDIATE = 2


class ShutdownReply(enum.IntEnum):
    NO = 0
    YES = 1


# -- layouts ------------------------------------------------------------------------------

Header = Struct("header" / RequestHeader)
"""RINGSTATUSGET, RINGREENABLE, LOCAL_GET, RELOAD_CONFIG, REOPEN_LOG_FILES, TRACKSTOP."""
CsName = Struct("length" / Int16ul, "value" / Bytes(256))
"""``cs_name_t``: 258 bytes, packed."""
KillNodeReq = Struct("header" / RequestHeader, "nodeid" / Int32ul, Padding(4), "reason" / CsName,
                     Padding(6))
U32Req = Struct("header" / RequestHeader, "value" / Int32ul, Padding(4))
"""TRYSHUTDOWN (flags), REPLYTOSHUTDOWN (response), GET_NODE_ADDRS (nodeid)."""
NodeStatusGetReq = Struct("header" / RequestHeader, "nodeid" / Int32ul, Padding(4),
                          "version" / Int32ul, Padding(4))
TrackStartReq = Struct("header" / RequestHeader, "track_flags" / Int8ul, Padding(7))

StatusRes = Struct("header" / ResponseHeader)
RingStatusRes = Struct(
    "header" / ResponseHeader,
    "interface_count" / Int32ul, Padding(4),
    "interface_name" / Array(INTERFACES_MAX, Bytes(INTERFACE_NAME_LEN)),
    "interface_status" / Array(INTERFACES_MAX, Bytes(INTERFACE_STATUS_LEN)),
)
U32Res = Struct("header" / ResponseHeader, "value" / Int32ul, Padding(4))
"""LOCAL_GET (nodeid), TESTSHUTDOWN (flags), NODESTATUSGET when it only has a version."""
NodeAddrsRes = Struct("header" / ResponseHeader, "family" / Int32ul, "num_addrs" / Int32ul)
"""32 bytes, then 16 bytes per address."""
LinkStatus = Struct(
    "enabled" / Int8ul,
    "connected" / Int8ul,
    "dynconnected" / Int8ul,
    Padding(1),
    "mtu" / Int32ul,
    "src_ipaddr" / Bytes(HOST_LEN),
    "dst_ipaddr" / Bytes(HOST_LEN),
)
NodeStatusV1 = Struct(
    "version" / Int32ul,
    "nodeid" / Int32ul,
    "reachable" / Int8ul,
    "remote" / Int8ul,
    "external" / Int8ul,
    "onwire_min" / Int8ul,
    "onwire_max" / Int8ul,
    "onwire_ver" / Int8ul,
    Padding(2),
    "link_status" / Array(LINKS_MAX, LinkStatus),
)
NodeStatusV1Res = Struct("header" / ResponseHeader, "node_status" / NodeStatusV1)


def _text(raw: bytes) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def _fixed(text: str, size: int) -> bytes:
    raw = text.encode()
    if len(raw) >= size:
        raise ValueError(f"{text!r} does not fit {size} bytes with its NUL")
    return raw.ljust(size, b"\0")


# -- requests (client encodes, daemon decodes) ---------------------------------------------------


def encode_request(req: ReqId) -> bytes:
    """A request of the bare header."""
    return build(Header, req)


def encode_u32_request(req: ReqId, value: int) -> bytes:
    """TRYSHUTDOWN (flags), REPLYTOSHUTDOWN (1 yes, 0 no) or GET_NODE_ADDRS (nodeid)."""
    return build(U32Req, req, value=value)


def encode_killnode(nodeid: int, reason: str) -> bytes:
    """libcfg sends the reason with its NUL counted in ``length``."""
    raw = reason.encode() + b"\0"
    if len(raw) > 256:
        raise ValueError("reason too long")
    return build(KillNodeReq, ReqId.KILLNODE, nodeid=nodeid,
                 reason={"length": len(raw), "value": raw.ljust(256, b"\0")})


def encode_nodestatusget(nodeid: int, version: int = NODE_STATUS_V1) -> bytes:
    return build(NodeStatusGetReq, ReqId.NODESTATUSGET, nodeid=nodeid, version=version)


def encode_trackstart(track_flags: int = 0) -> bytes:
    return build(TrackStartReq, ReqId.TRACKSTART, track_flags=track_flags)


def decode_u32_request(data: bytes) -> int:
    return int(parse(U32Req, data, "cfg request").value)


def decode_killnode(data: bytes) -> tuple[int, int, bytes]:
    """(nodeid, reason length, the 256 reason bytes) of a KILLNODE."""
    c = parse(KillNodeReq, data, "cfg KILLNODE")
    return c.nodeid, c.reason.length, bytes(c.reason.value)


def decode_nodestatusget(data: bytes) -> tuple[int, int]:
    """(nodeid, version)."""
    c = parse(NodeStatusGetReq, data, "cfg NODESTATUSGET")
    return c.nodeid, c.version


# -- responses and events (daemon encodes, client decodes) ---------------------------------------


def encode_status(res: ResId, error: int = CS_OK) -> bytes:
    return build(StatusRes, res, error)


def encode_u32_response(res: ResId, value: int, error: int = CS_OK) -> bytes:
    """LOCAL_GET, TESTSHUTDOWN (an event) or NODESTATUSGET's version-only answer."""
    return build(U32Res, res, error, value=value)


def encode_ringstatus(interfaces: list[tuple[str, str]], error: int = CS_OK) -> bytes:
    """RINGSTATUSGET's 10,272 bytes from (name, status) pairs."""
    names = [_fixed(n, INTERFACE_NAME_LEN) for n, _ in interfaces]
    statuses = [_fixed(s, INTERFACE_STATUS_LEN) for _, s in interfaces]
    pad = INTERFACES_MAX - len(interfaces)
    return build(RingStatusRes, ResId.RINGSTATUSGET, error, interface_count=len(interfaces),
                 interface_name=names + [bytes(INTERFACE_NAME_LEN)] * pad,
                 interface_status=statuses + [bytes(INTERFACE_STATUS_LEN)] * pad)


def address_slot(addr: str) -> tuple[int, bytes]:
    """(address family, the 16-byte slot) of an IP address as GET_NODE_ADDRS sends it."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return family, ip.packed.ljust(ADDR_LEN, b"\0")


def encode_node_addrs(addresses: list[str], error: int = CS_OK) -> bytes:
    """GET_NODE_ADDRS: the family of the first address, then one slot per address."""
    slots = [address_slot(a) for a in addresses]
    family = slots[0][0] if slots else 0
    return build(NodeAddrsRes, ResId.GET_NODE_ADDRS, error, tail=b"".join(s for _, s in slots),
                 family=family, num_addrs=len(slots))


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a node status (knet's view; udpu has link 0 only)."""

    enabled: bool = False
    connected: bool = False
    dynconnected: bool = False
    mtu: int = 0
    src_ipaddr: str = ""
    dst_ipaddr: str = ""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """``corosync_cfg_node_status_v1``."""

    nodeid: int
    reachable: bool = False
    remote: bool = False
    external: bool = False
    onwire_min: int = 0
    onwire_max: int = 0
    onwire_ver: int = 0
    links: tuple[Link, ...] = ()
    version: int = NODE_STATUS_V1


def encode_nodestatus(status: NodeStatus, error: int = CS_OK) -> bytes:
    """NODESTATUSGET's 4,200-byte version 1 answer."""
    links = list(status.links) + [Link()] * (LINKS_MAX - len(status.links))
    return build(NodeStatusV1Res, ResId.NODESTATUSGET, error, node_status={
        "version": status.version, "nodeid": status.nodeid, "reachable": int(status.reachable),
        "remote": int(status.remote), "external": int(status.external),
        "onwire_min": status.onwire_min, "onwire_max": status.onwire_max,
        "onwire_ver": status.onwire_ver,
        "link_status": [{"enabled": int(x.enabled), "connected": int(x.connected),
                         "dynconnected": int(x.dynconnected), "mtu": x.mtu,
                         "src_ipaddr": _fixed(x.src_ipaddr, HOST_LEN),
                         "dst_ipaddr": _fixed(x.dst_ipaddr, HOST_LEN)} for x in links]})


@dataclass(frozen=True, slots=True)
class Status:
    """A response that carries only its header (or the generic refusal, id 0)."""

    res_id: int
    error: int


@dataclass(frozen=True, slots=True)
class U32Result:
    """LOCAL_GET (nodeid), TESTSHUTDOWN event (flags), NODESTATUSGET refused (version)."""

    res_id: int
    error: int
    value: int


@dataclass(frozen=True, slots=True)
class RingStatus:
    error: int
    interfaces: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class NodeAddrs:
    error: int
    family: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeStatusResult:
    error: int
    status: NodeStatus


CfgMessage = Status | U32Result | RingStatus | NodeAddrs | NodeStatusResult


def decode_message(data: bytes) -> CfgMessage:
    """Any response or event of the cfg service."""
    head = parse(StatusRes, data, "cfg response").header
    rid, err = head.id, head.error
    if rid == ResId.RINGSTATUSGET and len(data) >= RingStatusRes.sizeof():
        c = parse(RingStatusRes, data, "cfg RINGSTATUSGET")
        n = min(c.interface_count, INTERFACES_MAX)
        return RingStatus(err, tuple((_text(c.interface_name[i]), _text(c.interface_status[i]))
                                     for i in range(n)))
    if rid == ResId.GET_NODE_ADDRS and len(data) >= NodeAddrsRes.sizeof():
        c = parse(NodeAddrsRes, data, "cfg GET_NODE_ADDRS")
        start = NodeAddrsRes.sizeof()
        if start + ADDR_LEN * c.num_addrs > len(data):
            raise WireError(f"cfg GET_NODE_ADDRS claims {c.num_addrs} addresses in {len(data)} bytes", 28)
        width = 4 if c.family == socket.AF_INET else 16
        addrs = tuple(str(ipaddress.ip_address(bytes(data[p:p + width])))
                      for p in range(start, start + ADDR_LEN * c.num_addrs, ADDR_LEN))
        return NodeAddrs(err, c.family, addrs)
    if rid == ResId.NODESTATUSGET and len(data) >= NodeStatusV1Res.sizeof():
        s = parse(NodeStatusV1Res, data, "cfg NODESTATUSGET").node_status
        links = tuple(Link(bool(x.enabled), bool(x.connected), bool(x.dynconnected), x.mtu,
                           _text(x.src_ipaddr), _text(x.dst_ipaddr)) for x in s.link_status)
        return NodeStatusResult(err, NodeStatus(s.nodeid, bool(s.reachable), bool(s.remote),
                                                bool(s.external), s.onwire_min, s.onwire_max,
                                                s.onwire_ver, links, s.version))
    if rid in (ResId.LOCAL_GET, ResId.TESTSHUTDOWN, ResId.NODESTATUSGET) and len(data) >= U32Res.sizeof():
        return U32Result(rid, err, parse(U32Res, data, "cfg response").value)
    return Status(rid, err)
