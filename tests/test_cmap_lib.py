"""cmap for clients: libcmap's byte layouts (spec client-ipc.md §2.5) and CmapService's
answers, with the sizes and ids libcmap expects, checked as a client sees them."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totem.cmapdb import CmapDb, StatsMap, TrackType, Value, ValueType
from totem.config import parse_text
from totem.lib import cmap as lib
from totem.lib.common import CsError
from totem.services.base import LibConnection, LibEvent, LibResponse
from totem.services.cmap import (
    CONFIG_VERSION_KEY,
    CmapReason,
    CmapService,
    StatsClearRequested,
    parse_mcast_untrusted,
)
from totem.wire.errors import WireError

CONF = """\
totem {
\tversion: 2
\tcluster_name: demo
\ttransport: udpu
}
nodelist {
\tnode {
\t\tring0_addr: 127.0.0.1
\t\tnodeid: 1
\t\tname: node1
\t}
}
uidgid {
\tgid: 105
}
"""


class Client:
    """One libcmap connection to a CmapService: send a request, get what came back."""

    def __init__(self, svc: CmapService, conn: int = 1, uid: int = 0,
                 emitted: list[object] | None = None) -> None:
        self.svc, self.conn, self.emitted = svc, conn, emitted
        svc.lib_connect(LibConnection(conn, 4242, uid, uid))

    def raw(self, data: bytes) -> tuple[bytes, list[LibEvent]]:
        """(the response, the events of any connection emitted with it) of one request."""
        (msg_id,) = struct.unpack_from("<i", data)
        self.svc.lib_request(self.conn, msg_id, data)
        if self.emitted is None:
            out = self.svc.take_events()
        else:
            out, self.emitted[:] = list(self.emitted), []
        responses = [e.data for e in out if isinstance(e, LibResponse)]
        assert len(responses) == 1, out
        assert all(e.conn == self.conn for e in out if isinstance(e, LibResponse))
        return responses[0], [e for e in out if isinstance(e, LibEvent)]

    def __call__(self, data: bytes):
        response, events = self.raw(data)
        return lib.decode_message(response)


def header(data: bytes) -> tuple[int, int, int]:
    return struct.unpack_from("<i4xi4xi", data)


@pytest.fixture
def svc() -> CmapService:
    cfg = parse_text(CONF, local_node=1)
    return CmapService(1, db=CmapDb.from_config(cfg), stats=StatsMap())


# -- layouts against the spec table ------------------------------------------------------------


def test_request_layouts_match_the_spec_offsets() -> None:
    key = b"a.key"
    s = lib.encode_set(key, ValueType.UINT32, b"\x07\0\0\0")
    assert len(s) == 296 + 4 and struct.unpack_from("<i4xi", s) == (0, 300)
    assert struct.unpack_from("<H", s, 16)[0] == 5 and s[24:29] == key and s[29:280] == bytes(251)
    assert struct.unpack_from("<QB", s, 280) == (4, ValueType.UINT32) and s[296:] == b"\x07\0\0\0"
    d = lib.encode_delete(key)
    assert len(d) == 280 and header(d)[:2] == (1, 280) and d[24:29] == key
    g = lib.encode_get(key, 99)
    assert len(g) == 288 and header(g)[:2] == (2, 288) and struct.unpack_from("<Q", g, 280)[0] == 99
    a = lib.encode_adjust_int(key, -3)
    assert len(a) == 288 and header(a)[:2] == (3, 288) and struct.unpack_from("<i", a, 280)[0] == -3
    i = lib.encode_iter_init(b"nodelist.")
    assert len(i) == 280 and header(i)[:2] == (4, 280) and struct.unpack_from("<H", i, 16)[0] == 9
    for req in (lib.ReqId.ITER_NEXT, lib.ReqId.ITER_FINALIZE, lib.ReqId.TRACK_DELETE):
        h = lib.encode_handle_request(req, 2**40 + 5)
        assert len(h) == 24 and header(h)[:2] == (req, 24) and struct.unpack_from("<Q", h, 16)[0] == 2**40 + 5
    t = lib.encode_track_add(key, 8 | 4, 0xDEADBEEF12)
    assert len(t) == 296 and header(t)[:2] == (7, 296)
    assert struct.unpack_from("<i4xQ", t, 280) == (12, 0xDEADBEEF12)
    m = lib.encode_set_current_map(1)
    assert len(m) == 24 and header(m)[:2] == (9, 24) and struct.unpack_from("<i", m, 16)[0] == 1
    with pytest.raises(ValueError):
        lib.encode_get(b"k" * 256, 0)


def test_response_and_event_layouts_match_the_spec_offsets() -> None:
    g = lib.encode_get_response(CsError.OK, ValueType.STRING, b"abc\0", 10)
    assert len(g) == 50 and header(g) == (2, 50, 1)
    assert struct.unpack_from("<QB", g, 24) == (4, 11) and g[40:] == b"abc\0" + bytes(6)
    assert lib.encode_get_response(CsError.NOT_EXIST) == struct.pack("<i4xi4xi4xQQ", 2, 40, 12, 0, 0)
    h = lib.encode_handle_response(lib.ResId.ITER_INIT, 77)
    assert len(h) == 32 and header(h) == (4, 32, 1) and struct.unpack_from("<Q", h, 24)[0] == 77
    n = lib.encode_iter_next(CsError.OK, "totem.token", ValueType.UINT32, 4)
    assert len(n) == 304 and header(n) == (5, 304, 1)
    assert struct.unpack_from("<H", n, 24)[0] == 11 and n[32:43] == b"totem.token"
    assert struct.unpack_from("<QB", n, 288) == (4, 6)
    ev = lib.encode_notify(0x1122, "k.k", TrackType.MODIFY, 11, b"new\0", 11, b"old!\0")
    assert len(ev) == 336 + 4 + 5 and header(ev) == (9, 345, 1)
    assert struct.unpack_from("<Q", ev, 24)[0] == 0x1122 and struct.unpack_from("<H", ev, 32)[0] == 3
    assert ev[40:43] == b"k.k" and struct.unpack_from("<i", ev, 296)[0] == 2
    assert (ev[304], ev[312]) == (11, 11) and struct.unpack_from("<QQ", ev, 320) == (4, 5)
    assert ev[336:] == b"new\0old!\0"
    assert len(lib.encode_status(lib.ResId.SET_CURRENT_MAP)) == 24


def test_client_decodes_what_the_daemon_encodes() -> None:
    assert lib.decode_message(lib.encode_get_response(CsError.OK, 6, b"\1\0\0\0", 4)) == \
        lib.GetResult(CsError.OK, 6, 4, b"\1\0\0\0")
    assert lib.decode_message(lib.encode_get_response(CsError.OK, 11, b"ab\0", 0)) == \
        lib.GetResult(CsError.OK, 11, 3, b"")
    assert lib.decode_message(lib.encode_iter_next(CsError.NO_SECTIONS)) == lib.IterEntry(27, "", 0, 0)
    assert lib.decode_message(lib.encode_handle_response(lib.ResId.TRACK_DELETE, 9)) == \
        lib.HandleResult(8, 1, 9)
    assert lib.decode_message(lib.encode_notify(1, "a.b", 1, 0, b"", 6, b"\0\0\0\0")) == \
        lib.NotifyCallback(1, "a.b", 1, 0, b"", 6, b"\0\0\0\0")
    assert lib.decode_message(lib.encode_status(lib.ResId.DELETE, CsError.ACCESS)) == lib.Status(1, 11)
    with pytest.raises(WireError):
        lib.decode_message(lib.encode_notify(1, "a.b", 1, 0, b"", 6, b"\0\0\0\0")[:-1])
    with pytest.raises(WireError):
        lib.decode_message(b"\0" * 10)


def test_daemon_decodes_what_a_client_encodes() -> None:
    assert lib.decode_set(lib.encode_set("a.b.c", 11, b"xyz")) == lib.SetRequest("a.b.c", 11, b"xyz")
    assert lib.decode_key_request(lib.ReqId.GET, lib.encode_get("a.b.c", 7)) == lib.KeyRequest("a.b.c", 7)
    assert lib.decode_key_request(lib.ReqId.ITER_INIT, lib.encode_iter_init(b"")) == lib.KeyRequest(None)
    assert lib.decode_track_add(lib.encode_track_add(b"", 12, 3)) == lib.TrackAddRequest(None, 12, 3)
    with pytest.raises(WireError):
        lib.decode_set(lib.encode_set("a.b.c", 11, b"xyz")[:-1])
    with pytest.raises(WireError):
        lib.decode_key_request(lib.ReqId.GET, lib.encode_get("a.b.c", 7)[:100])
    # corosync reads the key as a C string, whatever the length field says
    data = bytearray(lib.encode_delete("abcdef"))
    struct.pack_into("<H", data, 16, 2)
    assert lib.decode_key_request(lib.ReqId.DELETE, bytes(data)).key == "abcdef"


# -- every request: response id and size --------------------------------------------------------------


def test_every_request_gets_its_response_id_and_size(svc: CmapService) -> None:
    c = Client(svc)
    cases = [
        (lib.encode_set("test.key", ValueType.STRING, b"hello"), 0, 24),
        (lib.encode_get("test.key", 0), 2, 40),
        (lib.encode_get("test.key", 6), 2, 46),
        (lib.encode_get("test.key", 100), 2, 140),
        (lib.encode_get("no.such.key", 100), 2, 40),
        (lib.encode_set("test.u32", ValueType.UINT32, b"\1\0\0\0"), 0, 24),
        (lib.encode_adjust_int("test.u32", 1), 3, 24),
        (lib.encode_delete("test.key"), 1, 24),
        (lib.encode_iter_init("totem."), 4, 32),
        (lib.encode_handle_request(lib.ReqId.ITER_NEXT, 1), 5, 304),
        (lib.encode_handle_request(lib.ReqId.ITER_FINALIZE, 1), 6, 24),
        (lib.encode_track_add("test.", 15, 5), 7, 32),
        (lib.encode_handle_request(lib.ReqId.TRACK_DELETE, 2), 8, 32),
        (lib.encode_set_current_map(1), 10, 24),
        (lib.encode_handle_request(lib.ReqId.ITER_NEXT, 99), 5, 304),
    ]
    for request, res_id, size in cases:
        response, _ = c.raw(request)
        msg_id, msg_size, _err = header(response)
        assert (msg_id, msg_size, len(response)) == (res_id, size, size), request[:4]


def test_unknown_and_malformed_requests_get_the_generic_refusal(svc: CmapService) -> None:
    c = Client(svc)
    refusal = struct.pack("<i4xi4xi4x", 0, 24, CsError.INVALID_PARAM)
    assert c.raw(struct.pack("<i4xi4x", 10, 16))[0] == refusal
    assert c.raw(lib.encode_get("k.k.k", 0)[:200])[0] == refusal
    assert c.raw(lib.encode_set("k.k.k", 11, b"abcdef")[:-2])[0] == refusal


# -- semantics ---------------------------------------------------------------------------------------


def test_get_as_libcmap_does_it(svc: CmapService) -> None:
    c = Client(svc)
    # cmap_get_string: first the length, then the value
    first = c(lib.encode_get("totem.cluster_name", 0))
    assert first == lib.GetResult(CsError.OK, ValueType.STRING, 5, b"")
    assert c(lib.encode_get("totem.cluster_name", 5)) == lib.GetResult(CsError.OK, 11, 5, b"demo\0")
    assert c(lib.encode_get("totem.cluster_name", 4)) == lib.GetResult(CsError.INVALID_PARAM, 0, 0, b"")
    assert c(lib.encode_get("totem.nope", 16)) == lib.GetResult(CsError.NOT_EXIST, 0, 0, b"")
    assert c(lib.encode_get("nodelist.node.0.nodeid", 16)) == lib.GetResult(CsError.OK, 6, 4, b"\1\0\0\0")
    assert c(lib.encode_get("totem.cluster_name", 1 << 20)).error == CsError.NO_MEMORY


def test_set_delete_adjust_follow_icmap(svc: CmapService) -> None:
    c = Client(svc)
    assert c(lib.encode_set("test.s", 11, b"hello")).error == CsError.OK
    assert svc.db.get("test.s") == Value(ValueType.STRING, b"hello\0")
    assert c(lib.encode_get("test.s", 0)).value_len == 6
    assert c(lib.encode_set("test.u8", 2, b"\1\2")).error == CsError.INVALID_PARAM
    assert c(lib.encode_set("t", 2, b"\1")).error == CsError.NAME_TOO_LONG
    assert c(lib.encode_set("test.bad type", 2, b"\1")).error == CsError.NAME_TOO_LONG
    assert c(lib.encode_set("test.u8", 2, b"\xff")).error == CsError.OK
    assert c(lib.encode_adjust_int("test.u8", 2)).error == CsError.OK
    assert svc.db.python("test.u8") == 1
    assert c(lib.encode_adjust_int("test.s", 1)).error == CsError.INVALID_PARAM
    assert c(lib.encode_adjust_int("test.none", 1)).error == CsError.NOT_EXIST
    assert c(lib.encode_delete("test.none")).error == CsError.NOT_EXIST
    assert c(lib.encode_delete("test.u8")).error == CsError.OK


def test_read_only_keys_are_refused_with_access(svc: CmapService) -> None:
    c = Client(svc)
    for request in (lib.encode_set("nodelist.node.0.nodeid", 6, b"\5\0\0\0"),
                    lib.encode_set("totem.cluster_name", 11, b"x"),
                    lib.encode_delete("runtime.config.totem.token"),
                    lib.encode_adjust_int("runtime.config.totem.token", 1),
                    lib.encode_set("uidgid.config.uid.9", 2, b"\1")):
        assert c(request).error == CsError.ACCESS
    assert svc.db.python("nodelist.node.0.nodeid") == 1
    assert c(lib.encode_set("uidgid.gid.2000", 2, b"\1")).error == CsError.OK


def test_iteration_through_the_library(svc: CmapService) -> None:
    c = Client(svc)
    handle = c(lib.encode_iter_init("nodelist.")).handle
    keys = []
    while (entry := c(lib.encode_handle_request(lib.ReqId.ITER_NEXT, handle))).error == CsError.OK:
        keys.append(entry.key)
        value = svc.db.get(entry.key)
        assert value is not None and (entry.type, entry.value_len) == (value.type, len(value.data))
    assert entry.error == CsError.NO_SECTIONS
    assert keys == svc.db.keys("nodelist.") == sorted(keys)
    # after the end it stays at the end, even when keys are added
    svc.db.set_value("nodelist.zzz", "u8", 1)
    assert c(lib.encode_handle_request(lib.ReqId.ITER_NEXT, handle)).error == CsError.NO_SECTIONS
    assert c(lib.encode_handle_request(lib.ReqId.ITER_FINALIZE, handle)).error == CsError.OK
    assert c(lib.encode_handle_request(lib.ReqId.ITER_FINALIZE, handle)).error == CsError.BAD_HANDLE
    assert c(lib.encode_handle_request(lib.ReqId.ITER_NEXT, handle)).error == CsError.BAD_HANDLE
    everything = c(lib.encode_iter_init(b"")).handle
    assert c(lib.encode_handle_request(lib.ReqId.ITER_NEXT, everything)).key == svc.db.keys()[0]


def test_tracking_sends_notify_events_to_the_tracking_connection(svc: CmapService) -> None:
    a, b = Client(svc, 1), Client(svc, 2)
    track = a(lib.encode_track_add("test.", TrackType.ADD | TrackType.MODIFY | TrackType.DELETE
                                   | TrackType.PREFIX, 0xABCDEF))
    assert track.error == CsError.OK
    response, events = b.raw(lib.encode_set("test.x", ValueType.UINT8, b"\7"))
    assert lib.decode_message(response).error == CsError.OK
    assert [(e.conn, lib.decode_message(e.data).event) for e in events] == [(1, TrackType.ADD)]
    # events go to connection 1 only; they were emitted before b's response
    svc.lib_request(2, lib.ReqId.SET, lib.encode_set("test.x", ValueType.UINT8, b"\x08"))
    out = svc.take_events()
    assert [type(e) for e in out] == [LibEvent, LibResponse] and out[0].conn == 1
    assert lib.decode_message(out[0].data) == lib.NotifyCallback(0xABCDEF, "test.x", TrackType.MODIFY,
                                                                 2, b"\x08", 2, b"\x07")
    assert len(out[0].data) == 336 + 2
    # the exact-key tracker of `corosync-cmapctl -t`
    exact = a(lib.encode_track_add("test.y", TrackType.ADD | TrackType.MODIFY | TrackType.DELETE, 1))
    svc.lib_request(2, lib.ReqId.DELETE, lib.encode_delete("test.x"))
    assert [lib.decode_message(e.data).event for e in svc.take_events() if isinstance(e, LibEvent)] == [1]
    assert a(lib.encode_handle_request(lib.ReqId.TRACK_DELETE, track.handle)) == \
        lib.HandleResult(lib.ResId.TRACK_DELETE, CsError.OK, 0xABCDEF)
    assert a(lib.encode_handle_request(lib.ReqId.TRACK_DELETE, track.handle)).error == CsError.BAD_HANDLE
    assert exact.handle != track.handle
    assert a(lib.encode_track_add("test.", 32, 1)).error == CsError.INVALID_PARAM


def test_disconnect_drops_the_connections_trackers(svc: CmapService) -> None:
    a, b = Client(svc, 1), Client(svc, 2)
    a(lib.encode_track_add("", TrackType.ADD | TrackType.PREFIX, 1))
    a(lib.encode_iter_init(""))
    assert len(svc.db.tracks) == 2  # the service's own config_version tracker and a's
    svc.lib_disconnect(1)
    assert len(svc.db.tracks) == 1
    b(lib.encode_set("test.z", 2, b"\1"))
    assert svc.take_events() == []


def test_set_current_map_switches_to_the_stats_map(svc: CmapService) -> None:
    c = Client(svc)
    assert c(lib.encode_set_current_map(7)) == lib.Status(lib.ResId.SET_CURRENT_MAP, CsError.NOT_EXIST)
    assert c(lib.encode_set_current_map(lib.MapId.STATS)) == lib.Status(10, CsError.OK)
    svc.stats.update_srp_stats({"mcast_tx": 17})
    assert c(lib.encode_get("stats.srp.mcast_tx", 8)) == lib.GetResult(1, 8, 8, (17).to_bytes(8, "little"))
    assert c(lib.encode_get("totem.cluster_name", 8)).error == CsError.NOT_EXIST
    assert c(lib.encode_set("stats.srp.mcast_tx", 8, bytes(8))).error == CsError.ACCESS
    assert c(lib.encode_delete("stats.srp.mcast_tx")).error == CsError.ACCESS
    assert c(lib.encode_delete("stats.clear.totem")).error == CsError.NOT_SUPPORTED
    assert c(lib.encode_set("stats.clear.bogus", 11, b"x")).error == CsError.NOT_SUPPORTED
    assert svc.take_events() == []
    svc.lib_request(1, lib.ReqId.SET, lib.encode_set("stats.clear.totem", 11, b"1"))
    out = svc.take_events()
    assert out[0] == StatsClearRequested("totem") and lib.decode_message(out[1].data).error == CsError.OK
    assert c(lib.encode_track_add("stats.", TrackType.ADD | TrackType.PREFIX, 1)).error == CsError.NOT_SUPPORTED
    handle = c(lib.encode_iter_init("stats.srp.")).handle
    assert c(lib.encode_handle_request(lib.ReqId.ITER_NEXT, handle)).key == "stats.srp.avg_backlog_calc"
    # open iterators or trackers: no switching back (corosync says BUSY)
    assert c(lib.encode_set_current_map(0)).error == CsError.BUSY
    c(lib.encode_handle_request(lib.ReqId.ITER_FINALIZE, handle))
    assert c(lib.encode_set_current_map(0)).error == CsError.OK
    assert c(lib.encode_get("totem.cluster_name", 8)).error == CsError.OK


def test_a_new_config_version_is_multicast(svc: CmapService) -> None:
    sent: list[bytes] = []
    emitted: list[object] = []
    svc.attach(emitted.append, lambda body: sent.append(body) or True)
    c = Client(svc, emitted=emitted)
    assert svc.config_version is None
    c(lib.encode_set(CONFIG_VERSION_KEY, ValueType.UINT64, (9).to_bytes(8, "little")))
    assert svc.config_version == 9
    (msg,) = [parse_mcast_untrusted(b) for b in sent]
    assert msg.reason == CmapReason.NEW_CONFIG_VERSION and msg.items[0].as_uint() == 9
    # refused while a sync runs: kept and sent in order later
    blocked = [True]
    svc.attach(emitted.append, lambda body: not blocked[0] and (sent.append(body) or True))
    c(lib.encode_set(CONFIG_VERSION_KEY, ValueType.UINT64, (10).to_bytes(8, "little")))
    assert svc.pending_multicasts == 1 and len(sent) == 1
    blocked[0] = False
    svc.flush_pending()
    assert svc.pending_multicasts == 0 and parse_mcast_untrusted(sent[-1]).items[0].as_uint() == 10


def test_received_config_versions_land_in_the_map(svc: CmapService) -> None:
    from totem.services.cmap import build_sync_message
    svc.deliver(2, 0, build_sync_message(7))
    svc.deliver(3, 0, build_sync_message(None))
    assert svc.db.get("runtime.members.2.config_version") == Value.of("u64", 7)
    assert svc.db.get("runtime.members.3.config_version") == Value.of("u64", 0)


def test_allowed_is_corosyncs_rule_on_the_map(svc: CmapService) -> None:
    assert svc.allowed(0, 5) and svc.allowed(5, 0)
    assert svc.allowed(1000, 105)  # uidgid { gid: 105 }
    assert not svc.allowed(1000, 1000)
    Client(svc)(lib.encode_set("uidgid.gid.1000", ValueType.UINT8, b"\1"))
    assert svc.allowed(1000, 1000)


@settings(max_examples=200, deadline=None)
@given(msg_id=st.integers(-2, 12), body=st.binary(max_size=400))
def test_any_request_bytes_get_exactly_one_answer(msg_id: int, body: bytes) -> None:
    svc = CmapService(1)
    svc.lib_connect(LibConnection(1, 1, 0, 0))
    data = struct.pack("<i4xi4x", msg_id, 16 + len(body)) + body
    svc.lib_request(1, msg_id, data)
    out = svc.take_events()
    assert len([e for e in out if isinstance(e, LibResponse)]) == 1


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_client_decoding_raises_only_wire_error(data: bytes) -> None:
    try:
        lib.decode_message(data)
    except WireError:
        pass
