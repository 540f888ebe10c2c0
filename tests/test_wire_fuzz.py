"""Property tests of the wire codecs.

(a) Generated messages of every kind survive ``parse(pack(x)) == x`` in both byte
    orders.
(b) Bytes from outside -- random, truncated captures, mutated captures -- make
    the parsers either return or raise WireError with an offset inside the input,
    never anything else; whatever parses rebuilds to the same bytes; and
    dissect() never raises.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _vectors import distinct_payloads
from totem.dissect import dissect, summary
from totem.wire import (
    Barrier,
    Frame,
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    OrfToken,
    RingId,
    RtrItem,
    ServiceBuild,
    ServiceHeader,
    TokenHoldCancel,
    WireError,
    group_envelope,
    parse_frame_untrusted,
    parse_groups_untrusted,
    parse_service_header_untrusted,
    parse_sync_untrusted,
    parse_untrusted,
)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-0x80000000, 0x7FFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
orders = st.sampled_from("<>")
ring_ids = st.builds(RingId, u32, u64)
trailing = st.one_of(st.just(b""), st.binary(min_size=1, max_size=40))
ids = st.lists(u32, max_size=20)


# -- (a) round trips --------------------------------------------------------------------

orf_tokens = st.builds(
    OrfToken, seq=u32, token_seq=u32, aru=u32, aru_addr=u32, ring_id=ring_ids,
    backlog=u32, fcc=u32, retrans_flg=i32,
    rtr_list=st.lists(st.builds(RtrItem, ring_ids, u32), max_size=40),
    nodeid=u32, target_nodeid=u32, encapsulated=u8, byteorder=orders, trailing=trailing,
)
mcasts = st.builds(
    Mcast, system_from=u32, seq=u32, ring_id=ring_ids, payload=st.binary(max_size=300),
    this_seqno=i32, encapsulated=st.sampled_from([1, 2]), node_id=u32, guarantee=i32,
    nodeid=u32, target_nodeid=u32, byteorder=orders,
)
merge_detects = st.builds(
    MembMergeDetect, system_from=u32, ring_id=ring_ids, nodeid=u32, target_nodeid=u32,
    encapsulated=u8, byteorder=orders, trailing=trailing,
)
joins = st.builds(
    MembJoin, system_from=u32, proc_list=ids.map(tuple), failed_list=ids.map(tuple),
    ring_seq=u64, nodeid=u32, target_nodeid=u32, encapsulated=u8, byteorder=orders,
    trailing=trailing,
)
memb_entries = st.builds(MembEntry, ring_ids, u32, u32, u32)


@st.composite
def commit_tokens(draw):
    n = draw(st.integers(0, 20))
    return MembCommitToken(
        token_seq=draw(u32), ring_id=draw(ring_ids), memb_index=draw(i32),
        addr=draw(st.lists(u32, min_size=n, max_size=n)),
        memb_list=draw(st.lists(memb_entries, min_size=n, max_size=n)),
        retrans_flg=draw(u32), nodeid=draw(u32), target_nodeid=draw(u32),
        encapsulated=draw(u8), byteorder=draw(orders), trailing=draw(trailing),
    )


hold_cancels = st.builds(
    TokenHoldCancel, ring_id=ring_ids, nodeid=u32, target_nodeid=u32, encapsulated=u8,
    byteorder=orders, trailing=trailing,
)

@ROUND_TRIP
@given(orf_tokens)
def test_orf_token_round_trip(msg):
    data = msg.pack()
    assert len(data) == 57 + 16 * len(msg.rtr_list) + len(msg.trailing)
    assert parse_untrusted(data) == msg


@ROUND_TRIP
@given(mcasts)
def test_mcast_round_trip(msg):
    data = msg.pack()
    assert len(data) == 45 + len(msg.payload)
    assert parse_untrusted(data) == msg


@ROUND_TRIP
@given(merge_detects)
def test_merge_detect_round_trip(msg):
    assert parse_untrusted(msg.pack()) == msg


@ROUND_TRIP
@given(joins)
def test_join_round_trip(msg):
    data = msg.pack()
    assert len(data) == 33 + 4 * (len(msg.proc_list) + len(msg.failed_list)) + len(msg.trailing)
    assert parse_untrusted(data) == msg


@ROUND_TRIP
@given(commit_tokens())
def test_commit_token_round_trip(msg):
    data = msg.pack()
    assert len(data) == 41 + 28 * len(msg.addr) + len(msg.trailing)
    assert parse_untrusted(data) == msg


@ROUND_TRIP
@given(hold_cancels)
def test_token_hold_cancel_round_trip(msg):
    assert parse_untrusted(msg.pack()) == msg


@ROUND_TRIP
@given(mcasts.filter(lambda m: m.encapsulated == 2), u32, u32, ring_ids)
def test_encapsulated_mcast_round_trip(inner, system_from, seq, ring_id):
    outer = Mcast(system_from, seq, ring_id, inner.pack(), encapsulated=1, nodeid=system_from,
                  byteorder=inner.byteorder)
    assert parse_untrusted(outer.pack()) == outer
    assert outer.inner() == inner


frames = st.builds(
    Frame, items=st.lists(st.binary(max_size=200), max_size=20), fragmented=u8,
    continuation=u8, version=i16, type=i16, byteorder=orders,
)


@ROUND_TRIP
@given(frames)
def test_frame_round_trip(frame):
    data = frame.pack()
    assert len(data) == 8 + 2 * len(frame.items) + sum(frame.lengths)
    assert parse_frame_untrusted(data, frame.byteorder) == frame


@ROUND_TRIP
@given(st.lists(st.binary(max_size=30), max_size=6), st.binary(max_size=100), orders)
def test_group_envelope_round_trip(groups, body, order):
    envelope = group_envelope(groups, order)
    assert len(envelope) == 2 + 2 * len(groups) + sum(map(len, groups))
    assert parse_groups_untrusted(envelope + body, order) == (tuple(groups), len(envelope))


service_headers = st.builds(ServiceHeader, id=i32, size=i32, pad0=st.binary(min_size=4, max_size=4),
                            pad1=st.binary(min_size=4, max_size=4))


@ROUND_TRIP
@given(service_headers, st.binary(max_size=50), orders)
def test_service_header_round_trip(header, rest, order):
    assert parse_service_header_untrusted(header.pack(order) + rest, order) == header


@ROUND_TRIP
@given(ring_ids, service_headers, orders)
def test_barrier_round_trip(ring_id, header, order):
    barrier = Barrier(ring_id, ServiceHeader(0, header.size, header.pad0, header.pad1))
    data = barrier.pack(order)
    assert len(data) == 32
    assert parse_sync_untrusted(data, order) == barrier


@st.composite
def service_builds(draw):
    services = tuple(draw(st.lists(i32, max_size=128)))
    unused = draw(st.lists(i32, max_size=128 - len(services)))
    while unused and unused[-1] == 0:  # the parser keeps unused slots up to the last non-zero
        unused.pop()
    header = draw(service_headers)
    return ServiceBuild(draw(ring_ids), services,
                        ServiceHeader(1, header.size, header.pad0, header.pad1), tuple(unused))


@ROUND_TRIP
@given(service_builds(), orders)
def test_service_build_round_trip(build, order):
    data = build.pack(order)
    assert len(data) == 552
    assert parse_sync_untrusted(data, order) == build


# -- (b) untrusted bytes ----------------------------------------------------------------

def guarded(fn, data: bytes, *args):
    """fn(data, *args), or None if it raised WireError with an offset inside ``data``.

    Any other exception propagates and fails the test.
    """
    try:
        return fn(data, *args)
    except WireError as exc:
        assert type(exc.offset) is int, exc
        assert 0 <= exc.offset <= len(data), f"{exc} outside 0..{len(data)}"
        assert isinstance(exc.what, str) and exc.what
        return None


def exercise(data: bytes) -> None:
    """Run every parser on ``data`` the way a receiver would, and directly."""
    msg = guarded(parse_untrusted, data)
    if msg is not None:
        assert msg.pack() == data, "whatever parses must rebuild to the same bytes"
        if isinstance(msg, Mcast):
            if msg.encapsulated == Mcast.ENCAPSULATED:
                inner = guarded(lambda _d: msg.inner(), data)
                if inner is not None:
                    exercise_frame(inner.payload, inner.byteorder)
            else:
                exercise_frame(msg.payload, msg.byteorder)
    for order in "<>":
        exercise_frame(data, order)
        exercise_body(data, order)
    info = dissect(data)
    assert isinstance(info, dict)
    if msg is None:
        assert info["type"] is None and "error" in info
    else:
        assert info["type"] == msg.type.name
    assert isinstance(summary(info), str)


def exercise_frame(payload: bytes, order: str) -> None:
    frame = guarded(parse_frame_untrusted, payload, order)
    if frame is None:
        return
    assert frame.pack() == payload
    for item in frame.items:
        parsed = guarded(parse_groups_untrusted, item, order)
        if parsed is not None:
            groups, at = parsed
            assert 0 <= at <= len(item)
            assert group_envelope(groups, order) == item[:at]
            exercise_body(item[at:], order)


def exercise_body(body: bytes, order: str) -> None:
    header = guarded(parse_service_header_untrusted, body, order)
    if header is not None:
        assert header.pack(order) == body[:16]
    sync = guarded(parse_sync_untrusted, body, order)
    if sync is not None:
        assert parse_sync_untrusted(sync.pack(order), order) == sync


def totem_header(order: str, kind: int) -> bytes:
    return struct.pack(order + "HBB", 0xC070, 3, kind)


# random bytes, and random bytes behind a valid header so that they reach the bodies
random_datagrams = st.one_of(
    st.binary(max_size=1600),
    st.builds(lambda o, k, rest: totem_header(o, k) + rest, orders, st.integers(0, 7),
              st.binary(max_size=200)),
)


@FUZZ
@given(random_datagrams)
def test_random_bytes_raise_only_wire_error(data):
    exercise(data)


def test_every_truncation_of_every_captured_datagram():
    payloads = distinct_payloads()
    assert len(payloads) > 2000
    failures_by_length = 0
    for data in payloads:
        for n in range(len(data)):
            cut = data[:n]
            msg = guarded(parse_untrusted, cut)
            if msg is not None:
                assert msg.pack() == cut
                if isinstance(msg, Mcast) and msg.encapsulated == 2:
                    # a shortened mcast is a frame that no longer fits
                    assert guarded(parse_frame_untrusted, msg.payload, msg.byteorder) is None
            else:
                failures_by_length += 1
            info = dissect(cut)
            assert isinstance(info, dict)
            assert ("error" in info) or msg is not None
        assert parse_untrusted(data).pack() == data
    assert failures_by_length > 0


def test_every_truncation_of_captured_frames_and_service_messages():
    for data in distinct_payloads():
        msg = parse_untrusted(data)
        if not isinstance(msg, Mcast):
            continue
        if msg.encapsulated == Mcast.ENCAPSULATED:
            msg = msg.inner()
        for n in range(len(msg.payload)):
            assert guarded(parse_frame_untrusted, msg.payload[:n], "<") is None
        frame = parse_frame_untrusted(msg.payload)
        for item in frame.items:
            for n in range(len(item) + 1):
                parsed = guarded(parse_groups_untrusted, item[:n], "<")
                if parsed is not None:
                    exercise_body(item[:n][parsed[1]:], "<")


@st.composite
def mutated_captures(draw):
    payloads = distinct_payloads()
    data = bytearray(draw(st.sampled_from(payloads)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["byte", "u16", "u32", "cut", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "byte" and data:
            data[pos] = draw(u8)
        elif kind in ("u16", "u32"):
            size = 2 if kind == "u16" else 4
            value = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
                                          0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))
            raw = value.to_bytes(8, draw(st.sampled_from(["little", "big"])))[:size]
            data[pos:pos + size] = raw
        elif kind == "cut":
            del data[pos:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@FUZZ
@given(mutated_captures())
def test_mutated_captures_raise_only_wire_error(data):
    exercise(data)


@FUZZ
@given(st.sampled_from(distinct_payloads()), st.data())
def test_mutated_counts_raise_only_wire_error(data, draw):
    """Rewrite each length/count field a parser trusts with a hostile value."""
    count_at = {0: [53], 1: [45 + 6], 3: [17, 21], 4: [37]}.get(data[3], [5])
    pos = draw.draw(st.sampled_from(count_at))
    value = draw.draw(st.sampled_from([0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0xFFFF, 1000]))
    mutated = bytearray(data)
    mutated[pos:pos + 4] = value.to_bytes(4, "little")
    assume(bytes(mutated) != data)
    exercise(bytes(mutated))


def test_wire_error_offsets_of_known_faults():
    assert guarded(parse_untrusted, b"") is None
    cases = {
        b"\x00" * 13: 0,  # bad magic
        totem_header("<", 0)[:2] + b"\x02\x00" + bytes(9): 2,  # version
        totem_header("<", 9) + bytes(9): 3,  # unknown type
        totem_header("<", 0) + bytes(9): 13,  # orf_token shorter than 57
        totem_header("<", 1) + b"\x03" + bytes(40): 4,  # mcast encapsulated 3
    }
    for data, offset in cases.items():
        try:
            parse_untrusted(data)
        except WireError as exc:
            assert exc.offset == offset, (data, exc)
        else:  # pragma: no cover
            raise AssertionError(f"{data.hex()} parsed")
    token = OrfToken(0, 0, 0, 0, RingId(1, 1)).pack()
    negative = token[:53] + struct.pack("<i", -1)
    try:
        parse_untrusted(negative)
    except WireError as exc:
        assert exc.offset == 53 and "negative" in exc.what
    else:  # pragma: no cover
        raise AssertionError("negative rtr_list_entries accepted")
    # an error inside an encapsulated message is reported at its place in the datagram
    bad_inner = Mcast(1, 1, RingId(1, 2), totem_header("<", 1) + b"\x07" + bytes(40), encapsulated=1)
    outer = parse_untrusted(bad_inner.pack())
    try:
        outer.inner()
    except WireError as exc:
        assert exc.offset == 45 + 4
    else:  # pragma: no cover
        raise AssertionError("inner mcast with encapsulated 7 accepted")


def test_dissect_reports_errors_instead_of_raising():
    assert dissect(b"")["error"]
    assert dissect(b"\xfe\xfe" + bytes(40))["type"] is None
    assert "corosync 2.3/2.4" in dissect(b"\xfe\xfe" + bytes(40))["error"]
    broken_frame = Mcast(1, 1, RingId(1, 2), b"\x00" * 7).pack()
    info = dissect(broken_frame)
    assert info["type"] == "mcast" and "totempg" in info["error"]
    bad_item = Mcast(1, 1, RingId(1, 2), Frame([b"\x05\x00"]).pack()).pack()
    info = dissect(bad_item)
    assert info["type"] == "mcast" and "error" in info["messages"][0]
