"""Every captured totem datagram decodes, and rebuilds to the identical bytes.

Covers totemsrp (all six message types), the totempg frame inside every mcast,
the group envelope of every complete piece, the sync messages of group ``sync``
and the service header of group ``a`` (spec totem-wire.md §2-§3,
services-wire.md §1-§2), for every capture in tests/vectors.
"""

from __future__ import annotations

import collections

import pytest

from _vectors import (
    CAPTURES,
    COROSYNC_CAPTURES,
    SERVICE_CAPTURES,
    complete_totem_datagrams,
    short,
    totem_datagrams,
)
from totem.wire import (
    GROUP_A,
    GROUP_SYNC,
    Barrier,
    Mcast,
    MembCommitToken,
    MembJoin,
    MessageType,
    OrfToken,
    ServiceBuild,
    group_envelope,
    parse_frame_untrusted,
    parse_groups_untrusted,
    parse_service_header_untrusted,
    parse_sync_untrusted,
    parse_untrusted,
)

by_capture = pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])

TRUNCATED = {"corosync-3.1.7-udpu-recovery.pcap": 2}
"""Datagrams whose trailing IP fragments are missing from the file (totem-wire.md §5.1)."""

# Which captures show a membership change (joins and commit tokens), per spec §5.1/§6.1.
MEMBERSHIP = {
    "corosync-3.1.7-udpu-2node-join.pcap",
    "corosync-3.1.7-udpu-3node-join.pcap",
    "corosync-3.1.7-udpu-node-leave.pcap",
    "corosync-3.1.7-udpu-node-leave-graceful.pcap",
    "corosync-3.1.7-udpu-pyprobe-interop.pcap",
    "corosync-3.1.7-udpu-recovery.pcap",
    *SERVICE_CAPTURES,
}


def decoded(capture: str):
    """(datagram, message) for every complete datagram to the totem port."""
    return [(d, parse_untrusted(d.payload)) for d in complete_totem_datagrams(capture)]


def complete_pieces(frame):
    """The pieces of a frame that are whole messages (spec totem-wire.md §3.3)."""
    last = len(frame.items) - 1
    for i, item in enumerate(frame.items):
        if i == 0 and frame.continuation:
            continue
        if i == last and frame.fragmented:
            continue
        yield item


def normal_mcasts(capture: str):
    """Every encapsulated==2 mcast, including those wrapped in a recovery rebroadcast."""
    for d, msg in decoded(capture):
        if isinstance(msg, Mcast):
            yield d, (msg.inner() if msg.encapsulated == Mcast.ENCAPSULATED else msg)


@by_capture
def test_every_datagram_parses_and_rebuilds_exactly(capture):
    datagrams = totem_datagrams(capture)
    assert datagrams, "capture has no datagrams to the totem port"
    truncated = [d for d in datagrams if d.truncated]
    assert len(truncated) == TRUNCATED.get(capture, 0)
    for d in datagrams:
        if d.truncated:
            continue
        msg = parse_untrusted(d.payload)
        assert msg.pack() == d.payload, f"frame {d.frame}: rebuilt bytes differ"
        # corosync 3.1.7 x86_64 nodes: everything little-endian, never trailing bytes
        assert msg.byteorder == "<", f"frame {d.frame}"
        assert getattr(msg, "trailing", b"") == b"", f"frame {d.frame}"


def test_the_eight_corosync_captures_hold_2991_complete_datagrams():
    # totem-wire.md §5.1: "2,991 datagrams checked by strictcheck.py" + 2 truncated
    assert sum(len(complete_totem_datagrams(c)) for c in COROSYNC_CAPTURES) == 2991
    assert sum(len(totem_datagrams(c)) for c in COROSYNC_CAPTURES) == 2993


@by_capture
def test_message_type_counts_fit_the_scenario(capture):
    counts = collections.Counter(msg.type for _, msg in decoded(capture))
    assert counts[MessageType.mcast] > 0
    # the representative of an idle ring sends merge detects (§4.7, §5.11)
    assert counts[MessageType.memb_merge_detect] > 0
    if capture in SERVICE_CAPTURES:
        assert counts[MessageType.orf_token] == 0, "services-* captures filter out ORF tokens"
    else:
        assert counts[MessageType.orf_token] > counts[MessageType.mcast] / 2
    if capture in MEMBERSHIP:
        assert counts[MessageType.memb_join] > 0
        assert counts[MessageType.memb_commit_token] > 0
    else:  # steady ring: no membership traffic at all
        assert counts[MessageType.memb_join] == 0
        assert counts[MessageType.memb_commit_token] == 0
    assert sum(counts.values()) == len(complete_totem_datagrams(capture))


def test_scenario_specific_messages_are_present():
    def msgs(name):
        return [m for _, m in decoded(f"corosync-3.1.7-udpu-{name}.pcap")]

    commits = {len(m.addr) for m in msgs("2node-join") if isinstance(m, MembCommitToken)}
    assert 2 in commits
    commits = {len(m.addr) for m in msgs("3node-join") if isinstance(m, MembCommitToken)}
    assert 3 in commits
    leaves = [m for m in msgs("node-leave-graceful") if isinstance(m, MembJoin) and m.is_leave]
    assert leaves and all(m.failed_list[-1] == m.system_from for m in leaves)
    assert not [m for m in msgs("node-leave") if isinstance(m, MembJoin) and m.is_leave]
    assert any(isinstance(m, OrfToken) and m.rtr_list for m in msgs("retransmit"))
    assert any(isinstance(m, OrfToken) and m.retrans_flg for m in msgs("recovery"))
    assert any(m.type == MessageType.token_hold_cancel for m in msgs("cpg-traffic"))
    enc = [m for m in msgs("recovery") if isinstance(m, Mcast) and m.encapsulated == 1]
    assert len(enc) == 4
    assert not [m for c in CAPTURES if c != "corosync-3.1.7-udpu-recovery.pcap"
                for _, m in decoded(c) if isinstance(m, Mcast) and m.encapsulated == 1]


@by_capture
def test_mcast_payloads_are_exact_totempg_frames(capture):
    frames = 0
    for d, msg in normal_mcasts(capture):
        assert msg.encapsulated == Mcast.NORMAL
        frame = parse_frame_untrusted(msg.payload, msg.byteorder)
        assert frame.pack() == msg.payload, f"frame {d.frame}"
        assert frame.version == 0 and frame.type == 0
        assert len(frame.items) >= 1
        assert 8 + 2 * len(frame.items) + sum(frame.lengths) == len(msg.payload)
        frames += 1
    assert frames > 0


@by_capture
def test_complete_pieces_have_group_envelope_and_service_message(capture):
    groups_seen = collections.Counter()
    for d, msg in normal_mcasts(capture):
        frame = parse_frame_untrusted(msg.payload, msg.byteorder)
        for item in complete_pieces(frame):
            groups, at = parse_groups_untrusted(item, msg.byteorder)
            assert group_envelope(groups, msg.byteorder) == item[:at]
            assert len(groups) == 1, "corosync always sends one group"
            groups_seen[groups[0]] += 1
            body = item[at:]
            if groups == (GROUP_SYNC,):
                sync = parse_sync_untrusted(body, msg.byteorder)
                assert isinstance(sync, (Barrier, ServiceBuild)), f"frame {d.frame}"
                assert sync.ring_id == msg.ring_id, f"frame {d.frame}"
                assert sync.header.size == len(body) == (32 if isinstance(sync, Barrier) else 552)
                assert sync.pack(msg.byteorder) == body, f"frame {d.frame}"
            elif groups == (GROUP_A,):
                header = parse_service_header_untrusted(body, msg.byteorder)
                assert header.size == len(body), f"frame {d.frame}: {header}"
                assert header.pack(msg.byteorder) == body[:16]
                assert 0 <= header.service <= 7, f"frame {d.frame}: {header}"
    assert groups_seen[GROUP_A] > 0
    unexpected = set(groups_seen) - {GROUP_A, GROUP_SYNC}
    if capture == "corosync-3.1.7-udpu-pyprobe-interop.pcap":
        assert unexpected == {b"zz"}  # the probe's test message (totem-wire.md §3.4)
    else:
        assert unexpected == set()
    # no sync in a steady ring; every other capture forms a ring and synchronises
    steady = capture in ("corosync-3.1.7-udpu-cpg-traffic.pcap",
                         "corosync-3.1.7-udpu-retransmit.pcap")
    assert (groups_seen[GROUP_SYNC] == 0) == steady


@by_capture
def test_sync_service_builds_list_the_default_services(capture):
    builds = []
    for _, msg in normal_mcasts(capture):
        frame = parse_frame_untrusted(msg.payload, msg.byteorder)
        for item in complete_pieces(frame):
            groups, at = parse_groups_untrusted(item, msg.byteorder)
            if groups == (GROUP_SYNC,):
                sync = parse_sync_untrusted(item[at:], msg.byteorder)
                if isinstance(sync, ServiceBuild):
                    builds.append((msg.nodeid, sync))
    if capture in ("corosync-3.1.7-udpu-cpg-traffic.pcap", "corosync-3.1.7-udpu-retransmit.pcap"):
        assert builds == []
        return
    assert builds
    for nodeid, b in builds:
        assert b.unused == ()
        if capture == "corosync-3.1.7-udpu-pyprobe-interop.pcap" and nodeid == 2:
            assert b.services == ()  # the probe announces an empty list (services-wire §6.7)
        elif capture == "services-union-and-stall.pcapng":
            assert b.services in ((0, 2, 3, 5), (0, 2, 3))  # n3 runs without votequorum
        else:
            assert b.services == (0, 2, 3, 5), (nodeid, b)


def test_encapsulated_mcasts_wrap_a_normal_old_ring_mcast():
    capture = "corosync-3.1.7-udpu-recovery.pcap"
    seen = 0
    for d, msg in decoded(capture):
        if not (isinstance(msg, Mcast) and msg.encapsulated == Mcast.ENCAPSULATED):
            continue
        seen += 1
        inner = msg.inner()
        assert inner.encapsulated == Mcast.NORMAL
        assert inner.pack() == msg.payload, f"frame {d.frame}"
        assert inner.ring_id != msg.ring_id, "inner keeps the old ring id"
        assert inner.ring_id.seq < msg.ring_id.seq
        frame = parse_frame_untrusted(inner.payload, inner.byteorder)
        assert frame.pack() == inner.payload
    assert seen == 4
