"""totempg packing, fragmentation and reassembly (totem.pg)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from totem.capture import read_datagrams
from totem.pg import (
    ASSEMBLY_MAX,
    FRAME_MAX,
    MESSAGE_SIZE_MAX,
    GroupMessage,
    PgReceiver,
    PgSender,
    is_for,
)
from totem.wire import (
    Frame,
    Mcast,
    parse_frame_untrusted,
    parse_service_header_untrusted,
    parse_untrusted,
)

VECTORS = Path(__file__).parent / "vectors"
A = (b"a",)
ENV_A_BODY = struct.pack("<HH", 1, 1) + b"a" + b"next"


def body_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def shape(frames: list[bytes]) -> list[tuple[int, int, list[int]]]:
    out = []
    for raw in frames:
        f = parse_frame_untrusted(raw)
        out.append((f.fragmented, f.continuation, f.lengths))
    return out


def feed(receiver: PgReceiver, sender: int, frames: list[bytes]) -> list[GroupMessage]:
    return [m for raw in frames for m in receiver.deliver(sender, raw)]


def frames_for(messages: list[tuple[tuple[bytes, ...], bytes]], flush_each: bool = True) -> list[bytes]:
    s = PgSender()
    for groups, body in messages:
        s.submit(groups, body)
        if flush_each:
            s.flush()
    s.flush()
    return s.take_frames()


# --- the observed corosync fragmentation ---------------------------------------------


@pytest.mark.parametrize("as_parts", [False, True])
def test_3189_byte_message_is_cut_like_corosync(as_parts: bool) -> None:
    body = body_of(3184)
    s = PgSender()
    s.submit(A, [body[:184], body[184:]] if as_parts else body)
    # the two full frames and the final one are ready at once, nothing is staged
    assert s.staged == 0 and s.pending_bytes == 0
    frames = s.take_frames()
    assert shape(frames) == [(1, 0, [1400]), (2, 1, [1400]), (0, 2, [389])]
    assert [len(f) for f in frames] == [1410, 1410, 8 + 2 + 389]
    s.flush()
    assert s.take_frames() == []
    assert feed(PgReceiver(), 1, frames) == [GroupMessage(1, A, body)]


def _capture_mcasts(name: str) -> list[Mcast]:
    """Distinct normal mcasts to port 5405, in (ring, seq) order."""
    seen: dict[tuple, Mcast] = {}
    for d in read_datagrams(str(VECTORS / name)):
        if d.dport != 5405:
            continue
        msg = parse_untrusted(d.payload)
        if isinstance(msg, Mcast) and msg.encapsulated == Mcast.NORMAL:
            seen.setdefault((tuple(msg.ring_id), msg.seq), msg)
    return [seen[k] for k in sorted(seen)]


def test_capture_cpg_traffic_reassembles() -> None:
    mcasts = _capture_mcasts("corosync-3.1.7-udpu-cpg-traffic.pcap")
    r = PgReceiver()
    delivered = [m for mc in mcasts for m in r.deliver(mc.system_from, mc.payload, mc.byteorder)]
    assert r.stats["malformed_frames"] == r.stats["malformed_envelopes"] == r.stats["desyncs"] == 0
    fragmented = [mc for mc in mcasts if parse_frame_untrusted(mc.payload, mc.byteorder).fragmented]
    assert len(fragmented) == 2  # one message in three frames
    big = [m for m in delivered if len(m.body) > 1400]
    assert len(big) == 1
    (msg,) = big
    assert msg.groups == A
    assert msg.sender == fragmented[0].system_from
    header = parse_service_header_untrusted(msg.body)
    assert header.size == len(msg.body) == 3184
    assert header.id == 0x00020003  # cpg MCAST
    # every frame delivered all of its complete messages
    assert len(delivered) == sum(
        len(parse_frame_untrusted(mc.payload, mc.byteorder).items) for mc in mcasts) - len(fragmented)


def test_sender_reproduces_captured_frames_byte_for_byte() -> None:
    mcasts = _capture_mcasts("corosync-3.1.7-udpu-cpg-traffic.pcap")
    start = next(i for i, mc in enumerate(mcasts) if parse_frame_untrusted(mc.payload).fragmented)
    captured = [mc.payload for mc in mcasts[start:start + 3]]
    (msg,) = feed(PgReceiver(), 1, captured)
    s = PgSender()
    s.submit(msg.groups, msg.body)
    assert s.take_frames() == captured


# --- packing -------------------------------------------------------------------------


def test_small_messages_share_one_frame_in_order() -> None:
    s = PgSender()
    sent = [((b"a",) if i % 3 else (b"sync",), body_of(20 + i, i)) for i in range(30)]
    for groups, body in sent:
        s.submit(groups, body)
    assert s.take_frames() == []  # nothing leaves before the token
    assert s.staged == 30
    s.flush()
    frames = s.take_frames()
    assert len(frames) == 1
    f = parse_frame_untrusted(frames[0])
    assert (f.fragmented, f.continuation, len(f.items)) == (0, 0, 30)
    assert feed(PgReceiver(), 7, frames) == [GroupMessage(7, g, b) for g, b in sent]
    assert s.staged == 0 and s.pending_bytes == 0


def test_flush_with_nothing_staged_yields_no_frame() -> None:
    s = PgSender()
    s.flush()
    assert s.take_frames() == []
    s.submit(A, b"x")
    s.flush()
    assert len(s.take_frames()) == 1
    s.flush()
    s.flush()
    assert s.take_frames() == []


def test_staging_threshold_matches_corosync() -> None:
    # a whole message is staged only if the frame keeps its length slot plus one byte free
    s = PgSender()
    s.submit(A, bytes(1397 - 5))  # frame would be 8 + 2 + 1397 = 1407
    assert s.staged == 1 and s.take_frames() == []
    s.flush()
    s.take_frames()
    s.submit(A, bytes(1398 - 5))  # 1408 bytes: sent at once, complete
    assert s.staged == 0
    assert shape(s.take_frames()) == [(0, 0, [1398])]
    s.submit(A, bytes(1400 - 5))  # exactly frame_max
    assert shape(s.take_frames()) == [(0, 0, [1400])]


def test_message_spilling_over_staged_ones_fills_the_frame() -> None:
    s = PgSender()
    s.submit(A, bytes(32))
    s.submit((b"sync",), bytes(32))
    big = body_of(2000)
    s.submit(A, big)
    frames = s.take_frames()
    assert len(frames[0]) == FRAME_MAX
    # 8 + 3 * 2 + 37 + 40 + 1319 = 1410; the rest, 2005 - 1319 bytes, follows at once
    assert shape(frames) == [(1, 0, [37, 40, 1319]), (0, 1, [686])]
    assert [m.body for m in feed(PgReceiver(), 1, frames)] == [bytes(32), bytes(32), big]


def test_staged_messages_and_cuts_keep_order_without_flush() -> None:
    s = PgSender()
    sent = [(A, body_of(i * 37 % 500, i)) for i in range(200)]
    for groups, body in sent:
        s.submit(groups, body)
    s.flush()
    frames = s.take_frames()
    assert len(frames) > 1
    assert all(len(f) <= FRAME_MAX for f in frames)
    assert [m.body for m in feed(PgReceiver(), 1, frames)] == [b for _, b in sent]


# --- sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1399, 1400, 1401, 2800, 100_000, MESSAGE_SIZE_MAX - 5])
def test_sizes_round_trip(size: int) -> None:
    body = body_of(size)
    s = PgSender()
    s.submit(A, body)
    s.flush()
    frames = s.take_frames()
    assert all(len(f) <= FRAME_MAX for f in frames)
    r = PgReceiver()
    assert feed(r, 3, frames) == [GroupMessage(3, A, body)]
    assert r.partial_size(3) == 0


def test_largest_message_is_exactly_message_size_max() -> None:
    s = PgSender()
    s.submit(A, bytes(MESSAGE_SIZE_MAX - 5))  # 5-byte envelope + body = 1 MiB: accepted
    with pytest.raises(ValueError):
        s.submit(A, bytes(MESSAGE_SIZE_MAX - 4))
    with pytest.raises(ValueError):
        s.submit((b"sync",), [bytes(MESSAGE_SIZE_MAX // 2), bytes(MESSAGE_SIZE_MAX // 2)])
    frames = s.take_frames()
    s.flush()
    assert s.take_frames() == []  # the refused messages left nothing behind
    assert [len(m.body) for m in feed(PgReceiver(), 1, frames)] == [MESSAGE_SIZE_MAX - 5]


def test_sender_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        PgSender().submit((), b"x")
    with pytest.raises(ValueError):
        PgSender().submit((bytes(70000),), b"x")
    with pytest.raises(ValueError):
        PgSender(frame_max=8)


# --- fragment counter ----------------------------------------------------------------


def test_fragment_counter_wraps_skipping_zero() -> None:
    s = PgSender()
    bodies = [body_of(MESSAGE_SIZE_MAX - 5, i) for i in range(2)] + [body_of(500_000, 9)]
    expected_frags: list[int] = []
    for body in bodies:
        s.submit(A, body)
        frames = (5 + len(body) + 1399) // 1400
        # every message starts again at 1 (its envelope was staged whole), then
        # 1..255, 1..255, ... and 0 on its last frame
        expected_frags += [(i % 255) + 1 for i in range(frames - 1)] + [0]
    s.flush()
    frames = s.take_frames()
    shapes = shape(frames)
    assert [fr for fr, _, _ in shapes] == expected_frags
    assert expected_frags.count(255) == 2 + 2 + 1
    # every continuation names the previous frame's fragment number
    assert [c for _, c, _ in shapes] == [0] + [fr for fr, _, _ in shapes[:-1]]
    r = PgReceiver()
    assert [m.body for m in feed(r, 2, frames)] == bodies
    assert r.stats["desyncs"] == 0


def test_counter_restarts_after_a_message_staged_whole() -> None:
    s = PgSender()
    s.submit(A, bytes(5000))  # leaves the counter at 4
    s.submit(A, bytes(1396 - 5))  # staged whole: counter back to 1
    s.submit(A, bytes(3000))  # cut inside its envelope's length table, 2 bytes in
    s.flush()
    frames = s.take_frames()
    # the rest of the length table is staged whole, which restarts the counter
    # again, so two frames in a row say fragmented 1
    assert shape(frames)[4:] == [(1, 0, [1396, 2]), (1, 1, [1400]), (2, 1, [1400]), (0, 2, [203])]
    assert [len(m.body) for m in feed(PgReceiver(), 1, frames)] == [5000, 1391, 3000]


def test_counter_continues_inside_a_message_across_body_parts() -> None:
    # corosync restarts the counter whenever a segment is staged whole, even in
    # the middle of a message; the receiver still reassembles it
    parts = [bytes(3000), b"x" * 10, bytes(3000)]
    s = PgSender()
    s.submit(A, parts)
    s.flush()
    frames = s.take_frames()
    assert [fr for fr, _, _ in shape(frames)] == [1, 2, 3, 1, 2, 0]
    assert feed(PgReceiver(), 1, frames) == [GroupMessage(1, A, b"".join(parts))]


# --- several senders -----------------------------------------------------------------


def test_interleaved_senders_reassemble_per_sender() -> None:
    rng = random.Random(5)
    sent: dict[int, list[tuple[tuple[bytes, ...], bytes]]] = {}
    streams: dict[int, list[bytes]] = {}
    for node in (1, 2, 3, 0x7FFFFFFF):
        s = PgSender()
        msgs = []
        for i in range(40):
            size = rng.choice([10, 300, 1500, 4000, 20000])
            msgs.append(((b"a",) if i % 2 else (b"sync", b"zz"), body_of(size, node * 100 + i)))
            s.submit(*msgs[-1])
            if rng.random() < 0.4:
                s.flush()
        s.flush()
        sent[node] = msgs
        streams[node] = s.take_frames()
    # merge keeping each sender's order, as totem's agreed order does
    order = [node for node, frames in streams.items() for _ in frames]
    rng.shuffle(order)
    cursors = dict.fromkeys(streams, 0)
    r = PgReceiver()
    got: dict[int, list] = {node: [] for node in streams}
    for node in order:
        raw = streams[node][cursors[node]]
        cursors[node] += 1
        for m in r.deliver(node, raw):
            got[m.sender].append((m.groups, m.body))
    assert got == sent
    assert r.stats["desyncs"] == r.stats["discarded_frames"] == 0


# --- discard mode --------------------------------------------------------------------


def _large_frames(size: int = 5000, seed: int = 1) -> tuple[bytes, list[bytes]]:
    body = body_of(size, seed)
    s = PgSender()
    s.submit(A, body)
    return body, s.take_frames()


def test_discard_mode_drops_until_fragmented_zero() -> None:
    big, x = _large_frames()  # frag/cont: (1,0) (2,1) (3,2) (0,3)
    assert [(fr, c) for fr, c, _ in shape(x)] == [(1, 0), (2, 1), (3, 2), (0, 3)]
    after = frames_for([(A, b"after-1"), ((b"sync",), b"after-2")], flush_each=False)
    r = PgReceiver()
    # a receiver that starts mid-message: continuation 1 while it expects 0
    assert r.deliver(1, x[1]) == []
    assert (r.stats["desyncs"], r.stats["discarded_frames"]) == (1, 1)
    assert r.deliver(1, x[2]) == []  # fragmented 3: still discarding
    assert r.deliver(1, x[3]) == []  # fragmented 0: not delivered, ends discard mode
    assert (r.stats["desyncs"], r.stats["discarded_frames"]) == (1, 3)
    assert r.partial_size(1) == 0
    assert feed(r, 1, after) == [GroupMessage(1, A, b"after-1"), GroupMessage(1, (b"sync",), b"after-2")]
    # and the next large message from that node is whole
    assert feed(r, 1, x) == [GroupMessage(1, A, big)]
    assert r.stats["desyncs"] == 1 and r.stats["messages"] == 3


def test_discard_mode_resumes_at_fragmented_one_keeping_its_last_piece() -> None:
    big, x = _large_frames()
    s = PgSender()
    s.submit(A, b"lost-with-the-resync-frame")
    z = body_of(3000, 2)
    s.submit(A, z)  # first frame: [small, start of z], fragmented 1
    s.submit(A, b"tail")
    s.flush()
    zf = s.take_frames()
    # corosync sends a cut message's last piece at once, so "tail" gets a frame of its own
    assert shape(zf) == [(1, 0, [31, 1367]), (2, 1, [1400]), (0, 2, [238]), (0, 0, [9])]
    r = PgReceiver()
    assert r.deliver(9, x[0]) == []
    assert r.deliver(9, x[2]) == []  # desync, fragmented 3: discarding
    assert r.deliver(9, zf[0]) == []  # fragmented 1: its small message is dropped too
    assert r.partial_size(9) > 0
    assert feed(r, 9, zf[1:]) == [GroupMessage(9, A, z), GroupMessage(9, A, b"tail")]
    assert (r.stats["desyncs"], r.stats["discarded_frames"], r.stats["messages"]) == (1, 2, 2)


def test_new_message_while_expecting_a_continuation_is_dropped() -> None:
    big, x = _large_frames()
    r = PgReceiver()
    r.deliver(4, x[0])
    lone = frames_for([(A, b"cont 0 while 1 is expected")])
    assert r.deliver(4, lone[0]) == []
    assert r.stats["desyncs"] == 1 and r.partial_size(4) == 0
    assert feed(r, 4, frames_for([(A, b"next")])) == [GroupMessage(4, A, b"next")]


def test_resync_on_a_wrapped_counter_does_not_deliver_a_headless_message() -> None:
    s = PgSender()
    body = body_of(400_000, 3)
    s.submit(A, body)
    s.submit(A, b"following")
    s.flush()
    frames = s.take_frames()
    shapes = shape(frames)
    wrap = next(i for i, (fr, c, _) in enumerate(shapes) if fr == 1 and c == 255)
    r = PgReceiver()
    # joins exactly at the frame whose counter wrapped to 1 in mid-message
    assert feed(r, 5, frames[wrap:]) == [GroupMessage(5, A, b"following")]
    assert r.stats["desyncs"] == 1 and r.stats["discarded_frames"] == 1
    assert r.stats["malformed_envelopes"] == 0  # the headless message was never parsed


# --- malformed input -----------------------------------------------------------------


def test_malformed_frames_are_counted_not_raised() -> None:
    r = PgReceiver()
    good = frames_for([(A, b"ok")])[0]
    bad = [
        b"",
        b"\x00" * 7,
        good[:-1],  # shorter than its header says
        good + b"\x00",  # longer
        Frame([b"x"]).pack()[:8] + b"\xff\xff",  # table longer than the frame
        Frame([], fragmented=1).pack(),  # fragment marker without a piece
        Frame([], continuation=3).pack(),
    ]
    for raw in bad:
        assert r.deliver(1, raw) == []
    assert r.stats["malformed_frames"] == len(bad)
    assert r.stats["desyncs"] == 0
    assert r.deliver(1, good) == [GroupMessage(1, A, b"ok")]


def test_malformed_frame_in_the_middle_of_a_message_leaves_the_assembly_alone() -> None:
    big, x = _large_frames()
    r = PgReceiver()
    out = []
    for i, raw in enumerate(x):
        out += r.deliver(1, raw)
        out += r.deliver(1, raw[:-3])  # a damaged copy after each frame
    assert out == [GroupMessage(1, A, big)]
    assert r.stats["malformed_frames"] == len(x) and r.stats["desyncs"] == 0


def test_garbage_group_envelopes_are_counted_and_the_rest_delivered() -> None:
    garbage = [
        b"\x01",  # no room for the group count
        struct.pack("<H", 5),  # 5 groups, no lengths
        struct.pack("<HH", 1, 10) + b"abc",  # name longer than the message
    ]
    good = struct.pack("<HH", 1, 1) + b"a" + b"body"
    frame = Frame([good, *garbage, good]).pack()
    r = PgReceiver()
    assert r.deliver(1, frame) == [GroupMessage(1, A, b"body")] * 2
    assert r.stats["malformed_envelopes"] == 3
    # an empty piece is a message too short for its envelope
    assert r.deliver(1, Frame([b""]).pack()) == []
    assert r.stats["malformed_envelopes"] == 4
    # a message with no group at all is delivered, to nobody
    (m,) = r.deliver(1, Frame([struct.pack("<H", 0) + b"x"]).pack())
    assert m.groups == () and not is_for(m.groups, {b"a", b"sync"})


def test_oversize_message_is_dropped_not_fatal() -> None:
    piece = bytes(60_000)
    count = ASSEMBLY_MAX // len(piece) + 2
    frames = [Frame([struct.pack("<HH", 1, 1) + b"a" + piece[5:]], fragmented=1).pack()]
    for i in range(1, count - 1):
        frames.append(Frame([piece], fragmented=i % 255 + 1, continuation=(i - 1) % 255 + 1).pack())
    frames.append(Frame([piece, ENV_A_BODY], continuation=(count - 2) % 255 + 1).pack())
    r = PgReceiver()
    assert feed(r, 1, frames) == [GroupMessage(1, A, b"next")]
    assert r.stats["oversize"] == 1 and r.stats["desyncs"] == 0
    assert r.partial_size(1) == 0


def test_receiver_limit_boundary() -> None:
    s = PgSender(frame_max=200)
    s.submit(A, bytes(2995))  # 3000-byte message
    s.submit(A, bytes(2996))  # 3001
    s.submit(A, b"x")
    s.flush()
    r = PgReceiver(max_message=3000)
    assert [len(m.body) for m in feed(r, 1, s.take_frames())] == [2995, 1]
    assert r.stats["oversize"] == 1


# --- membership ----------------------------------------------------------------------


def test_forget_drops_a_half_assembled_message() -> None:
    big, x = _large_frames()
    r = PgReceiver()
    feed(r, 2, x[:2])
    feed(r, 3, x[:2])
    assert r.partial_size(2) > 0
    r.forget(2)
    r.forget(99)  # unknown node: nothing to do
    assert r.partial_size(2) == 0
    # the rest of node 2's message no longer continues anything
    assert feed(r, 2, x[2:]) == []
    assert r.stats["desyncs"] == 1
    # node 3 was not affected
    assert feed(r, 3, x[2:]) == [GroupMessage(3, A, big)]
    # a rejoined node 2 starts clean
    assert feed(r, 2, x) == [GroupMessage(2, A, big)]


def test_is_for() -> None:
    assert is_for((b"a",), {b"a", b"sync"})
    assert is_for((b"zz", b"sync"), [b"sync"])
    assert not is_for((b"zz",), {b"a", b"sync"})
    assert not is_for((b"syn",), {b"sync"})


def test_big_endian_round_trip() -> None:
    s = PgSender(byteorder=">")
    s.submit((b"sync",), body_of(4000))
    s.submit(A, b"x")
    s.flush()
    frames = s.take_frames()
    assert parse_frame_untrusted(frames[0], ">").lengths == [1400]
    r = PgReceiver()
    got = [m for raw in frames for m in r.deliver(1, raw, ">")]
    assert got == [GroupMessage(1, (b"sync",), body_of(4000)), GroupMessage(1, A, b"x")]


# --- property ------------------------------------------------------------------------

_group = st.one_of(st.just(b"a"), st.just(b"sync"), st.binary(min_size=0, max_size=6))
_size = st.one_of(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000),
                  st.integers(5000, 200 * 1024))
_message = st.tuples(
    st.lists(_group, min_size=1, max_size=3).map(tuple),
    _size,
    st.integers(0, 2**32),  # content seed
    st.integers(1, 3),  # number of body parts
    st.booleans(),  # flush after this message
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=40), frame_max=st.sampled_from([FRAME_MAX, FRAME_MAX, 64, 9000]))
def test_property_round_trip(messages, frame_max) -> None:
    s = PgSender(frame_max=frame_max)
    r = PgReceiver()
    expected = []
    got = []
    for groups, size, seed, nparts, flush in messages:
        body = random.Random(seed).randbytes(size)
        cut = sorted(random.Random(seed + 1).randrange(size + 1) for _ in range(nparts - 1))
        parts = [body[a:b] for a, b in zip([0, *cut], [*cut, size])]
        s.submit(groups, parts if nparts > 1 else body)
        expected.append(GroupMessage(6, groups, body))
        if flush:
            s.flush()
        # frames may reach the receiver at any time after they are taken
        if seed % 3 == 0:
            for raw in s.take_frames():
                assert len(raw) <= frame_max
                got += r.deliver(6, raw)
    s.flush()
    for raw in s.take_frames():
        assert len(raw) <= frame_max
        got += r.deliver(6, raw)
    assert got == expected
    assert r.partial_size(6) == 0
    assert r.stats["malformed_frames"] == r.stats["desyncs"] == r.stats["malformed_envelopes"] == 0
