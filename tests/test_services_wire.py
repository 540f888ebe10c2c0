"""Service exec messages (totem.services) against the captures of real corosync 3.1.7.

The helpers here (``delivered``) decode a capture the way a node delivers it: one
copy of every mcast (recovery re-multicasts unwrapped), in ring-seq order, frames
reassembled per sender. test_sync_replay.py reuses them.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import pytest
from construct import Container
from hypothesis import given, settings
from hypothesis import strategies as st

from _vectors import complete_totem_datagrams
from totem.pg import PgReceiver
from totem.services import cmap, cpg, votequorum
from totem.services.cmap import CmapItem, CmapMcast, CmapReason, CmapValueType
from totem.services.cpg import CpgName, DownList, JoinList, JoinListEntry, ProcJoin
from totem.services.layouts import layouts
from totem.services.votequorum import NodeInfo
from totem.wire import Barrier, Mcast, RingId, ServiceBuild, WireError, parse_sync_untrusted, parse_untrusted

CPG_CAPTURE = "services-3node-cpg.pcapng"
CMAP_CAPTURE = "services-cfg-cmap.pcapng"
UNION_CAPTURE = "services-union-and-stall.pcapng"


@dataclass(frozen=True)
class Delivered:
    ring: RingId
    seq: int
    sender: int
    groups: tuple[bytes, ...]
    body: bytes
    frame: int

    @property
    def kind(self) -> str:
        """``sync.BARRIER``, ``sync.SERVICE_BUILD`` or ``<service>.<fn>`` for exec messages."""
        if self.groups == (b"sync",):
            m = parse_sync_untrusted(self.body)
            return "sync.BARRIER" if isinstance(m, Barrier) else "sync.SERVICE_BUILD"
        (id_,) = struct.unpack_from("<i", self.body)
        return f"{id_ >> 16}.{id_ & 0xFFFF}"


@functools.cache
def delivered(name: str) -> tuple[Delivered, ...]:
    """Every complete message of a capture, as the ring delivered it (rings by seq, then rep)."""
    mcasts: dict[tuple[RingId, int], tuple[int, Mcast]] = {}
    for d in complete_totem_datagrams(name):
        m = parse_untrusted(d.payload)
        if not isinstance(m, Mcast):
            continue
        if m.encapsulated == Mcast.ENCAPSULATED:
            m = m.inner()
        mcasts.setdefault((m.ring_id, m.seq), (d.frame, m))
    receiver = PgReceiver()
    out = []
    for ring, seq in sorted(mcasts, key=lambda k: (k[0].seq, k[0].rep, k[1])):
        frame, m = mcasts[(ring, seq)]
        for gm in receiver.deliver(m.system_from, m.payload, m.byteorder):
            out.append(Delivered(ring, seq, gm.sender, gm.groups, gm.body, frame))
    assert receiver.stats["desyncs"] == receiver.stats["malformed_frames"] == 0
    return tuple(out)


def of_kind(name: str, kind: str) -> list[Delivered]:
    return [d for d in delivered(name) if d.kind == kind]


def one(name: str, kind: str, ring: RingId, sender: int) -> bytes:
    (d,) = [d for d in of_kind(name, kind) if d.ring == ring and d.sender == sender]
    return d.body


R9, R13, R17 = RingId(1, 9), RingId(1, 13), RingId(1, 17)


# -- the decoded captures look like spec §2.4 says -------------------------------------------


def test_ring_13_delivery_order_is_the_spec_table() -> None:
    seq = [(d.kind, d.sender) for d in delivered(CPG_CAPTURE) if d.ring == R13][:24]
    sb, b = "sync.SERVICE_BUILD", "sync.BARRIER"
    assert seq == [
        (sb, 2), (sb, 3), (sb, 1),
        ("0.0", 1), (b, 1), ("0.0", 2), (b, 2), ("0.0", 3), (b, 3),
        ("2.5", 3), (b, 3), ("2.5", 1), ("2.2", 1), (b, 1), ("2.5", 2), (b, 2),
        (b, 2), (b, 3), (b, 1),
        ("5.0", 1), ("5.0", 1), (b, 1), ("5.0", 2), ("5.0", 2),
    ][:24]


# -- sync messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [CPG_CAPTURE, CMAP_CAPTURE, UNION_CAPTURE])
def test_sync_messages_rebuild_from_ring_and_list(name: str) -> None:
    n = 0
    for d in delivered(name):
        if d.groups != (b"sync",):
            continue
        m = parse_sync_untrusted(d.body)
        if isinstance(m, Barrier):
            assert Barrier(m.ring_id).pack() == d.body
        else:
            assert ServiceBuild(m.ring_id, m.services).pack() == d.body
        n += 1
    assert n > 20


# -- cmap ----------------------------------------------------------------------------------------


def test_cmap_sync_not_exist_is_byte_exact() -> None:
    bodies = {d.body for d in of_kind(CPG_CAPTURE, "0.0")} | {d.body for d in of_kind(CMAP_CAPTURE, "0.0")
                                                              if d.body[16] == CmapReason.SYNC}
    assert bodies == {cmap.build_sync_message(None)}
    assert len(cmap.build_sync_message(None)) == 328


def test_cmap_new_config_version_uint64_is_byte_exact() -> None:
    bodies = [d.body for d in of_kind(CMAP_CAPTURE, "0.0") if d.body[16] == CmapReason.NEW_CONFIG_VERSION]
    assert len(bodies) == 2
    msg = cmap.parse_mcast_untrusted(bodies[0])
    assert msg.reason == CmapReason.NEW_CONFIG_VERSION
    assert msg.items == (CmapItem(b"totem.config_version", CmapValueType.UINT64, (7).to_bytes(8, "little")),)
    assert msg.items[0].as_uint() == 7
    built = CmapMcast(CmapReason.NEW_CONFIG_VERSION, msg.items).pack()
    assert built == bodies[0] == bodies[1] and len(built) == 336
    # the sync message with a version differs from it in the reason byte only
    sync = cmap.build_sync_message(7)
    assert sync[:16] + sync[17:] == built[:16] + built[17:] and sync[16] == CmapReason.SYNC


@pytest.mark.parametrize("name", [CPG_CAPTURE, CMAP_CAPTURE, UNION_CAPTURE])
def test_every_captured_cmap_mcast_round_trips(name: str) -> None:
    for d in of_kind(name, "0.0"):
        assert cmap.parse_mcast_untrusted(d.body).pack() == d.body


def test_cmap_layout_parses_like_the_codec() -> None:
    body = cmap.build_sync_message(9)
    lay = layouts("<")
    fixed = lay.cmap_mcast.parse(body)
    assert (fixed.header.size, fixed.reason, fixed.no_items) == (len(body), 0, 1)
    item = lay.cmap_mcast_item.parse(body[48:])
    assert item.key_name_value[:item.key_name_length] == b"totem.config_version"
    assert (item.value_type, item.value_len) == (CmapValueType.UINT64, 8)
    assert body[48 + 280:48 + 288] == (9).to_bytes(8, "little")


@pytest.mark.parametrize("cut", [0, 47, 48, 100, 327])
def test_cmap_truncated_raises_wire_error(cut: int) -> None:
    with pytest.raises(WireError):
        cmap.parse_mcast_untrusted(cmap.build_sync_message(None)[:cut])


# -- CPG ---------------------------------------------------------------------------------------------


def test_downlists_are_byte_exact() -> None:
    # spec §6.5: node 2 at ring 1/17 after node 3 stopped, old membership 3
    body = one(CPG_CAPTURE, "2.5", R17, 2)
    assert DownList(3, 1, (3,) + (0,) * 383).pack() == body
    d = cpg.parse_downlist_untrusted(body)
    assert (d.old_members, d.left_nodes, d.left) == (3, 1, (3,))
    # nobody left: node 1 at ring 1/13 (old membership 2), node 3 at 1/13 (alone before)
    assert DownList(2, 0).pack() == one(CPG_CAPTURE, "2.5", R13, 1)
    assert DownList(1, 0).pack() == one(CPG_CAPTURE, "2.5", R13, 3)
    for d in of_kind(CPG_CAPTURE, "2.5"):
        assert len(d.body) == cpg.DOWNLIST_SIZE
        assert cpg.parse_downlist_untrusted(d.body).pack() == d.body


def test_joinlist_is_byte_exact_with_the_name_bytes_of_the_procjoin() -> None:
    """corosync copies the whole name structure (garbage included) from the PROCJOIN it
    delivered into its joinlists; so does the table here."""
    procjoin = one(CPG_CAPTURE, "2.0", RingId(1, 5), 1)
    pj = cpg.parse_procjoin_untrusted(procjoin)
    assert (pj.group.name, pj.pid, pj.reason, pj.fn) == (b"probe", 20779, cpg.CpgReason.JOIN, cpg.CpgFn.PROCJOIN)
    assert pj.group.value[5:] != bytes(123)  # the sender's garbage
    assert pj.pack() == procjoin
    for ring in (R9, R13):
        body = one(CPG_CAPTURE, "2.2", ring, 1)
        assert JoinList((JoinListEntry(20779, pj.group),)).pack() == body
        jl = cpg.parse_joinlist_untrusted(body)
        assert jl.pack() == body
        assert [(e.pid, e.group.name) for e in jl.entries] == [(20779, b"probe")]


def test_joinlist_and_procjoin_from_a_zeroed_name_differ_only_in_garbage() -> None:
    body = one(CPG_CAPTURE, "2.2", R13, 1)
    ours = JoinList((JoinListEntry(20779, CpgName.of(b"probe")),)).pack()
    assert len(ours) == len(body) == 168
    # garbage only in the name structure's pad (@+12) and after the name (@+16+5)
    entry = 24
    garbage = set(range(entry + 12, entry + 16)) | set(range(entry + 16 + 5, entry + 144))
    assert {i for i in range(168) if ours[i] != body[i]} <= garbage


def test_procleave_and_mcast_round_trip() -> None:
    (leave,) = of_kind(CPG_CAPTURE, "2.1")
    pl = cpg.parse_procjoin_untrusted(leave.body)
    assert (pl.fn, pl.group.name, pl.reason, leave.sender) == (cpg.CpgFn.PROCLEAVE, b"probe",
                                                              cpg.CpgReason.PROCDOWN, 2)
    assert pl.pack() == leave.body
    mcasts = of_kind(CPG_CAPTURE, "2.3")
    assert len(mcasts) == 5
    for d in mcasts:
        m = cpg.parse_mcast_untrusted(d.body)
        assert m.pack() == d.body
        assert m.group.name == b"probe" and m.source_nodeid == d.sender
        assert m.data == f"hello-from-{d.sender}-#".encode() + m.data[-1:]
    # spec §6.4, frame 347
    (m347,) = [d for d in mcasts if d.frame == 347]
    m = cpg.parse_mcast_untrusted(m347.body)
    assert (m.pid, m.msglen, m.data, m.header.size) == (20974, 15, b"hello-from-2-#0", 199)


def test_cpg_builders_match_the_construct_layouts() -> None:
    lay = layouts("<")
    pj = lay.cpg_procjoin.parse(ProcJoin(CpgName.of(b"grp"), 77, 1).pack())
    assert (pj.header.id, pj.header.size, pj.group_name.length, pj.pid, pj.reason) == (0x20000, 168, 3, 77, 1)
    dl = lay.cpg_downlist.parse(DownList(4, 2, (5, 6) + (0,) * 382).pack())
    assert (dl.header.id, dl.header.size, dl.old_members, dl.left_nodes, list(dl.nodeids[:3])) == (
        0x20005, 1568, 4, 2, [5, 6, 0])
    body = JoinList((JoinListEntry(9, CpgName.of(b"a")), JoinListEntry(10, CpgName.of(b"bb")))).pack()
    head = lay.cpg_joinlist_fixed.parse(body)
    assert (head.id, head.size, head.error) == (0x20002, 24 + 2 * 144, 0)
    e1 = lay.cpg_joinlist_entry.parse(body[24 + 144:])
    assert (e1.pid, e1.group_name.length, e1.group_name.value[:2]) == (10, 2, b"bb")
    assert isinstance(e1, Container)


def test_cpg_parsers_reject_bad_input() -> None:
    good = JoinList((JoinListEntry(9, CpgName.of(b"a")),)).pack()
    for bad in (good[:23], good[:100], good[:8] + struct.pack("<i", 25) + good[12:],
                good[:8] + struct.pack("<i", 1000) + good[12:]):
        with pytest.raises(WireError):
            cpg.parse_joinlist_untrusted(bad)
    long_name = ProcJoin(CpgName(129, bytes(128)), 1, 1).pack()
    with pytest.raises(WireError):
        cpg.parse_procjoin_untrusted(long_name)
    with pytest.raises(WireError):
        cpg.parse_procjoin_untrusted(long_name[:167])
    with pytest.raises(WireError):
        cpg.parse_downlist_untrusted(DownList(1, 0).pack()[:1567])
    with pytest.raises(WireError):
        cpg.parse_downlist_untrusted(DownList(1, 385).pack())
    mc = cpg.CpgMcast(CpgName.of(b"g"), 1, b"xyz").pack()
    with pytest.raises(WireError):
        cpg.parse_mcast_untrusted(mc[:-1])


def test_cpg_name_equality_ignores_garbage() -> None:
    a = CpgName.of(b"probe")
    b = CpgName(5, b"probe" + b"\xff" * 123, b"\x01\x02\x03\x04")
    assert a == b and hash(a) == hash(b)
    assert a != CpgName.of(b"probe2") and a != CpgName(4, a.value)
    assert CpgName.of(b"a\\b\x01").printable() == "a\\\\b\\x01"


# -- votequorum -------------------------------------------------------------------------------------


def test_nodeinfos_are_byte_exact() -> None:
    bodies = of_kind(CPG_CAPTURE, "5.0")
    assert len(bodies) > 20
    for d in bodies:
        m = votequorum.parse_nodeinfo_untrusted(d.body)
        assert NodeInfo(m.nodeid, m.votes, m.expected_votes, m.flags).pack() == d.body
    # spec §6.6, frame 441: node 1's own NODEINFO (quorate) and the device slot
    frame441 = [d.body for d in bodies if d.frame == 441]
    assert frame441 == [NodeInfo(1, 1, 3, 1).pack(), NodeInfo(0, 0, 0, 0).pack()]
    # what this node sends (flags 0) is what node 3 sent at ring 1/13
    svc = votequorum.VotequorumService(3, expected_votes=3)
    svc.sync_init((3,), (1, 2, 3), R13)
    msgs, done = svc.sync_process()
    assert done and msgs == [d.body for d in bodies if d.ring == R13 and d.sender == 3]


def test_nodeinfo_layout_and_bad_input() -> None:
    body = NodeInfo(7, 2, 9, 0x11).pack()
    p = layouts("<").votequorum_nodeinfo.parse(body)
    assert (p.header.id, p.header.size, p.nodeid, p.votes, p.expected_votes, p.flags) == (0x50000, 32, 7, 2, 9, 0x11)
    with pytest.raises(WireError):
        votequorum.parse_nodeinfo_untrusted(body[:31])


# -- the parsers never raise anything but WireError -------------------------------------------------

PARSERS = [cmap.parse_mcast_untrusted, cpg.parse_procjoin_untrusted, cpg.parse_joinlist_untrusted,
           cpg.parse_downlist_untrusted, cpg.parse_mcast_untrusted, votequorum.parse_nodeinfo_untrusted]
SEEDS = [cmap.build_sync_message(5), ProcJoin(CpgName.of(b"g"), 1, 1).pack(),
         JoinList((JoinListEntry(9, CpgName.of(b"a")),)).pack(), DownList(1, 1, (2,) + (0,) * 383).pack(),
         cpg.CpgMcast(CpgName.of(b"g"), 1, b"xyz").pack(), NodeInfo(1, 1, 1, 0).pack()]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(PARSERS) - 1), st.data())
def test_parsers_raise_only_wire_error(which: int, data: st.DataObject) -> None:
    seed = bytearray(SEEDS[which])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8))
    for pos, val in edits:
        seed[pos] = val
    cut = data.draw(st.integers(0, len(seed)))
    try:
        PARSERS[which](bytes(seed[:cut]))
    except WireError:
        pass


# -- construct layouts agree with the codecs on every captured message -------------------------


def test_layout_sizes_are_the_spec_sizes() -> None:
    lay = layouts("<")
    sizes = {name: getattr(lay, name).sizeof() for name in (
        "cmap_mcast", "cmap_mcast_item", "cpg_name", "cpg_procjoin", "cpg_joinlist_fixed", "cpg_joinlist_entry",
        "cpg_mcast_fixed", "cpg_partial_mcast_fixed", "cpg_downlist", "cpg_downlist_old", "votequorum_nodeinfo",
        "votequorum_reconfigure")}
    assert sizes == {"cmap_mcast": 48, "cmap_mcast_item": 280, "cpg_name": 136, "cpg_procjoin": 168,
                     "cpg_joinlist_fixed": 24, "cpg_joinlist_entry": 144, "cpg_mcast_fixed": 184,
                     "cpg_partial_mcast_fixed": 200, "cpg_downlist": 1568, "cpg_downlist_old": 1560,
                     "votequorum_nodeinfo": 32, "votequorum_reconfigure": 32}
    big = layouts(">")
    assert big.cpg_downlist.build(dict(header=dict(id=0x20005, pad0=bytes(4), size=1568, pad1=bytes(4)),
                                       old_members=1, pad0=bytes(4), left_nodes=0, pad1=bytes(4),
                                       nodeids=[0] * 384))[:4] == b"\x00\x02\x00\x05"


@pytest.mark.parametrize("name", [CPG_CAPTURE, CMAP_CAPTURE, UNION_CAPTURE])
def test_construct_and_codecs_agree_on_captured_messages(name: str) -> None:
    lay = layouts("<")
    n = 0
    for d in delivered(name):
        k = d.kind
        if k in ("2.0", "2.1"):
            c, m = lay.cpg_procjoin.parse(d.body), cpg.parse_procjoin_untrusted(d.body)
            assert (c.group_name.length, c.group_name.value, c.pid, c.reason) == (
                m.group.length, m.group.value, m.pid, m.reason)
        elif k == "2.2":
            m = cpg.parse_joinlist_untrusted(d.body)
            for i, e in enumerate(m.entries):
                c = lay.cpg_joinlist_entry.parse(d.body[24 + 144 * i:])
                assert (c.pid, c.group_name.length, c.group_name.value, c.group_name.pad) == (
                    e.pid, e.group.length, e.group.value, e.group.pad)
        elif k == "2.3":
            c, m = lay.cpg_mcast_fixed.parse(d.body), cpg.parse_mcast_untrusted(d.body)
            assert (c.msglen, c.pid, c.source.nodeid, c.source.conn, c.group_name.value) == (
                m.msglen, m.pid, m.source_nodeid, m.source_conn, m.group.value)
        elif k == "2.5":
            c, m = lay.cpg_downlist.parse(d.body), cpg.parse_downlist_untrusted(d.body)
            assert (c.old_members, c.left_nodes, tuple(c.nodeids)) == (m.old_members, m.left_nodes, m.nodeids)
        elif k == "5.0":
            c, m = lay.votequorum_nodeinfo.parse(d.body), votequorum.parse_nodeinfo_untrusted(d.body)
            assert (c.nodeid, c.votes, c.expected_votes, c.flags) == (m.nodeid, m.votes, m.expected_votes, m.flags)
        elif k == "0.0":
            c, m = lay.cmap_mcast.parse(d.body), cmap.parse_mcast_untrusted(d.body)
            assert (c.reason, c.no_items, c.header.size) == (m.reason, len(m.items), len(d.body))
        else:
            continue
        n += 1
    assert n > 20
