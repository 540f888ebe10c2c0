"""The hand decodes of the specs, asserted field by field against the codec.

totem-wire.md §3.2, §3.7 and §5.2-§5.10, services-wire.md §6.2-§6.6. Each test
takes the hex dump printed in the spec as literal bytes, checks that the named
frame of the named capture holds exactly those bytes, and checks every field
the spec's table lists. The last part byte-swaps captured datagrams into what a
big-endian sender would send and checks that everything decodes to the same
values.
"""

from __future__ import annotations

import dataclasses
import re
import struct

import pytest

from _vectors import CAPTURES, complete_totem_datagrams, frame, short
from totem.dissect import dissect
from totem.wire import (
    ENVELOPE_A,
    ENVELOPE_SYNC,
    GROUP_A,
    GROUP_SYNC,
    Barrier,
    Frame,
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    MessageType,
    OrfToken,
    RingId,
    RtrItem,
    ServiceBuild,
    ServiceHeader,
    TokenHoldCancel,
    group_envelope,
    parse_frame_untrusted,
    parse_groups_untrusted,
    parse_service_header_untrusted,
    parse_sync_untrusted,
    parse_untrusted,
)


def hexdump(text: str) -> bytes:
    """Bytes of a spec hex dump ("0000  70 c0 ..." or "0000: 70 c0 ..."), ASCII column ignored."""
    out = bytearray()
    for line in text.strip().splitlines():
        offset, _, rest = line.strip().partition(" ")
        assert int(offset.rstrip(":"), 16) == len(out), f"dump offset {offset} at byte {len(out)}"
        for tok in rest.split():
            if not re.fullmatch(r"[0-9a-fA-F]{2}", tok):
                break  # ASCII column
            out.append(int(tok, 16))
    return bytes(out)


def cap(name: str) -> str:
    return f"corosync-3.1.7-udpu-{name}.pcap"


def only_item(msg: Mcast) -> bytes:
    f = parse_frame_untrusted(msg.payload, msg.byteorder)
    assert len(f.items) == 1
    return f.items[0]


# -- totem-wire.md §5 -----------------------------------------------------------------

def test_5_2_memb_join():
    data = hexdump("""
        0000  70 c0 03 03 00 01 00 00 00 00 00 00 00 01 00 00
        0010  00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00
        0020  00 01 00 00 00
    """)
    d = frame(cap("2node-join"), 1)
    assert (d.src, d.dst, d.dport) == ("127.0.0.1", "127.0.0.1", 5405)
    assert d.payload == data and len(data) == 37
    msg = parse_untrusted(data)
    assert isinstance(msg, MembJoin)
    assert msg.byteorder == "<"  # magic 0xC070 from a little-endian sender
    assert msg.type == MessageType.memb_join
    assert msg.encapsulated == 0
    assert msg.nodeid == 1
    assert msg.target_nodeid == 0
    assert msg.system_from == 1
    assert msg.proc_list == (1,)
    assert msg.failed_list == ()
    assert msg.ring_seq == 1
    assert not msg.is_leave
    assert msg.trailing == b""
    # frame 2: the identical datagram to 127.0.0.2, from another source port
    d2 = frame(cap("2node-join"), 2)
    assert d2.payload == data
    assert d2.dst == "127.0.0.2" and d2.sport != d.sport


def test_5_3_memb_commit_token():
    data = hexdump("""
        0000  70 c0 03 04 00 01 00 00 00 00 00 00 00 01 00 00
        0010  00 01 00 00 00 09 00 00 00 00 00 00 00 00 00 00
        0020  00 01 00 00 00 02 00 00 00 01 00 00 00 02 00 00
        0030  00 01 00 00 00 05 00 00 00 00 00 00 00 08 00 00
        0040  00 08 00 00 00 01 00 00 00 00 00 00 00 00 00 00
        0050  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0060  00
    """)
    d = frame(cap("2node-join"), 90)
    assert (d.src, d.dst) == ("127.0.0.1", "127.0.0.2")
    assert d.payload == data and len(data) == 97
    msg = parse_untrusted(data)
    assert isinstance(msg, MembCommitToken)
    assert msg.nodeid == 1 and msg.target_nodeid == 0 and msg.encapsulated == 0
    assert msg.token_seq == 1
    assert msg.ring_id == RingId(1, 9)
    assert msg.retrans_flg == 0
    assert msg.memb_index == 1
    assert msg.addr == [1, 2]
    assert msg.memb_list[0] == MembEntry(RingId(1, 5), aru=8, high_delivered=8, received_flg=1)
    assert msg.memb_list[1] == MembEntry(RingId(0, 0), 0, 0, 0)
    assert data[73:97] == bytes(24)

    f91 = parse_untrusted(frame(cap("2node-join"), 91).payload)
    assert isinstance(f91, MembCommitToken)
    assert (f91.nodeid, f91.token_seq, f91.memb_index) == (2, 2, 2)
    assert f91.memb_list[1] == MembEntry(RingId(2, 5), 8, 8, 1)
    for number, token_seq in ((92, 3), (93, 4)):
        m = parse_untrusted(frame(cap("2node-join"), number).payload)
        assert isinstance(m, MembCommitToken)
        assert (m.token_seq, m.memb_index) == (token_seq, 2)


def test_5_4_initial_orf_token():
    data = hexdump("""
        0000  70 c0 03 00 00 01 00 00 00 00 00 00 02 00 00 00
        0010  00 00 00 00 00 ff ff ff ff 01 00 00 00 01 00 00
        0020  00 09 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030  00 00 00 00 00 00 00 00 00
    """)
    d = frame(cap("2node-join"), 94)
    assert (d.src, d.dst) == ("127.0.0.1", "127.0.0.2")
    assert d.payload == data and len(data) == 57
    msg = parse_untrusted(data)
    assert isinstance(msg, OrfToken)
    assert msg.nodeid == 1
    assert msg.target_nodeid == 0x02000000
    assert msg.seq == 0
    assert msg.token_seq == 0
    assert msg.aru == 0xFFFFFFFF
    assert msg.aru_addr == 1
    assert msg.ring_id == RingId(1, 9)
    assert (msg.backlog, msg.fcc, msg.retrans_flg) == (0, 0, 0)
    assert msg.rtr_list == []
    # next hops: node 2 keeps aru/aru_addr, node 1 then sets aru 0, aru_addr 0;
    # target_nodeid's garbage is copied along the ring
    n2 = parse_untrusted(frame(cap("2node-join"), 95).payload)
    assert isinstance(n2, OrfToken)
    assert (n2.nodeid, n2.token_seq, n2.aru, n2.aru_addr) == (2, 1, 0xFFFFFFFF, 1)
    assert n2.target_nodeid == 0x02000000
    n1 = parse_untrusted(frame(cap("2node-join"), 96).payload)
    assert isinstance(n1, OrfToken)
    assert (n1.nodeid, n1.token_seq, n1.aru, n1.aru_addr) == (1, 2, 0, 0)
    assert n1.target_nodeid == 0x02000000


def test_5_5_orf_token_with_retransmission_request():
    data = hexdump("""
        0000  70 c0 03 00 00 03 00 00 00 00 00 00 01 28 00 00
        0010  00 e6 06 00 00 26 00 00 00 03 00 00 00 01 00 00
        0020  00 1f 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030  00 00 00 00 00 01 00 00 00 01 00 00 00 1f 00 00
        0040  00 00 00 00 00 27 00 00 00
    """)
    d = frame(cap("retransmit"), 136)
    assert (d.src, d.dst) == ("127.0.0.3", "127.0.0.1")
    assert d.payload == data and len(data) == 73
    msg = parse_untrusted(data)
    assert isinstance(msg, OrfToken)
    assert msg.nodeid == 3
    assert msg.target_nodeid == 0x01000000
    assert msg.seq == 40
    assert msg.token_seq == 1766
    assert msg.aru == 38
    assert msg.aru_addr == 3
    assert msg.ring_id == RingId(1, 31)
    assert (msg.backlog, msg.fcc, msg.retrans_flg) == (0, 0, 0)
    assert msg.rtr_list == [RtrItem(RingId(1, 31), 39)]
    # node 1 rebroadcasts the identical 1455-byte datagram (frames 137/138)
    again = [frame(cap("retransmit"), n) for n in (137, 138)]
    assert again[0].payload == again[1].payload and len(again[0].payload) == 1455
    m = parse_untrusted(again[0].payload)
    assert isinstance(m, Mcast)
    assert (m.nodeid, m.seq, m.ring_id) == (1, 39, RingId(1, 31))
    earlier = [x for x in complete_totem_datagrams(cap("retransmit"))
               if x.frame < 136 and x.payload == again[0].payload]
    assert earlier, "the rebroadcast repeats the original datagram byte for byte"


def test_5_6_memb_merge_detect():
    data = hexdump("""
        0000  70 c0 03 02 00 01 00 00 00 25 c8 32 49 01 00 00
        0010  00 01 00 00 00 05 00 00 00 00 00 00 00
    """)
    assert frame(cap("2node-join"), 62).payload == data and len(data) == 29
    msg = parse_untrusted(data)
    assert isinstance(msg, MembMergeDetect)
    assert msg.type == 2
    assert msg.nodeid == 1
    assert msg.target_nodeid == 0x4932C825  # bytes 25 c8 32 49
    assert msg.system_from == 1
    assert msg.ring_id == RingId(1, 5)


def test_5_7_token_hold_cancel():
    data = hexdump("""
        0000  70 c0 03 05 00 01 00 00 00 00 00 00 00 01 00 00
        0010  00 1f 00 00 00 00 00 00 00
    """)
    assert frame(cap("cpg-traffic"), 9).payload == data and len(data) == 25
    msg = parse_untrusted(data)
    assert isinstance(msg, TokenHoldCancel)
    assert msg.type == 5
    assert msg.nodeid == 1
    assert msg.target_nodeid == 0
    assert msg.ring_id == RingId(1, 31)


def test_5_8_leave():
    data = hexdump("""
        0000  70 c0 03 03 00 00 00 00 00 00 00 00 00 03 00 00
        0010  00 02 00 00 00 01 00 00 00 16 00 00 00 00 00 00
        0020  00 01 00 00 00 02 00 00 00 03 00 00 00
    """)
    d = frame(cap("node-leave-graceful"), 19)
    assert (d.src, d.dst) == ("127.0.0.3", "127.0.0.1")
    assert d.payload == data and len(data) == 45
    msg = parse_untrusted(data)
    assert isinstance(msg, MembJoin)
    assert msg.nodeid == 0 and msg.is_leave
    assert msg.system_from == 3
    assert msg.proc_list == (1, 2)
    assert msg.failed_list == (3,)
    assert msg.ring_seq == 22


def test_5_9_sync_barrier_in_mcast():
    data = hexdump("""
        0000  70 c0 03 01 02 01 00 00 00 00 00 00 00 01 00 00
        0010  00 0a 00 00 00 0c 00 00 00 01 00 00 00 09 00 00
        0020  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030  00 00 00 01 00 28 00 01 00 04 00 73 79 6e 63 00
        0040  00 00 00 00 00 00 00 20 00 00 00 00 00 00 00 01
        0050  00 00 00 09 00 00 00 00 00 00 00 00 00 00 00
    """)
    assert frame(cap("2node-join"), 123).payload == data and len(data) == 95
    msg = parse_untrusted(data)
    assert isinstance(msg, Mcast)
    assert msg.nodeid == 1
    assert msg.encapsulated == 2
    assert msg.system_from == 1
    assert msg.seq == 10
    assert msg.this_seqno == 12
    assert msg.ring_id == RingId(1, 9)
    assert (msg.node_id, msg.guarantee) == (0, 0)
    f = parse_frame_untrusted(msg.payload)
    assert (f.version, f.type, f.fragmented, f.continuation) == (0, 0, 0, 0)
    assert f.lengths == [40]
    groups, at = parse_groups_untrusted(f.items[0])
    assert groups == (GROUP_SYNC,) and at == 8
    assert f.items[0][:8] == ENVELOPE_SYNC == bytes.fromhex("010004007379 6e63")
    sync = parse_sync_untrusted(f.items[0][at:])
    assert isinstance(sync, Barrier)
    assert sync.header.id == 0
    assert sync.header.size == 32
    assert sync.ring_id == RingId(1, 9)


def test_5_10_encapsulated_recovery_rebroadcast():
    head = hexdump("""
        0000  70 c0 03 01 01 03 00 00 00 00 00 00 00 03 00 00
        0010  00 01 00 00 00 0f 00 00 00 01 00 00 00 23 00 00
        0020  00 00 00 00 00 00 00 00 00 00 00 00 00 70 c0 03
        0030  01 02 01 00 00 00 00 00 00 00 01 00 00 00 2c 00
        0040  00 00 48 00 00 00 01 00 00 00 1f 00 00 00 00 00
        0050  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
        0060  01 00 21 01 50 51 52 53 54 55 56 57 58 59 5a 41  ..!.PQRSTUVWXYZA
    """)
    d = frame(cap("recovery"), 521)
    assert (d.src, d.dst) == ("127.0.0.3", "127.0.0.1")
    assert len(d.payload) == 389 and not d.truncated
    assert d.payload[: len(head)] == head
    msg = parse_untrusted(d.payload)
    assert isinstance(msg, Mcast)
    assert msg.encapsulated == 1
    assert msg.nodeid == 3 and msg.system_from == 3
    assert msg.seq == 1
    assert msg.this_seqno == 15
    assert msg.ring_id == RingId(1, 35)
    inner = msg.inner()
    assert inner.nodeid == 1
    assert inner.encapsulated == 2
    assert inner.system_from == 1
    assert inner.seq == 44
    assert inner.this_seqno == 72
    assert inner.ring_id == RingId(1, 31)
    f = parse_frame_untrusted(inner.payload)
    assert (f.fragmented, f.continuation) == (0, 1)
    assert f.lengths == [289]
    assert 90 + 8 + 2 + 289 == 389
    # the preceding initial token of ring 1.35 asks for the rebroadcasts
    token = parse_untrusted(frame(cap("recovery"), 520).payload)
    assert isinstance(token, OrfToken)
    assert token.ring_id == RingId(1, 35) and token.token_seq == 0
    assert token.retrans_flg == 1


# -- totem-wire.md §3.7 and §3.2 --------------------------------------------------------

CPG_MCAST_3_7 = (
    hexdump("""
        0000  70 c0 03 01 02 01 00 00 00 00 00 00 00 01 00 00
        0010  00 17 00 00 00 33 00 00 00 01 00 00 00 1f 00 00
        0020  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030  00 00 00 01 00 c5 00 01 00 01 00 61 03 00 02 00
        0040  00 00 00 00 c0 00 00 00 00 00 00 00 07 00 00 00
        0050  f4 55 00 00 74 77 67 72 6f 75 70 00 00 00 00 00
    """)
    + bytes(0xD0 - 0x60)  # ".. (zeros up to 0x00d3) .."
    + hexdump("""
        0000  00 00 00 00 08 00 00 00 00 00 00 00 60 42 00 00
        0010  00 00 00 00 01 00 00 00 00 00 00 00 f0 b2 a0 af
        0020  d9 55 00 00 68 65 6c 6c 6f 2d 30 00
    """)
)


def test_3_7_cpg_message_inside_a_totem_mcast():
    d = frame(cap("cpg-traffic"), 119)
    assert (d.src, d.dst) == ("127.0.0.1", "127.0.0.2")
    assert d.payload == CPG_MCAST_3_7 and len(d.payload) == 252
    msg = parse_untrusted(d.payload)
    assert isinstance(msg, Mcast)
    assert msg.byteorder == "<" and msg.type == MessageType.mcast
    assert msg.encapsulated == 2
    assert msg.nodeid == 1 and msg.target_nodeid == 0
    assert msg.system_from == 1
    assert msg.seq == 23
    assert msg.this_seqno == 51
    assert msg.ring_id == RingId(1, 31)
    assert (msg.node_id, msg.guarantee) == (0, 0)
    f = parse_frame_untrusted(msg.payload)
    assert (f.version, f.type, f.fragmented, f.continuation) == (0, 0, 0, 0)
    assert f.lengths == [197]
    groups, at = parse_groups_untrusted(f.items[0])
    assert groups == (GROUP_A,) and f.items[0][:at] == ENVELOPE_A == b"\x01\x00\x01\x00a"
    body = f.items[0][at:]
    assert len(body) == 192
    h = parse_service_header_untrusted(body)
    assert h.id == 0x00020003
    assert (h.service, h.function) == (2, 3)  # cpg MCAST
    assert h.size == 192
    assert h.pad0 == bytes(4) and h.pad1 == bytes(4)
    # the CPG MCAST body at the spec's offsets (relative to the service message)
    assert struct.unpack_from("<I4s", body, 16) == (7, bytes.fromhex("f4550000"))
    assert body[24:24 + 128] == b"twgroup" + bytes(121)
    msglen, pid, source_nodeid = (struct.unpack_from("<I", body, o)[0] for o in (152, 160, 168))
    assert (msglen, pid, source_nodeid) == (8, 16992, 1)
    assert body[176:184] == bytes.fromhex("f0b2a0afd9550000")
    assert body[184:] == b"hello-0\x00"
    assert 184 + msglen == h.size
    # and as the operator sees it
    info = dissect(d.payload)
    assert info["messages"] == [{"length": 197, "groups": ["a"], "service": 2,
                                 "service_name": "cpg", "function": 3, "size": 192}]


def reassemble(capture: str, sender: int) -> list[tuple[list[int], bytes]]:
    """Messages a sender fragmented, put back together: (frame numbers, message)."""
    seen: set[tuple[RingId, int]] = set()
    out = []
    pending: bytes | None = None
    frames: list[int] = []
    last_frag = 0
    for d in complete_totem_datagrams(capture):
        msg = parse_untrusted(d.payload)
        if not isinstance(msg, Mcast) or msg.encapsulated != 2 or msg.nodeid != sender:
            continue
        if (msg.ring_id, msg.seq) in seen:  # the same mcast to another node
            continue
        seen.add((msg.ring_id, msg.seq))
        f = parse_frame_untrusted(msg.payload)
        assert f.continuation == last_frag, f"frame {d.frame}: fragment numbering"
        items = list(f.items)
        if f.continuation:
            assert pending is not None
            pending += items.pop(0)
            frames.append(d.frame)
            if f.fragmented and not items:
                last_frag = f.fragmented
                continue
            out.append((frames, pending))
            pending = None
        if f.fragmented:
            pending, frames = items.pop(), [d.frame]
        last_frag = f.fragmented
    return out


def test_3_2_fragmented_cpg_message_reassembles():
    # one 3000-byte CPG message: frag=1 cont=0 [1400], frag=2 cont=1 [1400], frag=0 cont=2 [389]
    capture = cap("cpg-traffic")
    chains = [
        [parse_frame_untrusted(parse_untrusted(d.payload).payload)
         for d in complete_totem_datagrams(capture) if d.frame in frames]
        for frames, _ in reassemble(capture, 1)
    ]
    messages = [m for _, m in reassemble(capture, 1)]
    assert len(messages) == 1
    msg = messages[0]
    assert len(msg) == 3189 == 1400 + 1400 + 389
    unique = {(f.fragmented, f.continuation, tuple(f.lengths)) for f in chains[0]}
    assert unique == {(1, 0, (1400,)), (2, 1, (1400,)), (0, 2, (389,))}
    groups, at = parse_groups_untrusted(msg)
    assert groups == (GROUP_A,) and at == 5
    h = parse_service_header_untrusted(msg[at:])
    assert (h.service, h.function, h.size) == (2, 3, 3184)
    assert h.size == len(msg) - 5 == 184 + 3000


# -- services-wire.md §6 (frames of services-3node-cpg.pcapng) ---------------------------

SVC = "services-3node-cpg.pcapng"


def test_services_6_2_sync_barrier_and_service_build():
    data = hexdump("""
        0000: 70 c0 03 01 02 01 00 00 00 00 00 00 00 01 00 00
        0010: 00 0b 00 00 00 10 00 00 00 01 00 00 00 09 00 00
        0020: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030: 00 00 00 01 00 28 00 01 00 04 00 73 79 6e 63 00
        0040: 00 00 00 00 00 00 00 20 00 00 00 00 00 00 00 01
        0050: 00 00 00 09 00 00 00 00 00 00 00 00 00 00 00
    """)
    assert frame(SVC, 162).payload == data
    msg = parse_untrusted(data)
    assert isinstance(msg, Mcast)
    assert (msg.nodeid, msg.system_from, msg.seq, msg.this_seqno) == (1, 1, 11, 16)
    assert msg.ring_id == RingId(1, 9)
    item = only_item(msg)
    groups, at = parse_groups_untrusted(item)
    assert groups == (GROUP_SYNC,)
    sync = parse_sync_untrusted(item[at:])
    assert sync == Barrier(RingId(1, 9), ServiceHeader(0, 32))

    build_msg = parse_untrusted(frame(SVC, 132).payload)
    assert isinstance(build_msg, Mcast) and len(build_msg.pack()) == 615
    assert (build_msg.nodeid, build_msg.ring_id) == (2, RingId(1, 9))
    item = only_item(build_msg)
    assert len(item) == 560
    groups, at = parse_groups_untrusted(item)
    assert groups == (GROUP_SYNC,)
    build = parse_sync_untrusted(item[at:])
    assert isinstance(build, ServiceBuild)
    assert build.header.id == 1 and build.header.size == 552
    assert build.ring_id == RingId(1, 9)
    assert build.services == (0, 2, 3, 5)
    assert build.unused == ()
    assert item[at + 40 + 16:] == bytes(552 - 56)  # zeros after the list


def test_services_6_3_joinlist_and_barrier_in_one_frame():
    msg = parse_untrusted(frame(SVC, 159).payload)
    assert isinstance(msg, Mcast) and msg.seq == 10
    f = parse_frame_untrusted(msg.payload)
    assert f.lengths == [173, 40]
    (g0, at0), (g1, at1) = (parse_groups_untrusted(i) for i in f.items)
    assert (g0, g1) == ((GROUP_A,), (GROUP_SYNC,))
    h = parse_service_header_untrusted(f.items[0][at0:])
    assert (h.id, h.size) == (0x00020002, 168)  # cpg JOINLIST, 24 + 144
    assert parse_sync_untrusted(f.items[1][at1:]) == Barrier(RingId(1, 9))


def test_services_6_4_cpg_mcast():
    msg = parse_untrusted(frame(SVC, 347).payload)
    assert isinstance(msg, Mcast)
    assert (msg.nodeid, msg.system_from, msg.seq, msg.ring_id) == (2, 2, 23, RingId(1, 13))
    item = only_item(msg)
    assert len(item) == 204
    groups, at = parse_groups_untrusted(item)
    assert groups == (GROUP_A,)
    h = parse_service_header_untrusted(item[at:])
    assert (h.id, h.size) == (0x00020003, 199)
    assert item[at + 184:] == b"hello-from-2-#0"


def test_services_6_5_downlist_split_over_two_frames():
    first = parse_untrusted(frame(SVC, 414).payload)
    second = parse_untrusted(frame(SVC, 417).payload)
    assert isinstance(first, Mcast) and isinstance(second, Mcast)
    assert first.ring_id == RingId(1, 17) and len(first.pack()) == 1455
    assert len(second.pack()) == 228
    f1, f2 = parse_frame_untrusted(first.payload), parse_frame_untrusted(second.payload)
    assert (f1.fragmented, f1.continuation, f1.lengths) == (1, 0, [1400])
    assert (f2.fragmented, f2.continuation, f2.lengths) == (0, 1, [173])
    whole = f1.items[0] + f2.items[0]
    groups, at = parse_groups_untrusted(whole)
    assert groups == (GROUP_A,)
    h = parse_service_header_untrusted(whole[at:])
    assert (h.id, h.size) == (0x00020005, 1568) and len(whole) - at == 1568
    old_members, left_nodes, node0 = (struct.unpack_from("<I", whole, at + o)[0] for o in (16, 24, 32))
    assert (old_members, left_nodes, node0) == (3, 1, 3)
    assert [m for _, m in reassemble(SVC, 2) if m == whole], "generic reassembly finds it too"


def test_services_6_6_votequorum_nodeinfo_three_items():
    msg = parse_untrusted(frame(SVC, 441).payload)
    assert isinstance(msg, Mcast) and msg.ring_id == RingId(1, 17)
    f = parse_frame_untrusted(msg.payload)
    assert f.lengths == [37, 37, 40]
    parsed = [parse_groups_untrusted(i) for i in f.items]
    assert [g for g, _ in parsed] == [(GROUP_A,), (GROUP_A,), (GROUP_SYNC,)]
    h0 = parse_service_header_untrusted(f.items[0][5:])
    assert (h0.id, h0.size) == (0x00050000, 32)
    assert struct.unpack_from("<4I", f.items[0], 5 + 16) == (1, 1, 3, 1)
    assert struct.unpack_from("<4I", f.items[1], 5 + 16) == (0, 0, 0, 0)
    assert parse_sync_untrusted(f.items[2][8:]) == Barrier(RingId(1, 17))


# -- the big-endian path ------------------------------------------------------------------

def swap_item(item: bytes) -> bytes:
    """A complete totempg item as a big-endian sender would build it."""
    groups, at = parse_groups_untrusted(item, "<")
    body = item[at:]
    if groups == (GROUP_SYNC,):
        new_body = parse_sync_untrusted(body, "<").pack(">")
        new_body += body[len(new_body):]
    else:  # only the service header: the rest is the service's business
        new_body = parse_service_header_untrusted(body, "<").pack(">") + body[16:]
    return group_envelope(groups, ">") + new_body


def swap_mcast(msg: Mcast) -> Mcast:
    if msg.encapsulated == Mcast.ENCAPSULATED:
        payload = swap_mcast(msg.inner()).pack()
    else:
        f = parse_frame_untrusted(msg.payload, "<")
        last = len(f.items) - 1
        items = [
            item if (i == 0 and f.continuation) or (i == last and f.fragmented) else swap_item(item)
            for i, item in enumerate(f.items)
        ]
        payload = dataclasses.replace(f, items=items, byteorder=">").pack()
    return dataclasses.replace(msg, payload=payload, byteorder=">")


def to_big_endian(data: bytes) -> bytes:
    msg = parse_untrusted(data)
    if isinstance(msg, Mcast):
        return swap_mcast(msg).pack()
    return dataclasses.replace(msg, byteorder=">").pack()


def with_byteorder(info: dict, order: str = "big-endian") -> dict:
    out = dict(info, byteorder=order)
    if "inner" in info:
        out["inner"] = with_byteorder(info["inner"], order)
    return out


@pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])
def test_big_endian_datagrams_decode_to_the_same_fields(capture):
    for d in complete_totem_datagrams(capture):
        le = parse_untrusted(d.payload)
        data = to_big_endian(d.payload)
        assert len(data) == len(d.payload)
        # the swap really is per field: magic, header ids reversed, type byte kept
        assert data[:4] == b"\xc0\x70\x03" + d.payload[3:4]
        assert data[5:9] == d.payload[5:9][::-1] and data[9:13] == d.payload[9:13][::-1]
        be = parse_untrusted(data)
        assert be.byteorder == ">"
        assert be.pack() == data
        if isinstance(le, Mcast):
            assert dataclasses.replace(be, byteorder="<", payload=le.payload) == le
        else:
            assert dataclasses.replace(be, byteorder="<") == le
        # everything inside decodes to the same values: dissect sees no difference
        # except the byte order
        assert dissect(data) == with_byteorder(dissect(d.payload)), f"frame {d.frame}"


@pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])
def test_big_endian_frames_envelopes_and_sync_round_trip(capture):
    checked = 0
    for d in complete_totem_datagrams(capture):
        le = parse_untrusted(d.payload)
        if not isinstance(le, Mcast):
            continue
        if le.encapsulated == Mcast.ENCAPSULATED:
            le = le.inner()
        f = parse_frame_untrusted(le.payload, "<")
        fb = dataclasses.replace(f, byteorder=">")
        packed = fb.pack()
        assert packed[6:8] == le.payload[6:8][::-1]  # msg_count swapped
        assert parse_frame_untrusted(packed, ">") == fb
        last = len(f.items) - 1
        for i, item in enumerate(f.items):
            if (i == 0 and f.continuation) or (i == last and f.fragmented):
                continue
            groups, at = parse_groups_untrusted(item, "<")
            env = group_envelope(groups, ">")
            assert parse_groups_untrusted(env + item[at:], ">") == (groups, at)
            if groups == (GROUP_SYNC,):
                sync = parse_sync_untrusted(item[at:], "<")
                assert parse_sync_untrusted(sync.pack(">"), ">") == sync
                checked += 1
            else:
                h = parse_service_header_untrusted(item[at:], "<")
                assert parse_service_header_untrusted(h.pack(">"), ">") == h
                checked += 1
    assert checked > 0


def test_big_endian_initial_token_of_5_4_field_by_field():
    data = to_big_endian(frame(cap("2node-join"), 94).payload)
    assert data == bytes.fromhex(
        "c070 03 00 00 00000001 02000000"  # magic, version, type, encapsulated, nodeid, target
        "00000000 00000000 ffffffff 00000001"  # seq, token_seq, aru, aru_addr
        "00000001 0000000000000009"  # ring id 1.9
        "00000000 00000000 00000000 00000000"  # backlog, fcc, retrans_flg, rtr_list_entries
    )
    msg = parse_untrusted(data)
    assert msg == OrfToken(0, 0, 0xFFFFFFFF, 1, RingId(1, 9), nodeid=1,
                           target_nodeid=0x02000000, byteorder=">")


def test_big_endian_frame_literal():
    f = Frame([b"\x01\x00\x04\x00sync" + bytes(32)], byteorder=">")
    assert f.pack()[:10] == bytes.fromhex("0000 0000 00 00 0001 0028")
    assert group_envelope([GROUP_SYNC], ">") == bytes.fromhex("0001 0004") + b"sync"
    assert Barrier(RingId(1, 9)).pack(">")[:8] == bytes.fromhex("00000000 00000000")
    assert Barrier(RingId(1, 9)).pack(">")[8:28] == bytes.fromhex(
        "00000020 00000000 00000001 0000000000000009")
