"""totem.cmapdb: corosync's icmap and stats map as pure code (corosync 3.1.7 semantics)."""

from __future__ import annotations

import pytest

from totem.cmapdb import (
    IPCS_GLOBAL_STATS,
    PG_STATS,
    SRP_STATS,
    TRACK_ALL,
    CmapDb,
    Notification,
    StatsMap,
    Track,
    TrackType,
    Value,
    ValueType,
    interfaces_text,
    stats_clear_kind,
    value_from_request,
)
from totem.config import parse_text
from totem.lib.common import CsError

CONF = """\
totem {
\tversion: 2
\tcluster_name: demo
\ttransport: udpu
\tconfig_version: 3
\ttoken: 3000
}
nodelist {
\tnode {
\t\tring0_addr: 127.0.0.1
\t\tnodeid: 1
\t\tname: node1
\t}
\tnode {
\t\tring0_addr: 127.0.0.2
\t\tnodeid: 2
\t}
%s}
quorum {
\tprovider: corosync_votequorum
}
uidgid {
\tuid: 1000
\tgid: 105
}
logging {
\tto_syslog: no
}
"""
THIRD_NODE = "\tnode {\n\t\tring0_addr: 127.0.0.3\n\t\tnodeid: 3\n\t}\n"


def config(text: str = CONF % ""):
    return parse_text(text, local_node=1)


class Recorder:
    """A tracker callback that keeps what it hears."""

    def __init__(self, name: str = "", log: list | None = None) -> None:
        self.name = name
        self.seen: list[Notification] = []
        self.log = log

    def __call__(self, track: Track, n: Notification) -> None:
        self.seen.append(n)
        if self.log is not None:
            self.log.append(self.name)


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vtype,ok,bad", [
    (ValueType.INT8, [-128, 127], [128, -129]),
    (ValueType.UINT8, [0, 255], [256, -1]),
    (ValueType.INT16, [-32768, 32767], [32768]),
    (ValueType.UINT16, [65535], [65536, -1]),
    (ValueType.INT32, [-2**31, 2**31 - 1], [2**31]),
    (ValueType.UINT32, [2**32 - 1], [2**32, -1]),
    (ValueType.INT64, [-2**63, 2**63 - 1], [2**63]),
    (ValueType.UINT64, [2**64 - 1], [2**64, -1]),
])
def test_integer_values_have_their_width_and_range(vtype: ValueType, ok: list[int], bad: list[int]) -> None:
    width = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 8, 8: 8}[vtype]
    for n in ok:
        v = Value.of(vtype, n)
        assert len(v.data) == width and v.python() == n
        assert Value.parse(vtype.short_name, str(n)) == v
    for n in bad:
        with pytest.raises(ValueError):
            Value.of(vtype, n)


def test_strings_are_stored_with_their_nul_and_other_types() -> None:
    assert Value.of("str", "abc") == Value(ValueType.STRING, b"abc\0")
    assert Value.of("str", "abc").python() == "abc"
    with pytest.raises(ValueError):
        Value.of("str", "a\0b")
    assert Value.of("bin", b"\0\1") == Value(ValueType.BINARY, b"\0\1")
    assert Value.parse("bin", "0001") == Value(ValueType.BINARY, b"\0\1")
    assert len(Value.of("flt", 1.5).data) == 4 and Value.of("dbl", 1.5).python() == 1.5
    assert ValueType.from_short_name("u64") is ValueType.UINT64
    with pytest.raises(ValueError):
        ValueType.from_short_name("u128")
    with pytest.raises(ValueError):
        Value.of("u8", "1")


def test_value_from_request_follows_icmap_check_value_len() -> None:
    # cmap_set_string sends strlen bytes; the daemon adds the NUL
    assert value_from_request(ValueType.STRING, b"hello") == Value(ValueType.STRING, b"hello\0")
    assert value_from_request(ValueType.STRING, b"hello\0") == Value(ValueType.STRING, b"hello\0")
    assert value_from_request(ValueType.STRING, b"he\0llo") is CsError.INVALID_PARAM
    assert value_from_request(ValueType.UINT32, b"\1\0\0\0") == Value(ValueType.UINT32, b"\1\0\0\0")
    assert value_from_request(ValueType.UINT32, b"\1\0") is CsError.INVALID_PARAM
    assert value_from_request(ValueType.UINT8, b"\1\0") is CsError.INVALID_PARAM
    assert value_from_request(ValueType.BINARY, bytes(100)) == Value(ValueType.BINARY, bytes(100))
    assert value_from_request(ValueType.BINARY, bytes(16 * 1024 + 1)) is CsError.INVALID_PARAM
    assert value_from_request(0, b"") is CsError.INVALID_PARAM
    assert value_from_request(13, b"") is CsError.INVALID_PARAM


# -- set, get, delete -----------------------------------------------------------------------------


def test_set_checks_width_and_new_key_names() -> None:
    db = CmapDb()
    assert db.set("abc", Value.of("u8", 1)) is CsError.OK
    assert db.set("ab", Value.of("u8", 1)) is CsError.NAME_TOO_LONG
    assert db.set("a" * 255, Value.of("u8", 1)) is CsError.OK
    assert db.set("a" * 256, Value.of("u8", 1)) is CsError.NAME_TOO_LONG
    assert db.set("bad key", Value.of("u8", 1)) is CsError.NAME_TOO_LONG
    assert db.set("ok.key-_/:9", Value.of("u8", 1)) is CsError.OK
    assert db.set("abc", Value(ValueType.UINT16, b"\1")) is CsError.INVALID_PARAM
    assert db.set("abc", Value(ValueType.BINARY, bytes(16 * 1024 + 1))) is CsError.INVALID_PARAM
    # a key may change type
    assert db.set("abc", Value.of("str", "x")) is CsError.OK
    assert db.get("abc") == Value.of("str", "x")
    assert db.delete("abc") is CsError.OK
    assert db.delete("abc") is CsError.NOT_EXIST
    assert db.get("abc") is None and "abc" not in db


def test_adjust_int_wraps_at_the_width_and_refuses_other_types() -> None:
    db = CmapDb()
    db.set_value("k.u8", "u8", 255)
    db.set_value("k.i16", "i16", -1)
    db.set_value("k.u64", "u64", 0)
    db.set_value("k.str", "str", "x")
    db.set_value("k.dbl", "dbl", 1.0)
    assert db.adjust_int("k.u8", 1) is CsError.OK and db.python("k.u8") == 0
    assert db.adjust_int("k.i16", 2) is CsError.OK and db.python("k.i16") == 1
    assert db.adjust_int("k.u64", -1) is CsError.OK and db.python("k.u64") == 2**64 - 1
    assert db.adjust_int("k.str", 1) is CsError.INVALID_PARAM
    assert db.adjust_int("k.dbl", 1) is CsError.INVALID_PARAM
    assert db.adjust_int("k.none", 1) is CsError.NOT_EXIST


# -- iteration ---------------------------------------------------------------------------------


def test_iteration_is_in_byte_order_under_a_prefix() -> None:
    db = CmapDb()
    for key in ("totem.token", "nodelist.node.1.nodeid", "nodelist.node.0.nodeid", "totem.a",
                "nodelist.local_node_pos", "Zeta.key", "nodelist.node.10.nodeid"):
        db.set_value(key, "u32", 1)
    assert db.keys() == sorted(db.keys())
    assert db.keys()[0] == "Zeta.key"  # upper case sorts first, as bytes do
    assert db.keys("nodelist.node.") == ["nodelist.node.0.nodeid", "nodelist.node.1.nodeid",
                                         "nodelist.node.10.nodeid"]
    assert db.keys("nodelist.node.1") == ["nodelist.node.1.nodeid", "nodelist.node.10.nodeid"]
    assert db.keys("nomatch") == []
    assert [k for k, _ in db.items("totem.")] == ["totem.a", "totem.token"]


def test_a_live_iteration_sees_keys_added_ahead_and_skips_deleted_ones() -> None:
    db = CmapDb()
    for key in ("p.a", "p.c", "p.e"):
        db.set_value(key, "u8", 1)
    first = db.next_key("p.", None)
    assert first == "p.a"
    db.set_value("p.d", "u8", 1)
    db.set_value("p.0", "u8", 1)  # behind the position: not seen
    db.delete("p.c")
    second = db.next_key("p.", first)
    third = db.next_key("p.", second)
    assert (second, third, db.next_key("p.", third)) == ("p.d", "p.e", None)


# -- tracking -------------------------------------------------------------------------------------


def test_tracking_an_exact_key_hears_add_modify_delete() -> None:
    db = CmapDb()
    rec = Recorder()
    track = db.track_add("a.key", TRACK_ALL, rec)
    assert isinstance(track, Track)
    db.set_value("a.key", "u32", 1)
    db.set_value("a.key", "u32", 1)  # unchanged: nobody hears of it
    db.set_value("a.key", "u32", 2)
    db.set_value("a.key.longer", "u32", 2)  # another key
    db.delete("a.key")
    assert [(n.event, n.new, n.old) for n in rec.seen] == [
        (TrackType.ADD, Value.of("u32", 1), None),
        (TrackType.MODIFY, Value.of("u32", 2), Value.of("u32", 1)),
        (TrackType.DELETE, None, Value.of("u32", 2)),
    ]
    assert db.track_delete(track) is CsError.OK
    assert db.track_delete(track) is CsError.NOT_EXIST
    db.set_value("a.key", "u32", 3)
    assert len(rec.seen) == 3


def test_tracking_filters_events_and_prefixes() -> None:
    db = CmapDb()
    adds, prefix, everything = Recorder(), Recorder(), Recorder()
    db.track_add("x.", TrackType.ADD | TrackType.PREFIX, adds)
    db.track_add("x.", TRACK_ALL | TrackType.PREFIX, prefix)
    db.track_add(None, TRACK_ALL | TrackType.PREFIX, everything)
    db.track_add(None, TRACK_ALL, Recorder())  # the root without PREFIX hears nothing
    db.set_value("x.1", "u8", 1)
    db.set_value("x.1", "u8", 2)
    db.set_value("y.1", "u8", 1)
    db.delete("x.1")
    assert [n.event for n in adds.seen] == [TrackType.ADD]
    assert [(n.event, n.key) for n in prefix.seen] == [
        (TrackType.ADD, "x.1"), (TrackType.MODIFY, "x.1"), (TrackType.DELETE, "x.1")]
    assert [n.key for n in everything.seen] == ["x.1", "x.1", "y.1", "x.1"]
    assert db.track_add("x", 16, Recorder()) is CsError.INVALID_PARAM


def test_trackers_are_called_in_corosyncs_trie_order() -> None:
    db = CmapDb()
    order: list[str] = []
    db.track_add("", TRACK_ALL | TrackType.PREFIX, Recorder("root", order))
    db.track_add("a.", TRACK_ALL | TrackType.PREFIX, Recorder("a. first", order))
    db.track_add("a.b", TRACK_ALL, Recorder("exact first", order))
    db.track_add("a.b", TRACK_ALL | TrackType.PREFIX, Recorder("a.b prefix", order))
    db.track_add("a.", TRACK_ALL | TrackType.PREFIX, Recorder("a. second", order))
    db.track_add("a.b", TRACK_ALL, Recorder("exact second", order))
    db.set_value("a.b", "u8", 1)
    # the key's node: exact trackers newest first, then its prefix trackers; then the
    # parents from the longest prefix, prefix trackers oldest first
    assert order == ["exact second", "exact first", "a.b prefix", "a. first", "a. second", "root"]


def test_a_tracker_removed_by_another_is_not_called() -> None:
    db = CmapDb()
    late = Recorder()
    late_track = db.track_add("k.k", TRACK_ALL | TrackType.PREFIX, late)

    def remover(track: Track, n: Notification) -> None:
        db.track_delete(late_track)  # type: ignore[arg-type]

    db.track_add("k.k", TRACK_ALL, remover)
    db.set_value("k.k", "u8", 1)
    assert late.seen == []


def test_fast_adjust_notifies_without_an_old_value() -> None:
    db = CmapDb()
    db.set_value("c.rx", "u64", 5)
    rec = Recorder()
    db.track_add("c.rx", TRACK_ALL, rec)
    assert db.fast_adjust_int("c.rx", 1) is CsError.OK
    assert db.fast_adjust_int("c.rx", 0) is CsError.OK
    assert [(n.event, n.new.python() if n.new else None, n.old) for n in rec.seen] == [
        (TrackType.MODIFY, 6, None), (TrackType.MODIFY, 6, None)]
    assert db.adjust_int("c.rx", 0) is CsError.OK and len(rec.seen) == 2


# -- from the configuration ---------------------------------------------------------------------


def test_loaded_from_config_with_types_and_runtime_keys() -> None:
    db = CmapDb.from_config(config())
    assert db.get("totem.cluster_name") == Value.of("str", "demo")
    assert db.get("totem.config_version") == Value.of("u64", 3)
    assert db.get("totem.version") == Value.of("u32", 2)
    assert db.get("nodelist.node.1.nodeid") == Value.of("u32", 2)
    assert db.get("nodelist.local_node_pos") == Value.of("u32", 0)
    assert db.get("uidgid.config.uid.1000") == Value.of("u8", 1)
    assert db.get("runtime.config.totem.token") == Value.of("u32", 3000)
    assert db.get("runtime.config.totem.knet_compression_level") == Value.of("i32", 0)
    assert db.get("runtime.config.totem.knet_compression_model") == Value.of("str", "none")


def test_read_only_keys_are_corosyncs() -> None:
    db = CmapDb.from_config(config())
    for key in ("nodelist.node.0.nodeid", "nodelist.local_node_pos", "runtime.config.totem.token",
                "runtime.services.cmap.service_id", "runtime.totem.x", "system.state_dir",
                "uidgid.config.uid.5", "internal_configuration.service.0.name", "totem.cluster_name",
                "totem.transport", "totem.crypto_cipher", "totem.version", "config.reload_in_progress",
                "quorum.wait_for_all", "quorum.auto_tie_breaker_node"):
        assert db.is_read_only(key), key
    for key in ("totem.token", "totem.config_version", "uidgid.gid.105", "uidgid.uid.7",
                "runtime.members.1.status", "logging.debug", "quorum.expected_votes",
                "totem.cluster_name2", "test.key", "quorum.provider"):
        assert not db.is_read_only(key), key
    assert not CmapDb().is_read_only("nodelist.node.0.nodeid")  # marks come with from_config
    no_quorum = config((CONF % "").replace("quorum {\n\tprovider: corosync_votequorum\n}\n", ""))
    assert not CmapDb.from_config(no_quorum).is_read_only("quorum.wait_for_all")


def test_access_rule_of_corosyncs_ipc() -> None:
    db = CmapDb.from_config(config())
    assert db.allowed(0, 1234) and db.allowed(1234, 0)
    assert db.allowed(1000, 1000)  # uidgid.config.uid.1000 from the config
    assert db.allowed(2000, 105)  # uidgid.config.gid.105
    assert not db.allowed(2000, 2000)
    db.set_value("uidgid.gid.2000", "u8", 1)  # what pacemakerd sets for haclient
    assert db.allowed(3000, 2000)
    db.set_value("uidgid.uid.3001", "u8", 2)
    db.set_value("uidgid.uid.3002", "u32", 1)  # must be the u8 value 1
    assert not db.allowed(3001, 1) and not db.allowed(3002, 1)


# -- what the daemon maintains --------------------------------------------------------------------


def test_membership_keys_as_corosyncs_main_keeps_them() -> None:
    db = CmapDb()
    rec = Recorder()
    db.track_add("runtime.members.", TRACK_ALL | TrackType.PREFIX, rec)
    addrs = {1: ["198.18.0.1"], 2: ["198.18.0.2"], 3: ["fd00::3"]}
    db.update_membership(joined=[1], left=[], addresses=addrs)
    db.update_membership(joined=[2, 3], left=[], addresses=addrs)
    assert db.get("runtime.members.1.ip") == Value.of("str", "r(0) ip(198.18.0.1) ")
    assert db.get("runtime.members.3.ip") == Value.of("str", "r(0) ip(fd00::3) ")
    assert db.python("runtime.members.2.join_count") == 1
    assert db.member_status(2) == "joined"
    db.update_membership(joined=[], left=[2], addresses=addrs)
    assert db.member_status(2) == "left" and db.member_status(9) is None
    db.update_membership(joined=[2], left=[], addresses=addrs)
    assert db.python("runtime.members.2.join_count") == 2 and db.member_status(2) == "joined"
    assert db.get("runtime.members.2.join_count") == Value.of("u32", 2)
    db.set_member_config_version(2, 7)
    assert db.get("runtime.members.2.config_version") == Value.of("u64", 7)
    assert [(n.event, n.key) for n in rec.seen][:3] == [
        (TrackType.ADD, "runtime.members.1.ip"), (TrackType.ADD, "runtime.members.1.join_count"),
        (TrackType.ADD, "runtime.members.1.status")]
    assert interfaces_text(["10.0.0.1", "10.0.1.1"]) == "r(0) ip(10.0.0.1) r(1) ip(10.0.1.1) "
    assert interfaces_text([]) == ""


def test_service_keys_and_message_counters() -> None:
    db = CmapDb()
    db.register_services([(0, "cmap", 1), (1, "cfg", 5), (3, "quorum", 0)])
    assert db.get("internal_configuration.service.1.name") == Value.of("str", "corosync_cfg")
    assert db.get("internal_configuration.service.1.ver") == Value.of("u32", 0)
    assert db.get("runtime.services.cfg.service_id") == Value.of("u16", 1)
    assert db.keys("runtime.services.quorum.") == ["runtime.services.quorum.service_id"]
    assert len(db.keys("runtime.services.cfg.")) == 11
    db.count_exec_message("cmap", 0, sent=True)
    db.count_exec_message("cmap", 0, sent=False)
    db.count_exec_message("cmap", 0, sent=False)
    assert (db.python("runtime.services.cmap.0.tx"), db.python("runtime.services.cmap.0.rx")) == (1, 2)


def test_reload_deletes_changes_and_keeps_what_cannot_change() -> None:
    db = CmapDb.from_config(config())
    db.set_value("uidgid.gid.2000", "u8", 1)  # set by a client: not under a reloaded prefix
    rec = Recorder()
    db.track_add(None, TRACK_ALL | TrackType.PREFIX, rec)
    new_text = (CONF % THIRD_NODE).replace("token: 3000", "token: 5000").replace(
        "cluster_name: demo", "cluster_name: other").replace("\tto_syslog: no\n", "\tdebug: on\n")
    notices = db.apply_reload(config(new_text))
    assert notices == ["Modified entry 'totem.cluster_name' in corosync.conf cannot be changed at run-time"]
    assert db.python("totem.cluster_name") == "demo"
    assert db.get("totem.token") == Value.of("u32", 5000)
    assert db.get("nodelist.node.2.nodeid") == Value.of("u32", 3)
    assert db.get("logging.to_syslog") is None and db.python("logging.debug") == "on"
    assert db.python("uidgid.gid.2000") == 1
    events = {(n.event, n.key) for n in rec.seen}
    assert (TrackType.DELETE, "logging.to_syslog") in events
    assert (TrackType.ADD, "nodelist.node.2.ring0_addr") in events
    assert (TrackType.MODIFY, "runtime.config.totem.token") in events  # token with 3 nodes
    # and back: the third node's keys go away
    db.apply_reload(config())
    assert db.keys("nodelist.node.2.") == []


# -- the stats map ------------------------------------------------------------------------------------

REAL_STATS_KEYS = """\
stats.ipcs.global.active stats.ipcs.global.closed stats.pg.msg_queue_avail stats.pg.msg_reserved
stats.srp.avg_backlog_calc stats.srp.avg_token_workload stats.srp.commit_entered
stats.srp.commit_token_lost stats.srp.consensus_timeouts stats.srp.continuous_gather
stats.srp.continuous_sendmsg_failures stats.srp.firewall_enabled_or_nic_failure
stats.srp.gather_entered stats.srp.gather_token_lost stats.srp.mcast_retx stats.srp.mcast_rx
stats.srp.mcast_tx stats.srp.memb_commit_token_rx stats.srp.memb_commit_token_tx
stats.srp.memb_join_rx stats.srp.memb_join_tx stats.srp.memb_merge_detect_rx
stats.srp.memb_merge_detect_tx stats.srp.mtt_rx_token stats.srp.operational_entered
stats.srp.operational_token_lost stats.srp.orf_token_rx stats.srp.orf_token_tx
stats.srp.recovery_entered stats.srp.recovery_token_lost stats.srp.rx_msg_dropped
stats.srp.time_since_token_last_received stats.srp.token_hold_cancel_rx
stats.srp.token_hold_cancel_tx""".split()
"""``corosync-cmapctl -m stats`` of a real corosync 3.1.7 udpu node, less the
per-connection ``stats.ipcs.service*`` keys."""


def test_stats_map_has_corosyncs_keys_and_types() -> None:
    stats = StatsMap()
    assert stats.keys() == REAL_STATS_KEYS
    assert stats.get("stats.srp.mcast_tx") == Value.of("u64", 0)
    assert stats.get("stats.srp.firewall_enabled_or_nic_failure") == Value.of("u8", 0)
    assert stats.get("stats.srp.mtt_rx_token") == Value.of("u32", 0)
    assert stats.get("stats.pg.msg_reserved") == Value.of("u32", 0)
    assert len(SRP_STATS) + len(PG_STATS) + len(IPCS_GLOBAL_STATS) == len(REAL_STATS_KEYS)


def test_stats_updates_and_their_notifications() -> None:
    stats = StatsMap()
    exact, prefix = Recorder(), Recorder()
    stats.track_add("stats.srp.mcast_tx", TrackType.MODIFY, exact)
    stats.track_add("stats.srp.", TRACK_ALL | TrackType.PREFIX, prefix)
    stats.update_srp_stats({"mcast_tx": 17, "orf_token_rx": 96, "not_a_stat": 1, "continuous_gather": 2**33})
    stats.update_pg_stats(0, 2)
    stats.update_ipc_stats(active=1, closed=1)
    assert stats.python("stats.srp.mcast_tx") == 17 and stats.python("stats.srp.orf_token_rx") == 96
    assert stats.python("stats.srp.continuous_gather") == 0  # u32 wraps
    assert stats.python("stats.pg.msg_reserved") == 2 and stats.python("stats.ipcs.global.active") == 1
    assert "stats.srp.not_a_stat" not in stats
    # corosync reports the new value as the old one, and prefix trackers hear no MODIFY
    assert [(n.new, n.old) for n in exact.seen] == [(Value.of("u64", 17), Value.of("u64", 17))]
    assert prefix.seen == []


def test_stats_map_access_rules() -> None:
    stats = StatsMap()
    assert stats.is_read_only("stats.srp.mcast_tx") and not stats.is_read_only("stats.clear.totem")
    assert stats.track_add("stats.", TrackType.ADD | TrackType.PREFIX, Recorder()) is CsError.NOT_SUPPORTED
    assert isinstance(stats.track_add("stats.", TrackType.ADD | TrackType.DELETE | TrackType.PREFIX,
                                      Recorder()), Track)
    assert [stats_clear_kind(k) for k in ("stats.clear.totem", "stats.clear.all", "stats.clear.knet1",
                                          "stats.clear.x", "stats.srp.x")] == ["totem", "all", "knet", None, None]
