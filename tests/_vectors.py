"""The capture files in tests/vectors, cached access to their datagrams, and writers
of small synthetic pcap/pcapng files."""

from __future__ import annotations

import functools
import ipaddress
import struct
from pathlib import Path

from totem.capture import Datagram, read_datagrams

VECTORS = Path(__file__).resolve().parent / "vectors"
TOTEM_PORT = 5405

CAPTURES: tuple[str, ...] = tuple(
    sorted(p.name for p in VECTORS.iterdir() if p.suffix in (".pcap", ".pcapng"))
)
"""File names of every capture in tests/vectors."""

COROSYNC_CAPTURES = tuple(c for c in CAPTURES if c.startswith("corosync-3.1.7-udpu-"))
"""The eight captures of totem-wire.md §5.1."""
SERVICE_CAPTURES = tuple(c for c in CAPTURES if c.startswith("services-"))
"""The three captures of services-wire.md §6.1 (ORF tokens filtered out)."""


def path(name: str) -> str:
    return str(VECTORS / name)


@functools.cache
def datagrams(name: str) -> tuple[Datagram, ...]:
    """Every UDP datagram of a capture (any port)."""
    return tuple(read_datagrams(path(name)))


@functools.cache
def totem_datagrams(name: str) -> tuple[Datagram, ...]:
    """Datagrams sent to the totem port."""
    return tuple(d for d in datagrams(name) if d.dport == TOTEM_PORT)


@functools.cache
def complete_totem_datagrams(name: str) -> tuple[Datagram, ...]:
    """Datagrams to the totem port whose payload is entirely in the file."""
    return tuple(d for d in totem_datagrams(name) if not d.truncated)


def frame(name: str, number: int) -> Datagram:
    """The datagram in frame ``number`` (1-based, as tshark counts)."""
    for d in datagrams(name):
        if d.frame == number:
            return d
    raise LookupError(f"{name} has no UDP datagram in frame {number}")


@functools.cache
def distinct_payloads() -> tuple[bytes, ...]:
    """Every distinct complete totem payload over all captures, in a stable order."""
    seen: dict[bytes, None] = {}
    for name in CAPTURES:
        for d in complete_totem_datagrams(name):
            seen.setdefault(d.payload, None)
    return tuple(seen)


def short(name: str) -> str:
    """A readable test id for a capture file."""
    return name.removeprefix("corosync-3.1.7-udpu-").rsplit(".", 1)[0]


# -- synthetic capture files -------------------------------------------------------------

LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_SLL2 = 1, 101, 113, 276


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *,
             frag: int = 0, ulen: int | None = None, proto: int = 17) -> bytes:
    """An IPv4 packet carrying a UDP datagram (checksums left 0).

    ``frag`` is the raw flags/fragment-offset field; ``ulen`` overrides the UDP length.
    """
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload) if ulen is None else ulen, 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, frag, 64, proto, 0,
                       ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + udp


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed) + udp


def ethernet(ip: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    macs = bytes(range(1, 7)) + bytes(range(7, 13))
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return macs + tag + struct.pack("!H", ethertype) + ip


def pcap_file(records: list[tuple[float, bytes]], link: int, *, order: str = "<",
              nano: bool = False, snaplen: int = 262144) -> bytes:
    """A classic pcap file; a record's data may be cut short by passing fewer bytes."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link)]
    scale = 1_000_000_000 if nano else 1_000_000
    for ts, data in records:
        sec = int(ts)
        frac = round((ts - sec) * scale)
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def pcapng_file(interfaces: list[tuple[int, int | None]],
                packets: list[tuple[int, int, bytes]]) -> bytes:
    """A little-endian pcapng file.

    ``interfaces``: (link type, if_tsresol option byte or None);
    ``packets``: (interface index, timestamp in the interface's units, data).
    """
    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        length = 12 + len(body)
        return struct.pack("<II", btype, length) + body + struct.pack("<I", length)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for link, tsresol in interfaces:
        options = b""
        if tsresol is not None:
            options = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        out.append(block(1, struct.pack("<HHI", link, 0, 262144) + options))
    for iface, ts, data in packets:
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
        out.append(block(6, body))
    return b"".join(out)
