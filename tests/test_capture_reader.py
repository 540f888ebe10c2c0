"""The pcap/pcapng reader: frame numbers, addresses, ports, truncation, bad files."""

from __future__ import annotations

import struct

import pytest

from _vectors import (
    CAPTURES,
    LINK_ETHERNET,
    LINK_RAW,
    LINK_SLL,
    LINK_SLL2,
    datagrams,
    ethernet,
    frame,
    ipv4_udp,
    ipv6_udp,
    path,
    pcap_file,
    pcapng_file,
    short,
)
from totem.capture import CaptureError, Datagram, read_datagrams
from totem.wire import Mcast, WireError, parse_frame_untrusted, parse_untrusted


def record_times(name: str) -> list[float]:
    """Timestamp of every packet, read independently of the reader under test."""
    data = open(path(name), "rb").read()
    times = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        pos, unit = 0, 1e-6
        while pos < len(data):
            btype, length = struct.unpack_from("<II", data, pos)
            if btype == 1:  # interface description: look for if_tsresol (9)
                opt = pos + 16
                while opt < pos + length - 4:
                    code, size = struct.unpack_from("<HH", data, opt)
                    if code == 0:
                        break
                    if code == 9:
                        assert data[opt + 4] < 0x80
                        unit = 10.0 ** -data[opt + 4]
                    opt += 4 + (size + 3) // 4 * 4
            elif btype == 6:
                hi, lo = struct.unpack_from("<II", data, pos + 12)
                times.append(((hi << 32) | lo) * unit)
            else:
                assert btype in (0x0A0D0D0A, 5), hex(btype)  # section header, statistics
            pos += length
        return times
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    pos = 24
    while pos < len(data):
        sec, usec, incl = struct.unpack_from("<III", data, pos)
        times.append(sec + usec * 1e-6)
        pos += 16 + incl
    return times


@pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])
def test_frames_are_numbered_like_tshark(capture):
    ds = datagrams(capture)
    # every packet in these captures is a UDP datagram, so frames run 1..N
    times = record_times(capture)
    assert [d.frame for d in ds] == list(range(1, len(times) + 1))
    # times are relative to the first frame (and, as in the files, not always
    # monotonic: the capturing kernel can stamp packets a few µs out of order)
    assert ds[0].time == 0.0
    assert [d.time for d in ds] == pytest.approx([t - times[0] for t in times], abs=1e-6)
    assert all(b.time - a.time > -1e-5 for a, b in zip(ds, ds[1:]))
    for d in ds:
        assert isinstance(d, Datagram)
        assert d.src.startswith("127.0.0.") and d.dst.startswith("127.0.0.")
        assert d.dport == 5405
        assert 1024 <= d.sport <= 65535


def test_pcap_linux_cooked_and_ethernet_frames_of_the_spec():
    # 2node-join.pcap is Linux cooked (SLL) v1, the others Ethernet
    d1, d2 = frame("corosync-3.1.7-udpu-2node-join.pcap", 1), frame("corosync-3.1.7-udpu-2node-join.pcap", 2)
    assert (d1.src, d1.dst, d1.dport) == ("127.0.0.1", "127.0.0.1", 5405)
    assert (d2.src, d2.dst, d2.dport) == ("127.0.0.1", "127.0.0.2", 5405)
    assert d1.payload == d2.payload and len(d1.payload) == 37
    assert d1.sport != d2.sport  # one socket per destination (totem-wire.md §5.2)
    token = frame("corosync-3.1.7-udpu-2node-join.pcap", 94)
    assert (token.src, token.sport, token.dst, token.dport) == ("127.0.0.1", 5405, "127.0.0.2", 5405)
    assert len(token.payload) == 57 and not token.truncated
    hold = frame("corosync-3.1.7-udpu-cpg-traffic.pcap", 9)
    assert (hold.src, hold.dst, len(hold.payload)) == ("127.0.0.1", "127.0.0.2", 25)


def test_pcapng_frames_of_the_spec():
    d = frame("corosync-3.1.7-udpu-retransmit.pcap", 136)
    assert (d.src, d.sport, d.dst, d.dport) == ("127.0.0.3", 5405, "127.0.0.1", 5405)
    assert len(d.payload) == 73
    d = frame("services-3node-cpg.pcapng", 162)
    assert (d.src, d.dst, len(d.payload)) == ("127.0.0.1", "127.0.0.1", 95)
    # timestamps: the spec's frames are in the right order and plausibly spaced
    assert 0 < frame("services-3node-cpg.pcapng", 132).time < d.time


def test_recovery_capture_marks_its_two_ip_fragmented_datagrams():
    ds = datagrams("corosync-3.1.7-udpu-recovery.pcap")
    truncated = [d for d in ds if d.truncated]
    assert [d.frame for d in truncated] == [524, 525]
    for d in truncated:
        # 1500-byte MTU: 20 bytes IP header, 8 UDP, 1472 of the datagram in the first fragment
        assert len(d.payload) == 1472
        assert (d.src, d.dport) == ("127.0.0.1", 5405)
        msg = parse_untrusted(d.payload)  # the header is there ...
        assert isinstance(msg, Mcast) and msg.encapsulated == 1
        with pytest.raises(WireError):  # ... the end of the old-ring frame is not
            parse_frame_untrusted(msg.inner().payload)
    assert {d.dst for d in truncated} == {"127.0.0.2", "127.0.0.3"}
    assert not [d for c in CAPTURES if "recovery" not in c for d in datagrams(c) if d.truncated]


def test_not_a_capture_gives_capture_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a capture\n")
    with pytest.raises(CaptureError, match="not a pcap or pcapng"):
        list(read_datagrams(str(bogus)))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError):
        list(read_datagrams(str(empty)))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(8))
    with pytest.raises(CaptureError, match="truncated"):
        list(read_datagrams(str(cut)))


def test_missing_file_gives_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_datagrams(str(tmp_path / "absent.pcap")))


# -- synthetic captures: every link type and IP case the reader claims -------------------

def write(tmp_path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_synthetic_ethernet_pcap(tmp_path):
    arp = ethernet(bytes(28), ethertype=0x0806)
    tcp = ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 1, 2, b"x", proto=6))
    later_fragment = ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 1, 2, b"y" * 8, frag=185))
    records = [
        (100.25, ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 40000, 5405, b"hello"))),
        (100.5, arp),
        (100.75, ethernet(ipv4_udp("10.0.0.2", "10.0.0.3", 5405, 5405, b"vlan"), vlan=7)),
        (101.0, tcp),
        (101.25, ethernet(ipv4_udp("10.0.0.3", "10.0.0.1", 5405, 5405, b"A" * 40, frag=0x2000))),
        (101.5, later_fragment),
        (101.75, ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 5405, 5405, b"B" * 100))[:14 + 28 + 60]),
        (102.0, ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 5405, 5405, b"pad")) + bytes(20)),
    ]
    ds = list(read_datagrams(write(tmp_path, "eth.pcap", pcap_file(records, LINK_ETHERNET))))
    assert [d.frame for d in ds] == [1, 3, 5, 7, 8]  # ARP, TCP and a non-first fragment skipped
    hello, vlan, first_frag, snapped, padded = ds
    assert (hello.src, hello.sport, hello.dst, hello.dport) == ("10.0.0.1", 40000, "10.0.0.2", 5405)
    assert hello.payload == b"hello" and not hello.truncated
    assert hello.time == 0.0
    assert vlan.payload == b"vlan" and vlan.src == "10.0.0.2" and vlan.time == pytest.approx(0.5)
    assert first_frag.truncated and first_frag.payload == b"A" * 40  # more-fragments flag set
    assert snapped.truncated and snapped.payload == b"B" * 60  # cut by the snap length
    assert padded.payload == b"pad" and not padded.truncated  # Ethernet padding is not payload


def test_synthetic_big_endian_nanosecond_raw_ip_pcap(tmp_path):
    records = [(5.000000001, ipv4_udp("192.168.1.1", "192.168.1.2", 5405, 5405, b"one")),
               (5.5, ipv4_udp("192.168.1.2", "192.168.1.1", 5405, 5405, b"two"))]
    data = pcap_file(records, LINK_RAW, order=">", nano=True)
    assert data[:4] == b"\xa1\xb2\x3c\x4d"
    ds = list(read_datagrams(write(tmp_path, "raw.pcap", data)))
    assert [(d.frame, d.src, d.payload) for d in ds] == [(1, "192.168.1.1", b"one"),
                                                          (2, "192.168.1.2", b"two")]
    assert ds[1].time == pytest.approx(0.499999999, abs=1e-9)


def test_synthetic_linux_cooked_v1_and_v2(tmp_path):
    ip = ipv4_udp("127.0.0.1", "127.0.0.2", 33333, 5405, b"cooked")
    sll = struct.pack("!HHH8sH", 0, 772, 6, bytes(8), 0x0800) + ip
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, bytes(8)) + ip
    for name, link, packet in (("sll.pcap", LINK_SLL, sll), ("sll2.pcap", LINK_SLL2, sll2)):
        ds = list(read_datagrams(write(tmp_path, name, pcap_file([(1.0, packet)], link))))
        assert [(d.src, d.sport, d.dst, d.dport, d.payload) for d in ds] == [
            ("127.0.0.1", 33333, "127.0.0.2", 5405, b"cooked")]


def test_synthetic_ipv6(tmp_path):
    packet = ethernet(ipv6_udp("fd00::1", "fd00::2", 5405, 5405, b"six"), ethertype=0x86DD)
    ds = list(read_datagrams(write(tmp_path, "v6.pcap", pcap_file([(0.0, packet)], LINK_ETHERNET))))
    assert [(d.src, d.dst, d.payload) for d in ds] == [("fd00::1", "fd00::2", b"six")]


def test_synthetic_pcapng_interfaces_and_resolution(tmp_path):
    udp = ipv4_udp("10.1.0.1", "10.1.0.2", 5405, 5405, b"ng")
    data = pcapng_file(
        interfaces=[(LINK_ETHERNET, None), (LINK_RAW, 9)],  # µs default; ns on interface 1
        packets=[(0, 1_000_000, ethernet(udp)),  # 1 s
                 (1, 3_500_000_000, udp),  # 3.5 s
                 (0, 2_000_000, ethernet(bytes(28), ethertype=0x0806))],
    )
    ds = list(read_datagrams(write(tmp_path, "two-if.pcapng", data)))
    assert [d.frame for d in ds] == [1, 2]
    assert [d.payload for d in ds] == [b"ng", b"ng"]
    assert ds[1].time == pytest.approx(2.5)
