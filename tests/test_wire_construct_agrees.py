"""The construct layouts (the single source of truth) and the fast codecs agree.

Every captured datagram is parsed twice: with :func:`totem.wire.parse_untrusted`
(struct formats derived from the layouts) and with the construct layout chosen
by the header type byte. The two results are compared field by field, and
construct's ``build`` of its own parse must give back the datagram. The same is
done for the totempg frame, the service header and the sync messages inside
mcasts, and for the big-endian flavour of every datagram.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from _vectors import CAPTURES, complete_totem_datagrams, short
from totem.wire import (
    GROUP_SYNC,
    Barrier,
    Frame,
    Mcast,
    MembCommitToken,
    MembJoin,
    MembMergeDetect,
    MessageType,
    OrfToken,
    ServiceBuild,
    TokenHoldCancel,
    layouts,
    parse_frame_untrusted,
    parse_groups_untrusted,
    parse_service_header_untrusted,
    parse_sync_untrusted,
    parse_untrusted,
)
from totem.wire.layout import MAGIC, VERSION

by_capture = pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])

LAYOUT_OF_TYPE = {
    MessageType.orf_token: "orf_token",
    MessageType.mcast: "mcast",
    MessageType.memb_merge_detect: "memb_merge_detect",
    MessageType.memb_join: "memb_join",
    MessageType.memb_commit_token: "memb_commit_token",
    MessageType.token_hold_cancel: "token_hold_cancel",
}


def plain(value: Any) -> Any:
    """A construct Container/ListContainer as plain dicts and lists, without ``_io``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def ring(r) -> dict[str, int]:
    return {"rep": r.rep, "seq": r.seq}


def expected_container(msg) -> dict[str, Any]:
    """What construct must parse, written out from the fast path's dataclass."""
    out: dict[str, Any] = {
        "header": {
            "magic": MAGIC, "version": VERSION, "type": int(msg.type),
            "encapsulated": msg.encapsulated, "nodeid": msg.nodeid,
            "target_nodeid": msg.target_nodeid,
        }
    }
    if isinstance(msg, OrfToken):
        out.update(
            seq=msg.seq, token_seq=msg.token_seq, aru=msg.aru, aru_addr=msg.aru_addr,
            ring_id=ring(msg.ring_id), backlog=msg.backlog, fcc=msg.fcc,
            retrans_flg=msg.retrans_flg, rtr_list_entries=len(msg.rtr_list),
            rtr_list=[{"ring_id": ring(r.ring_id), "seq": r.seq} for r in msg.rtr_list],
        )
    elif isinstance(msg, Mcast):
        out.update(
            system_from=msg.system_from, seq=msg.seq, this_seqno=msg.this_seqno,
            ring_id=ring(msg.ring_id), node_id=msg.node_id, guarantee=msg.guarantee,
            payload=msg.payload,
        )
    elif isinstance(msg, MembMergeDetect):
        out.update(system_from=msg.system_from, ring_id=ring(msg.ring_id))
    elif isinstance(msg, MembJoin):
        out.update(
            system_from=msg.system_from, proc_list_entries=len(msg.proc_list),
            failed_list_entries=len(msg.failed_list), ring_seq=msg.ring_seq,
            proc_list=list(msg.proc_list), failed_list=list(msg.failed_list),
        )
    elif isinstance(msg, MembCommitToken):
        out.update(
            token_seq=msg.token_seq, ring_id=ring(msg.ring_id), retrans_flg=msg.retrans_flg,
            memb_index=msg.memb_index, addr_entries=len(msg.addr), addr=list(msg.addr),
            memb_list=[
                {"ring_id": ring(e.ring_id), "aru": e.aru, "high_delivered": e.high_delivered,
                 "received_flg": e.received_flg}
                for e in msg.memb_list
            ],
        )
    elif isinstance(msg, TokenHoldCancel):
        out.update(ring_id=ring(msg.ring_id))
    else:  # pragma: no cover
        raise AssertionError(f"unknown message {msg!r}")
    return out


def assert_same_fields(got: dict, want: dict, where: str = "") -> None:
    """Field-by-field comparison that names the first differing field."""
    assert list(got) == list(want), f"{where}: fields {list(got)} != {list(want)}"
    for key in want:
        g, w = got[key], want[key]
        if isinstance(w, dict):
            assert_same_fields(g, w, f"{where}.{key}")
        elif isinstance(w, list) and w and isinstance(w[0], dict):
            assert len(g) == len(w), f"{where}.{key}: {len(g)} entries != {len(w)}"
            for i, (gi, wi) in enumerate(zip(g, w)):
                assert_same_fields(gi, wi, f"{where}.{key}[{i}]")
        else:
            assert g == w, f"{where}.{key}: construct {g!r} != fast path {w!r}"


def check_message(data: bytes, where: str):
    """Parse with both paths, compare, and check construct's build; returns the message."""
    msg = parse_untrusted(data)
    lay = layouts(msg.byteorder)
    con = getattr(lay, LAYOUT_OF_TYPE[MessageType(data[3])])
    parsed = con.parse(data)
    assert_same_fields(plain(parsed), expected_container(msg), where)
    trailing = getattr(msg, "trailing", b"")
    assert con.build(parsed) == data[: len(data) - len(trailing)], f"{where}: construct build"
    return msg


def check_frame(payload: bytes, order: str, where: str) -> Frame:
    frame = parse_frame_untrusted(payload, order)
    lay = layouts(order)
    parsed = plain(lay.pg_frame.parse(payload))
    assert_same_fields(parsed, {
        "version": frame.version, "type": frame.type, "fragmented": frame.fragmented,
        "continuation": frame.continuation, "msg_count": len(frame.items),
        "msg_len": frame.lengths, "data": b"".join(frame.items),
    }, f"{where} totempg")
    assert lay.pg_frame.build(lay.pg_frame.parse(payload)) == payload
    return frame


def check_service_body(body: bytes, groups: tuple[bytes, ...], order: str, where: str) -> None:
    lay = layouts(order)
    if groups == (GROUP_SYNC,):
        sync = parse_sync_untrusted(body, order)
        h = sync.header
        want_header = {"id": h.id, "pad0": h.pad0, "size": h.size, "pad1": h.pad1}
        if isinstance(sync, Barrier):
            con = lay.sync_barrier
            want = {"header": want_header, "ring_id": ring(sync.ring_id)}
        else:
            assert isinstance(sync, ServiceBuild)
            con = lay.sync_service_build
            slots = list(sync.services) + list(sync.unused)
            want = {
                "header": want_header, "ring_id": ring(sync.ring_id),
                "service_list_entries": len(sync.services),
                "service_list": slots + [0] * (128 - len(slots)),
            }
        parsed = con.parse(body)
        assert_same_fields(plain(parsed), want, f"{where} sync")
        assert con.build(parsed) == body[: con.sizeof()]
    else:
        h = parse_service_header_untrusted(body, order)
        parsed = lay.service_header.parse(body)
        assert_same_fields(plain(parsed), {"id": h.id, "pad0": h.pad0, "size": h.size,
                                           "pad1": h.pad1}, f"{where} service header")
        assert lay.service_header.build(parsed) == body[:16]


def check_mcast_contents(msg: Mcast, where: str) -> int:
    """Check frame, envelopes and service messages; returns how many pieces were checked."""
    if msg.encapsulated == Mcast.ENCAPSULATED:
        inner = check_message(msg.payload, f"{where} inner")
        return check_mcast_contents(inner, f"{where} inner")
    frame = check_frame(msg.payload, msg.byteorder, where)
    checked = 0
    last = len(frame.items) - 1
    for i, item in enumerate(frame.items):
        if (i == 0 and frame.continuation) or (i == last and frame.fragmented):
            continue
        groups, at = parse_groups_untrusted(item, msg.byteorder)
        check_service_body(item[at:], groups, msg.byteorder, f"{where} piece {i}")
        checked += 1
    return checked


def big_endian(msg):
    """The same message as a big-endian sender would put it on the wire.

    Only the totemsrp fields are swapped here: the mcast payload is carried as is,
    as corosync does (spec totem-wire.md §2.1).
    """
    return dataclasses.replace(msg, byteorder=">")


@by_capture
def test_construct_and_fast_path_agree_on_every_datagram(capture):
    types = set()
    for d in complete_totem_datagrams(capture):
        msg = check_message(d.payload, f"frame {d.frame}")
        types.add(msg.type)
    assert MessageType.mcast in types


@by_capture
def test_construct_and_fast_path_agree_inside_mcasts(capture):
    pieces = 0
    for d in complete_totem_datagrams(capture):
        msg = parse_untrusted(d.payload)
        if isinstance(msg, Mcast):
            pieces += check_mcast_contents(msg, f"frame {d.frame}")
    assert pieces > 0


@by_capture
def test_construct_and_fast_path_agree_big_endian(capture):
    for d in complete_totem_datagrams(capture):
        le = parse_untrusted(d.payload)
        data = big_endian(le).pack()
        assert data[:2] == b"\xc0\x70"
        be = check_message(data, f"frame {d.frame} (big-endian)")
        assert be.byteorder == ">"
        # construct's big-endian parse of the swapped bytes equals its little-endian
        # parse of the captured bytes: the swap is field by field
        kind = LAYOUT_OF_TYPE[MessageType(d.payload[3])]
        assert plain(getattr(layouts(">"), kind).parse(data)) == plain(
            getattr(layouts("<"), kind).parse(d.payload))


def test_every_message_type_is_covered():
    seen = {parse_untrusted(d.payload).type for c in CAPTURES for d in complete_totem_datagrams(c)}
    assert seen == set(MessageType)
