"""Reading UDP datagrams out of pcap and pcapng files, with no dependency beyond Python.

Handles the link types corosync captures come in (Ethernet, Linux cooked v1/v2,
raw IP, BSD loopback), IPv4 and IPv6, and marks datagrams whose IP packet was
fragmented or cut short by the capture's snap length as ``truncated`` instead of
guessing at the missing bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator


class CaptureError(ValueError):
    """The file is not a capture this reader understands."""


@dataclass(frozen=True, slots=True)
class Datagram:
    frame: int
    """1-based frame number, as tshark and Wireshark count."""
    time: float
    """Seconds since the first frame of the file."""
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    truncated: bool = False
    """The UDP payload in the file is shorter than the UDP header says."""


# link-layer types (www.tcpdump.org/linktypes.html)
_LINK_NULL, _LINK_ETHERNET, _LINK_RAW, _LINK_RAW2, _LINK_SLL, _LINK_SLL2, _LINK_LOOP = 0, 1, 101, 12, 113, 276, 108
_IPV4_RAW = 228
_IPV6_RAW = 229


def read_datagrams(path: str) -> Iterator[Datagram]:
    """Every UDP datagram (first fragments included, marked truncated) in a capture file."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head == b"\x0a\x0d\x0d\x0a":
            packets = _pcapng_packets(f)
        elif head in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            packets = _pcap_packets(f)
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng file (starts with {head.hex()})")
        first: float | None = None
        for number, (ts, link, data) in enumerate(packets, start=1):
            if first is None:
                first = ts
            udp = _udp_of(link, data)
            if udp is not None:
                src, dst, sport, dport, payload, truncated = udp
                yield Datagram(number, ts - first, src, sport, dst, dport, payload, truncated)


def _pcap_packets(f: BinaryIO) -> Iterator[tuple[float, int, bytes]]:
    header = f.read(24)
    if len(header) < 24:
        raise CaptureError("pcap file header is truncated")
    magic = header[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack_from(order + "I", header, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(order + "IIII")
    scale = 1e-9 if nano else 1e-6
    while True:
        h = f.read(16)
        if len(h) < 16:
            return
        sec, frac, incl, _orig = rec.unpack(h)
        data = f.read(incl)
        if len(data) < incl:
            return
        yield sec + frac * scale, link, data


def _pcapng_packets(f: BinaryIO) -> Iterator[tuple[float, int, bytes]]:
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        btype = struct.unpack_from("<I", head)[0]
        if btype == 0x0A0D0D0A:
            bom = f.read(4)
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            (length,) = struct.unpack_from(order + "I", head, 4)
            body = bom + f.read(length - 12)
            interfaces = []
            continue
        btype, length = struct.unpack_from(order + "II", head)
        if length < 12:
            raise CaptureError(f"pcapng block of impossible length {length}")
        body = f.read(length - 8)[:-4]
        if btype == 1:  # interface description
            link = struct.unpack_from(order + "H", body)[0]
            interfaces.append((link, _if_tsresol(body[8:], order)))
        elif btype == 6:  # enhanced packet
            iface, hi, lo, cap, _orig = struct.unpack_from(order + "IIIII", body)
            link, unit = interfaces[iface] if iface < len(interfaces) else (_LINK_ETHERNET, 1e-6)
            yield ((hi << 32) | lo) * unit, link, body[20:20 + cap]
        elif btype == 3:  # simple packet
            link, _unit = interfaces[0] if interfaces else (_LINK_ETHERNET, 1e-6)
            yield 0.0, link, body[4:]


def _if_tsresol(options: bytes, order: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, ln = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and ln >= 1:
            v = options[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + ((ln + 3) & ~3)
    return 1e-6


def _udp_of(link: int, data: bytes) -> tuple[str, str, int, int, bytes, bool] | None:
    """(src, dst, sport, dport, payload, truncated) of a UDP packet, else None."""
    ethertype: int | None
    if link == _LINK_ETHERNET:
        off, ethertype = 14, _u16be(data, 12)
        while ethertype in (0x8100, 0x88A8):  # VLAN tags
            ethertype, off = _u16be(data, off + 2), off + 4
    elif link == _LINK_SLL:
        off, ethertype = 16, _u16be(data, 14)
    elif link == _LINK_SLL2:
        off, ethertype = 20, _u16be(data, 0)
    elif link in (_LINK_RAW, _LINK_RAW2, _IPV4_RAW, _IPV6_RAW):
        off, ethertype = 0, None
    elif link in (_LINK_NULL, _LINK_LOOP):
        off, ethertype = 4, None
    else:
        return None
    if ethertype is not None and ethertype not in (0x0800, 0x86DD):
        return None
    ip = data[off:]
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            return None
        frag = _u16be(ip, 6)
        if frag & 0x1FFF:  # a later fragment: no UDP header in it
            return None
        more_fragments = bool(frag & 0x2000)
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        udp = ip[ihl:]
    elif version == 6 and len(ip) >= 40:
        if ip[6] != 17:
            return None
        more_fragments = False
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        udp = ip[40:]
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, ulen = _u16be(udp, 0), _u16be(udp, 2), _u16be(udp, 4)
    payload = udp[8:ulen] if ulen >= 8 else udp[8:]
    truncated = more_fragments or len(payload) < ulen - 8
    return src, dst, sport, dport, payload, truncated


def _u16be(b: bytes, off: int) -> int:
    return (b[off] << 8 | b[off + 1]) if off + 2 <= len(b) else -1
