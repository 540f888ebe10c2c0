"""corosync.conf reading (totem.config): grammar, keys, checks, nodelist, local node.

The facts these tests pin down were checked against real corosync 3.1.7 (`corosync -t`,
and `corosync-cmapctl` of a running node for vectors/conf/cmap-lab.*); the interop
test interop/test_config_with_corosync.py re-runs the accept/refuse part of them.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from totem.config import ConfigError, load, parse, parse_text
from totem.config.host import local_addresses, parse_ip_addr
from totem.config.nodes import Candidate, find_local_node, generate_nodeid, resolve_address
from totem.config.schema import parse_integer
from totem.srp.config import SrpConfig

CONF = Path(__file__).parent / "vectors" / "conf"
ROOT = Path(__file__).parent.parent

NODES2 = """\
	node {
		ring0_addr: 127.0.0.1
		nodeid: 1
	}
	node {
		ring0_addr: 127.0.0.2
		nodeid: 2
	}
"""


def conf(totem: str = "", nodes: str = NODES2, extra: str = "", transport: str = "udpu") -> str:
    """A small valid config; totem lines start on line 5, the nodelist on line 7 + the
    number of totem lines."""
    t = "".join(f"\t{line}\n" for line in totem.splitlines())
    return (f"totem {{\n\tversion: 2\n\tcluster_name: t\n\ttransport: {transport}\n{t}}}\n"
            f"nodelist {{\n{nodes}}}\n{extra}")


def resolver_of(table: dict[str, list[str]]):
    return lambda host: table.get(host, [])


def read(text: str, **kw):
    kw.setdefault("hostname", "testhost")
    kw.setdefault("addresses", ["127.0.0.1"])
    kw.setdefault("resolver", resolver_of({}))
    return parse_text(text, **kw)


def refused(text: str, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        read(text, **kw)
    return info.value


# --- the capture configs ---------------------------------------------------------------

CAPTURES = sorted(p.name for p in CONF.glob("*.conf") if p.name != "cmap-lab.conf")


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_configs_give_corosyncs_timers(name):
    three = "3node" in name or name.startswith("services")
    expected = (3650, 869, 685, 4380) if three else (3000, 714, 561, 3600)
    for n in (1, 2, 3) if three else (1, 2):
        cfg = load(CONF / name, hostname="elsewhere", addresses=[f"127.0.0.{n}"])
        s = cfg.srp
        assert (s.token, s.token_retransmit, s.hold, s.consensus) == expected
        assert cfg.local.nodeid == n and cfg.local.addr == f"127.0.0.{n}"
        assert [(x.nodeid, x.addr, x.name) for x in cfg.nodes] == [
            (i, f"127.0.0.{i}", f"node{i}") for i in range(1, len(cfg.nodes) + 1)]
        assert cfg.mcastport == 5405 and cfg.transport == "udpu"
        assert cfg.warnings == []
        assert s == SrpConfig.derive(len(cfg.nodes))


def test_capture_config_finds_its_node_by_host_name():
    cfg = load(CONF / "services-node2.conf", hostname="node2", addresses=lambda: pytest.fail("no"))
    assert cfg.local.nodeid == 2
    assert cfg.cluster_name == "svcwire"
    assert cfg.logging.to_logfile and not cfg.logging.to_stderr and cfg.logging.debug
    assert cfg.logging.logfile == "/var/log/corosync/node2/corosync.log"
    assert cfg.logging.timestamp == "on"
    assert cfg.quorum.enabled and cfg.quorum.provider == "corosync_votequorum"
    assert not load(CONF / "services-node3-noquorum.conf", hostname="node3").quorum.enabled
    assert load(CONF / "corosync-3.1.7-udpu-2node-node2.conf", hostname="node2").state_dir \
        == "/var/lib/corosync/node2"


def test_cmap_matches_corosync_cmapctl_of_the_same_file():
    """vectors/conf/cmap-lab.cmapctl.txt is corosync-cmapctl of a corosync 3.1.7 running
    cmap-lab.conf: same keys, types and values, runtime.config.totem.* included."""
    cfg = load(CONF / "cmap-lab.conf", hostname="elsewhere", addresses=["127.0.0.1"])
    ours = [f"{k} ({cfg.cmap_types[k]}) = {v}" for k, v in cfg.cmap.items()]
    ours += [f"{k} ({t}) = {v}" for k, (t, v) in cfg.runtime_cmap().items()]
    theirs = (CONF / "cmap-lab.cmapctl.txt").read_text().splitlines()
    assert sorted(ours) == sorted(theirs)
    assert cfg.cmap["totem.token"] == "3000" and cfg.srp.token == 4300
    assert [n.nodeid for n in cfg.nodes] == [2130706433, 7, 2130706435]
    assert [n.votes for n in cfg.nodes] == [1, 2, 1]
    assert cfg.config_version == 7
    assert cfg.quorum.last_man_standing_window == 20000
    assert cfg.allowed_uids == {0} and cfg.allowed_gids == {0}
    assert any("counts a node that has only a ring0_addr twice" in w for w in cfg.warnings)


def test_example_config_loads_with_the_hosts_address():
    cfg = load(ROOT / "conf" / "corosync.conf.example", hostname="h", addresses=["10.0.0.12"])
    assert cfg.local.nodeid == 2 and cfg.local.name == "node2"
    assert cfg.srp.token == 3650 and cfg.srp.consensus == 4380
    assert cfg.logging.to_syslog and not cfg.logging.to_stderr
    assert cfg.warnings == []


# --- grammar, as coroparse reads it ----------------------------------------------------

def test_comments_are_whole_lines_only():
    text = conf("# a comment\n   # indented comment\ncluster_name: a # not a comment")
    cfg = read("# top\n\n  \t\n" + text)
    assert cfg.cluster_name == "a # not a comment"
    err = refused(conf("token: 3000 # ms"))
    assert (err.line, err.key, err.got) == (5, "totem.token", "3000 # ms")


def test_no_quoting_and_values_keep_what_follows_the_first_colon():
    cfg = read(conf('cluster_name: "a b"'))
    assert cfg.cluster_name == '"a b"'
    assert refused(conf('token: "3000"')).got == '"3000"'
    cfg = read(conf("cluster_name:x:y"))
    assert cfg.cluster_name == "x:y"


def test_key_value_without_blank_and_section_header_variants():
    text = ("totem{\nversion:2\ntransport:udpu\ntoken:+4000\n}\nnodelist: {\n node\t{\n"
            "  ring0_addr:127.0.0.1\n }\n}\n")
    cfg = read(text)
    assert cfg.srp.token == 4000 and cfg.cmap["totem.token"] == "4000"
    assert cfg.local.nodeid == 0x7F000001


def test_crlf_line_ends_and_trailing_blanks():
    cfg = read(conf("token: 5000  \t").replace("\n", "\r\n"))
    assert cfg.srp.token == 5000


def test_empty_values_and_a_value_of_an_empty_key():
    cfg = read(conf("cluster_name:"))
    assert cfg.cluster_name == ""


def test_repeated_keys_last_wins_and_repeated_sections_merge():
    cfg = read(conf("token: 10\ntoken: 4000") + "totem {\n\tjoin: 60\n}\n")
    assert cfg.srp.token == 4000 and cfg.srp.join == 60


def test_logger_subsys_repeated_key_first_wins_as_in_corosync():
    extra = "logging {\n\tlogger_subsys {\n\t\tsubsys: QUORUM\n\t\tdebug: on\n\t\tdebug: off\n\t}\n}\n"
    cfg = read(conf(extra=extra))
    (sub,) = cfg.logging.logger_subsys
    assert (sub.subsys, sub.debug_mode, sub.debug) == ("QUORUM", "on", True)
    assert cfg.cmap["logging.logger_subsys.QUORUM.subsys"] == "QUORUM"


def test_line_length_limit_is_510_bytes():
    read(conf("cluster_name: " + "x" * (510 - 15)))   # a tab and "cluster_name: " = 15 bytes
    err = refused(conf("cluster_name: " + "x" * (511 - 15)))
    assert err.line == 5 and "Line too long" in str(err)


def test_there_is_no_include():
    err = refused("include /etc/corosync/other.conf\n" + conf())
    assert err.line == 1 and "Line is not opening or closing section or key value" in str(err)
    cfg = read("include: other.conf\n" + conf())
    assert cfg.warnings == ["corosync.conf:1: include: unknown key, ignored (corosync keeps it "
                            "in cmap only)"]


def test_parse_tree_keeps_every_value_with_its_line():
    root = parse(conf("token: 1\ntoken: 2"), "x.conf")
    (totem,) = root.all("totem")
    assert [(i.key, i.value, i.line) for i in totem.items][-2:] == [("token", "1", 5),
                                                                     ("token", "2", 6)]
    assert totem.get("token").value == "2" and totem.get("token").dotted == "totem.token"
    assert [s.name for s in root.all("nodelist")[0].sections] == ["node", "node"]
    assert totem.line == 1 and totem.end_line == 7 and totem.file == "x.conf"


GRAMMAR_ERRORS = [
    ("zz {\n", 16, "zz", "Missing closing brace"),
    ("}\n", 16, None, "Unexpected closing brace"),
    ("x y z\n", 16, None, "Line is not opening or closing section or key value"),
    ("{\n}\n", 16, None, "Missing section name before opening bracket"),
    ("foo { bar: 1 }\n", 16, None, "Extra characters after opening bracket"),
    ("q {\n} # x\n", 17, "q", "Extra characters before or after closing bracket"),
    ("a b {\nc: d\n}\n", 17, "a b.c", "CS_ERR_NAME_TOO_LONG"),
]


@pytest.mark.parametrize("extra,line,key,corosync", GRAMMAR_ERRORS)
def test_grammar_errors_name_file_line_and_corosyncs_reason(extra, line, key, corosync):
    err = refused(conf(extra=extra))
    assert (err.file, err.line, err.key) == ("corosync.conf", line, key)
    assert corosync in err.message and "expected" in err.message
    prefix = f"corosync.conf:{line}: {key}: " if key else f"corosync.conf:{line}: "
    assert str(err).startswith(prefix + "expected")


def test_missing_brace_points_at_the_unclosed_section():
    err = refused("totem {\n\tversion: 2\n\ttransport: udpu\n")
    assert (err.line, err.key) == (1, "totem")
    assert "got the end of the file at line 3" in str(err)


# --- refusals: every one names file, line, key and what was expected ------------------

ERRORS = [
    # (totem lines, nodes, extra, line, key, expected (substring), got)
    ("token: abc", NODES2, "", 5, "totem.token", "an integer >= 30", "abc"),
    ("token: 10", NODES2, "", 5, "totem.token", "an integer >= 30", "10"),
    ("token: -5", NODES2, "", 5, "totem.token", "an integer >= 30", "-5"),
    ("token: 0x10", NODES2, "", 5, "totem.token", "an integer >= 30", "0x10"),
    ("token: 4294967296", NODES2, "", 5, "totem.token", "an integer >= 30", "4294967296"),
    ("join: 5", NODES2, "", 5, "totem.join", "an integer >= 30", "5"),
    ("merge: 5", NODES2, "", 5, "totem.merge", "an integer >= 30", "5"),
    ("downcheck: 5", NODES2, "", 5, "totem.downcheck", "an integer >= 30", "5"),
    ("max_network_delay: 10", NODES2, "", 5, "totem.max_network_delay", "an integer >= 30", "10"),
    ("token_retransmit: 5", NODES2, "", 5, "totem.token_retransmit", "an integer >= 30", "5"),
    ("hold: 10", NODES2, "", 5, "totem.hold", "an integer >= 14", "10"),
    ("consensus: 40", NODES2, "", 5, "totem.consensus", "consensus >= join", "40"),
    ("join: 5000", NODES2, "", 5, "totem.join", "consensus >= join", "5000"),
    ("token_warning: 101", NODES2, "", 5, "totem.token_warning", "0..100", "101"),
    ("token_retransmits_before_loss_const: 1000", NODES2, "", 5,
     "totem.token_retransmits_before_loss_const", "token_retransmit >= 30", "1000"),
    ("netmtu: 500", NODES2, "", 5, "totem.netmtu", "an integer >= 576", "500"),
    ("version: 3", NODES2, "", 5, "totem.version", "2", "3"),
    ("ip_version: ipv5", NODES2, "", 5, "totem.ip_version", "one of ipv4", "ipv5"),
    ("crypto_cipher: bogus", NODES2, "", 5, "totem.crypto_cipher", "one of none", "bogus"),
    ("crypto_cipher: aes256", NODES2, "", 5, "totem.crypto_cipher", "crypto_hash other than none",
     "aes256"),
    ("knet_mtu: 1400", NODES2, "", 5, "totem.knet_mtu", "an option of the udpu transport", "1400"),
    ("link_mode: passive", NODES2, "", 5, "totem.link_mode", "an option of the udpu transport",
     "passive"),
    ("knet_compression_model: zlib", NODES2, "", 5, "totem.knet_compression_model",
     "an option of the udpu transport", "zlib"),
    ("interface {\nknet_ping_interval: 100\n}", NODES2, "", 6, "totem.interface.knet_ping_interval",
     "an option of the udpu transport", "100"),
    ("interface {\nknet_link_priority: 3\n}", NODES2, "", 6, "totem.interface.knet_link_priority",
     "an option of the udpu transport", "3"),
    ("interface {\nttl: 3\n}", NODES2, "", 6, "totem.interface.ttl", "1", "3"),
    ("interface {\nmcastport: 70000\n}", NODES2, "", 6, "totem.interface.mcastport",
     "an integer in 0..65535", "70000"),
    ("interface {\nlinknumber: 1\nmcastport: 5407\n}", NODES2, "", 7, "totem.interface.linknumber",
     "linknumber 0 only", "1"),
    ("foo {\n}", NODES2, "", 5, "totem.foo", "only 'interface' sections", "foo"),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: 127.0.0.3\n\t\tnodeid: 1\n\t}\n", "", 17,
     "nodelist.node.2.nodeid", "a nodeid no other node has", "1"),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: 127.0.0.2\n\t\tnodeid: 3\n\t}\n", "", 16,
     "nodelist.node.2.ring0_addr", "an address no other node has", "127.0.0.2"),
    ("", NODES2.replace("nodeid: 2", "nodeid: 2\n\t\tring1_addr: 127.0.0.4"), "", 14,
     "nodelist.node.1.ring1_addr", "only ring0_addr", "127.0.0.4"),
    ("", NODES2 + "\tnode {\n\t\tnodeid: 3\n\t}\n", "", 15, "nodelist.node.2.ring0_addr",
     "a ring0_addr in every node", None),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: ::3\n\t\tnodeid: 3\n\t}\n", "", 16,
     "nodelist.node.2.ring0_addr", "the same IP family", "::3"),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: ::3\n\t}\n", "", 16, "nodelist.node.2.nodeid",
     "a nodeid", None),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: nohost.invalid\n\t}\n", "", 16,
     "nodelist.node.2.ring0_addr", "an IP address or a host name", "nohost.invalid"),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: 127.0.0.3\n\t\tnodeid: x\n\t}\n", "", 17,
     "nodelist.node.2.nodeid", "an integer in 0..4294967295", "x"),
    ("", NODES2.replace("nodeid: 2", "nodeid: 2\n\t\tname: a").replace("nodeid: 1", "nodeid: 1\n\t\tname: a"),
     "", 15, "nodelist.node.1.name", "a name no other node has", "a"),
    ("", NODES2 + "\tnode {\n\t\tring0_addr: 127.0.0.3\n\t\tx {\n\t\t}\n\t}\n", "", 17,
     "nodelist.node.x", "no sections in nodelist.node", "x"),
    ("", NODES2, "logging {\ndebug: yes\n}\n", 17, "logging.debug", "on, off or trace", "yes"),
    ("", NODES2, "logging {\nto_stderr: maybe\n}\n", 17, "logging.to_stderr", "yes, no", "maybe"),
    ("", NODES2, "logging {\ntimestamp: yes\n}\n", 17, "logging.timestamp", "on, off or hires",
     "yes"),
    ("", NODES2, "logging {\nsyslog_facility: LOCAL1\n}\n", 17, "logging.syslog_facility",
     "one of auth", "LOCAL1"),
    ("", NODES2, "logging {\nsyslog_priority: loud\n}\n", 17, "logging.syslog_priority",
     "one of alert", "loud"),
    ("", NODES2, "logging {\nlogger_subsys {\ndebug: on\n}\n}\n", 17, "logging.logger_subsys",
     "a 'subsys' key", None),
    ("", NODES2, "logging {\nlogger_subsys {\nsubsys: Q\ndebug: bogus\n}\n}\n", 19,
     "logging.logger_subsys.debug", "on, off or trace", "bogus"),
    ("", NODES2, "uidgid {\nuid: no-such-user-here\n}\n", 17, "uidgid.uid", "a user name or number",
     "no-such-user-here"),
    ("", NODES2, "uidgid {\ngid: no-such-group-here\n}\n", 17, "uidgid.gid",
     "a group name or number", "no-such-group-here"),
    ("", NODES2, "uidgid {\nfoo: 1\n}\n", 17, "uidgid.foo", "uid or gid", "foo"),
    ("", NODES2, "quorum {\nprovider: corosync_ykd\n}\n", 17, "quorum.provider",
     "corosync_votequorum", "corosync_ykd"),
    ("", NODES2, "quorum {\nprovider: other\n}\n", 17, "quorum.provider", "corosync_votequorum",
     "other"),
    ("", NODES2, "quorum {\ntwo_node: yes\n}\n", 17, "quorum.two_node", "an integer in 0..255",
     "yes"),
    ("", NODES2, "system {\nsched_rr: maybe\n}\n", 17, "system.sched_rr", "one of yes, no",
     "maybe"),
    ("", NODES2, "system {\npriority: high\n}\n", 17, "system.priority", "max, min or an integer",
     "high"),
]


@pytest.mark.parametrize("totem,nodes,extra,line,key,expected,got", ERRORS,
                         ids=[f"{e[4]}-{e[6]}" for e in ERRORS])
def test_refusals_name_file_line_key_and_expectation(totem, nodes, extra, line, key, expected, got):
    err = refused(conf(totem, nodes, extra))
    assert (err.file, err.line, err.key, err.got) == ("corosync.conf", line, key, got)
    assert expected in err.expected
    shown = "nothing" if got is None else f"'{got}'"
    assert str(err).startswith(f"corosync.conf:{line}: {key}: ")
    assert f"expected {err.expected}, got {shown}" in str(err)


def test_knet_and_udp_transports_are_refused_with_a_reason():
    err = refused(conf(transport="knet"))
    assert (err.line, err.key, err.expected, err.got) == (4, "totem.transport", "udpu", "knet")
    assert "totemd speaks udpu only" in str(err)
    err = refused(conf(transport="udp"))
    assert err.got == "udp" and "multicast" in str(err)
    err = refused(conf(transport="tcp"))
    assert "Invalid transport type. Should be udpu, udp or knet" in str(err)


def test_missing_transport_means_knet_and_is_refused():
    err = refused(conf().replace("\ttransport: udpu\n", ""))
    assert (err.line, err.key, err.got) == (1, "totem.transport", None)
    assert "corosync 3 uses knet" in str(err) and "totemd speaks udpu only" in str(err)


def test_transport_is_reported_before_knet_options():
    err = refused(conf("knet_mtu: 1400", transport="knet"))
    assert err.key == "totem.transport"


def test_crypto_on_udpu_is_a_totemd_extension():
    """corosync 3 refuses crypto on udpu ("only valid for the Knet transport"); totemd
    accepts it (corosync 2.x's envelope, tests/test_crypto_*.py) and keeps the rest of
    totem_get_crypto's reading: secauth on means aes256 + sha256, a cipher needs a hash."""
    cfg = read(conf("crypto_cipher: aes256\ncrypto_hash: sha256"))
    assert (cfg.crypto_cipher, cfg.crypto_hash) == ("aes256", "sha256")
    assert cfg.crypto.enabled and cfg.crypto.keyfile is None
    cfg = read(conf("secauth: on"))
    assert (cfg.crypto.cipher, cfg.crypto.hash) == ("aes256", "sha256")
    cfg = read(conf("crypto_cipher: none\ncrypto_hash: none\nsecauth: off"))
    assert (cfg.crypto_cipher, cfg.crypto_hash) == ("none", "none")
    assert not cfg.crypto.enabled
    assert cfg.cmap["totem.crypto_cipher"] == "none"
    err = refused(conf("crypto_cipher: aes256"))
    assert str(err) == ("corosync.conf:5: totem.crypto_cipher: expected crypto_hash other than "
                        "none with a crypto_cipher, got 'aes256' (corosync: crypto_cipher "
                        "requires crypto_hash with value other than none)")


def test_missing_version_and_missing_nodelist():
    err = refused(conf().replace("\tversion: 2\n", ""))
    assert (err.line, err.key, err.expected, err.got) == (1, "totem.version", "2", None)
    err = refused("totem {\n\tversion: 2\n\ttransport: udpu\n}\n")
    assert (err.key, err.got) == ("nodelist", None) and "No interfaces defined" in str(err)
    err = refused("totem {\n\tversion: 2\n\ttransport: udpu\n}\nnodelist {\n}\n")
    assert (err.line, err.key) == (5, "nodelist")


def test_no_local_node():
    err = refused(conf(), hostname="elsewhere", addresses=["192.0.2.7"])
    assert (err.line, err.key, err.got) == (6, "nodelist", None)
    assert "No valid name found for local host" in str(err)
    assert "'elsewhere'" in str(err) and "192.0.2.7" in str(err)


def test_error_pickles():
    err = refused(conf("token: abc"))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.key == err.key and again.got == "abc"


# --- accepted as corosync accepts it --------------------------------------------------

def test_zero_means_the_default_for_timers():
    cfg = read(conf("token: 0\njoin: 0\nconsensus: 0\nwindow_size: 0\nnetmtu: 0\n"
                    "token_retransmits_before_loss_const: 0"))
    assert cfg.srp == SrpConfig.derive(2)
    cfg = read(conf("token_warning: 0\nsend_join: 0\nheartbeat_failures_allowed: 0"))
    assert cfg.srp.token_warning == 0


def test_token_coefficient_scaling():
    nodes3 = NODES2 + "\tnode {\n\t\tring0_addr: 127.0.0.3\n\t\tnodeid: 3\n\t}\n"
    assert read(conf("token: 1000", nodes3)).srp.token == 1650
    assert read(conf("token: 1000\ntoken_coefficient: 0", nodes3)).srp.token == 1000
    assert read(conf("token: 1000\ntoken_coefficient: 100", nodes3)).srp.token == 1100
    assert read(conf("token: 1000\ntoken_coefficient: 100")).srp.token == 1000
    # the minimum applies to the scaled token: 10 + 650 is fine with three nodes
    assert read(conf("token: 10", nodes3)).srp.token == 660
    cfg = read(conf("token: 5000\nconsensus: 8000\ntoken_retransmit: 900\nhold: 300", nodes3))
    s = cfg.srp
    assert (s.token, s.consensus, s.token_retransmit, s.hold) == (5650, 8000, 900, 300)


def test_every_timer_key_reaches_srp_config():
    keys = dict(join=60, send_join=5, merge=300, downcheck=2000, fail_recv_const=100,
                seqno_unchanged_const=40, miss_count_const=6, window_size=60, max_messages=20,
                max_network_delay=60, heartbeat_failures_allowed=3, token_warning=50,
                netmtu=9000)
    cfg = read(conf("\n".join(f"{k}: {v}" for k, v in keys.items()) +
                    "\ncancel_token_hold_on_retransmit: yes"))
    for k, v in keys.items():
        assert getattr(cfg.srp, k) == v, k
    assert cfg.srp.cancel_token_hold_on_retransmit is True


def test_consensus_below_one_point_two_token_is_accepted_with_a_warning():
    cfg = read(conf("consensus: 1000"))
    assert cfg.srp.consensus == 1000
    assert cfg.warnings == ["corosync.conf:5: totem.consensus: consensus (1000 ms) is less than "
                            "1.2 x token (3600 ms), the least corosync.conf(5) advises; corosync "
                            "accepts it"]


def test_boolean_totem_keys_take_yes_or_no_and_ignore_the_rest():
    assert read(conf("block_unlisted_ips: no")).block_unlisted_ips is False
    assert read(conf("block_unlisted_ips: maybe")).block_unlisted_ips is True
    assert read(conf("clear_node_high_bit: yes")).clear_node_high_bit is True
    assert read(conf("clear_node_high_bit: on")).clear_node_high_bit is False


def test_mcastport_from_the_interface_section():
    assert read(conf("interface {\nlinknumber: 0\nmcastport: 5407\n}")).mcastport == 5407
    assert read(conf("interface {\nmcastport: 0\n}")).mcastport == 5405
    cfg = read(conf("interface {\nlinknumber: 1\n}"))      # nothing filed for link 1
    assert cfg.mcastport == 5405


WARNINGS = [
    ("nodeid: 5", ["corosync.conf:5: totem.nodeid: nodeid in totem section is deprecated and "
                   "ignored. Nodelist (or autogenerated) nodeid is going to be used.",
                   "corosync.conf: Please migrate config file to nodelist."]),
    ("interface {\nbindnetaddr: 127.0.0.1\n}", [
        "corosync.conf:6: totem.interface.bindnetaddr: interface section bindnetaddr is used "
        "together with nodelist. Nodelist one is going to be used.",
        "corosync.conf: Please migrate config file to nodelist."]),
    ("interface {\nmember {\nmemberaddr: 127.0.0.5\n}\n}", [
        "corosync.conf:7: totem.interface.member: member section is used together with "
        "nodelist. Members ignored.",
        "corosync.conf: Please migrate config file to nodelist."]),
    ("interface {\nmcastaddr: 239.1.1.1\n}", [
        "corosync.conf:6: totem.interface.mcastaddr: only meaningful with the udp (multicast) "
        "transport; ignored"]),
    ("rrp_problem_count_timeout: 5", [
        "corosync.conf:5: totem.rrp_problem_count_timeout: ignored: redundant ring (rrp) "
        "options of corosync 2 do nothing in corosync 3"]),
    ("tokne: 5", ["corosync.conf:5: totem.tokne: unknown key, ignored (corosync keeps it in "
                  "cmap only)"]),
]


@pytest.mark.parametrize("totem,warnings", WARNINGS, ids=[w[0].split(":")[0] for w in WARNINGS])
def test_warnings_are_collected_not_printed(totem, warnings, capsys):
    cfg = read(conf(totem))
    assert cfg.warnings == warnings
    assert capsys.readouterr() == ("", "")


def test_unknown_sections_and_keys_elsewhere():
    extra = ("extra {\n\ta {\n\t\tb: c\n\t}\n}\nquorum {\n\tprovider: corosync_votequorum\n"
             "\tfoo: 1\n}\nlogging {\n\tto_stderr: yes\n\tcolour: on\n\tlogger_subsys {\n"
             "\t\tsubsys: CPG\n\t\ttimestamp: on\n\t}\n}\n")
    cfg = read(conf(nodes=NODES2.replace("nodeid: 1", "nodeid: 1\n\t\tcolor: red"), extra=extra))
    assert cfg.warnings == [
        "corosync.conf:10: nodelist.node.0.color: unknown key, ignored (corosync keeps it in "
        "cmap only)",
        "corosync.conf:17: extra: unknown section, ignored (corosync keeps it in cmap only)",
        "corosync.conf:24: quorum.foo: unknown key, ignored (corosync keeps it in cmap only)",
        "corosync.conf:28: logging.colour: unknown key, ignored (corosync keeps it in cmap only)",
        "corosync.conf:31: logging.logger_subsys.timestamp: only valid at the top level of "
        "logging; ignored",
    ]
    assert cfg.cmap["extra.a.b"] == "c" and cfg.cmap["nodelist.node.0.color"] == "red"


def test_quorum_device_and_resources_are_kept_but_ignored():
    extra = ("quorum {\n\tprovider: corosync_votequorum\n\tdevice {\n\t\tmodel: net\n"
             "\t\tvotes: 1\n\t\tnet {\n\t\t\thost: qnetd\n\t\t}\n\t}\n}\n"
             "resources {\n\twatchdog_timeout: 6\n}\n")
    cfg = read(conf(extra=extra))
    assert cfg.cmap_types["quorum.device.votes"] == "u32"
    assert cfg.cmap["quorum.device.net.host"] == "qnetd"
    assert cfg.cmap_types["resources.watchdog_timeout"] == "u32"
    assert [w.split(": ", 2)[1] for w in cfg.warnings] == ["quorum.device", "resources"]


def test_integers_as_strtoll_reads_them():
    assert parse_integer("+30", "u32") == 30
    assert parse_integer("-0", "u32") == 0
    assert parse_integer("30 ", "u32") is None
    assert parse_integer("1_000", "u32") is None
    assert parse_integer("٣٠", "u32") is None          # only ASCII digits
    assert parse_integer("4294967295", "u32") == 4294967295
    assert parse_integer("4294967296", "u32") is None
    assert parse_integer("256", "u8") is None
    assert parse_integer("-1", "u64") == 2**64 - 1       # strtoull wraps
    assert parse_integer("-5", "i32") == -5


# --- nodelist ---------------------------------------------------------------------------

def test_nodeids_generated_from_ipv4_addresses():
    nodes = "\tnode {\n\t\tring0_addr: 127.0.0.1\n\t}\n\tnode {\n\t\tring0_addr: 200.0.0.2\n" \
            "\t\tname: b\n\t}\n"
    cfg = read(conf(nodes=nodes))
    assert [(n.nodeid, n.nodeid_generated) for n in cfg.nodes] == [
        (0x7F000001, True), (0xC8000002, True)]
    assert cfg.cmap["nodelist.node.1.nodeid"] == str(0xC8000002)
    cfg = read(conf("clear_node_high_bit: yes", nodes))
    assert [n.nodeid for n in cfg.nodes] == [0x7F000001, 0x48000002]
    cfg = read(conf(nodes=nodes.replace("127.0.0.1\n", "127.0.0.1\n\t\tnodeid: 0\n")))
    assert cfg.nodes[0].nodeid == 0x7F000001  # nodeid 0 means none


def test_counted_twice_quirk_only_for_nodes_with_ring0_addr_alone():
    only = "\tnode {\n\t\tring0_addr: 127.0.0.1\n\t}\n\tnode {\n\t\tring0_addr: 127.0.0.2\n\t}\n"
    assert read(conf(nodes=only)).srp.token == 4300          # corosync: 4300 (cmapctl)
    named = only.replace("127.0.0.2\n", "127.0.0.2\n\t\tname: b\n")
    assert read(conf(nodes=named)).srp.token == 3650
    both_named = named.replace("127.0.0.1\n", "127.0.0.1\n\t\tname: a\n")
    cfg = read(conf(nodes=both_named))
    assert cfg.srp.token == 3000 and cfg.warnings == []


def test_host_name_ring0_addr_resolved_by_ip_version():
    table = {"a.example": ["2001:db8::1", "192.0.2.1"], "b.example": ["192.0.2.2"]}
    nodes = ("\tnode {\n\t\tring0_addr: a.example\n\t\tnodeid: 1\n\t}\n"
             "\tnode {\n\t\tring0_addr: b.example\n\t\tnodeid: 2\n\t}\n")
    cfg = read(conf("ip_version: ipv4", nodes), resolver=resolver_of(table),
               addresses=["192.0.2.2"])
    assert [n.addr for n in cfg.nodes] == ["192.0.2.1", "192.0.2.2"]
    assert cfg.local.nodeid == 2 and cfg.local.ring0_addr == "b.example"
    # ipv6-4 (the udpu default) takes a.example's IPv6 address: families differ
    err = refused(conf("", nodes), resolver=resolver_of(table), addresses=["192.0.2.2"])
    assert err.key == "nodelist.node.1.ring0_addr" and "different IP families" in str(err)


def test_resolve_address_and_generate_nodeid():
    r = resolver_of({"h": ["2001:db8::5", "10.1.2.3"]})
    assert resolve_address("h", "ipv6-4", r) == "2001:db8::5"
    assert resolve_address("h", "ipv4-6", r) == "10.1.2.3"
    assert resolve_address("h", "ipv4", r) == "10.1.2.3"
    assert resolve_address("10.0.0.1", "ipv6", r) is None
    assert resolve_address("fe80::1%eth0", "ipv6", r) == "fe80::1%eth0"
    assert resolve_address("unknown", "ipv4", r) is None
    assert generate_nodeid("h", r, False) == 0x0A010203
    assert generate_nodeid("2001:db8::1", r, False) is None
    assert generate_nodeid("255.0.0.1", r, True) == 0x7F000001


def test_ipv6_nodelist_with_nodeids():
    nodes = ("\tnode {\n\t\tring0_addr: fd00::1\n\t\tnodeid: 1\n\t}\n"
             "\tnode {\n\t\tring0_addr: fd00::2\n\t\tnodeid: 2\n\t}\n")
    cfg = read(conf("", nodes), addresses=["127.0.0.1", "fd00::2"])
    assert cfg.local.nodeid == 2 and cfg.local.addr == "fd00::2"


# --- finding the local node -------------------------------------------------------------

NAMED = ("\tnode {\n\t\tring0_addr: 10.0.0.1\n\t\tname: alpha.example.com\n\t\tnodeid: 1\n\t}\n"
         "\tnode {\n\t\tring0_addr: 10.0.0.2\n\t\tname: beta\n\t\tnodeid: 2\n\t}\n"
         "\tnode {\n\t\tring0_addr: gamma.example.com\n\t\tnodeid: 3\n\t}\n")
RESOLVE = resolver_of({"gamma.example.com": ["10.0.0.3"], "beta": ["10.0.0.2"]})


@pytest.mark.parametrize("hostname,addresses,nodeid", [
    ("beta", [], 2),                         # 1. exact name
    ("alpha.example.com", [], 1),            # 1. exact, fully qualified
    ("gamma.example.com", [], 3),            # 1. ring0_addr as a name
    ("beta.example.com", [], 2),             # 2. host name shortened
    ("alpha", [], 1),                        # 3. short host name vs names cut at the dot
    ("alpha.other.org", [], 1),              # 2+3. shortened to alpha, then cut names
    ("x", ["192.0.2.1", "10.0.0.2"], 2),     # 4. an address written as ring0_addr
    ("x", ["10.0.0.3"], 3),                  # 5. a ring0_addr that resolves to an address
])
def test_local_node_is_found_as_corosync_finds_it(hostname, addresses, nodeid):
    cfg = read(conf("ip_version: ipv4", NAMED), hostname=hostname, addresses=addresses,
               resolver=RESOLVE)
    assert cfg.local.nodeid == nodeid
    assert cfg.cmap["nodelist.local_node_pos"] == str(nodeid - 1)
    assert cfg.cmap["totem.interface.0.bindnetaddr"] == cfg.local.ring0_addr


def test_addresses_are_read_only_when_the_name_does_not_match():
    calls = []

    def addrs():
        calls.append(1)
        return ["10.0.0.2"]

    read(conf("ip_version: ipv4", NAMED), hostname="beta", addresses=addrs, resolver=RESOLVE)
    assert calls == []
    assert read(conf("ip_version: ipv4", NAMED), hostname="zz", addresses=addrs,
                resolver=RESOLVE).local.nodeid == 2
    assert calls == [1]


def test_local_node_search_order_follows_cmap_key_order():
    # positions 10 and 2 both match; corosync's keys sort nodelist.node.10 before .2
    cands = [Candidate(p, f"n{p}", f"10.0.0.{p}") for p in range(12)]
    cands[2] = Candidate(2, "same", "10.0.0.2")
    cands[10] = Candidate(10, "same", "10.0.0.10")
    assert find_local_node(cands, "same", [], resolver_of({})) == 10
    # IPv6 interface addresses are not compared as text (step 4) but are by resolution
    cands = [Candidate(0, None, "fd00::1")]
    assert find_local_node(cands, "h", ["fd00::1"], resolver_of({})) == 0


def test_local_node_given_explicitly():
    text = conf("ip_version: ipv4", NAMED)
    assert read(text, local_node=3, hostname="beta", resolver=RESOLVE).local.nodeid == 3
    assert read(text, local_node="3", resolver=RESOLVE).local.nodeid == 3
    assert read(text, local_node="beta", resolver=RESOLVE).local.nodeid == 2
    assert read(text, local_node="gamma.example.com", resolver=RESOLVE).local.nodeid == 3
    err = refused(text, local_node="delta", resolver=RESOLVE)
    assert (err.key, err.got, err.line) == ("nodelist", "delta", 7)


def test_parse_ip_addr_output():
    out = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
           "1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n"
           "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\ x\n"
           "4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \\ x\n"
           "5: wg0    link/none \n")
    assert parse_ip_addr(out) == ["127.0.0.1", "::1", "192.0.2.2", "fe80::fc:ff:fe00:1"]
    assert "127.0.0.1" in local_addresses()


# --- quorum, logging, system, uidgid ---------------------------------------------------

def test_defaults_of_quorum_logging_and_system():
    cfg = read(conf())
    q = cfg.quorum
    assert (q.provider, q.enabled, q.expected_votes, q.two_node, q.wait_for_all) == (
        None, False, None, False, None)
    assert (q.last_man_standing, q.last_man_standing_window, q.auto_tie_breaker,
            q.auto_tie_breaker_node, q.allow_downscale, q.expected_votes_tracking) == (
        False, 10000, False, "lowest", False, False)
    lg = cfg.logging
    assert (lg.to_stderr, lg.to_syslog, lg.to_logfile, lg.logfile, lg.debug, lg.timestamp) == (
        True, True, False, None, False, "hires")
    assert (lg.syslog_facility, lg.syslog_priority, lg.logfile_priority, lg.fileline,
            lg.function_name, lg.blackbox, lg.logger_subsys) == (
        "daemon", "info", "info", False, False, True, ())
    assert cfg.system.state_dir == "/var/lib/corosync" and cfg.state_dir == "/var/lib/corosync"
    assert (cfg.system.sched_rr, cfg.system.qb_ipc_type, cfg.system.move_to_root_cgroup) == (
        True, "native", "auto")
    assert cfg.uidgid == [] and cfg.cluster_name == "t" and cfg.ip_version == "ipv6-4"


def test_quorum_settings():
    extra = ("quorum {\n\tprovider: corosync_votequorum\n\texpected_votes: 3\n\ttwo_node: 1\n"
             "\tlast_man_standing: 1\n\tlast_man_standing_window: 20000\n"
             "\tauto_tie_breaker: 1\n\tauto_tie_breaker_node: 3 1 x 5\n\tallow_downscale: 1\n"
             "\texpected_votes_tracking: 1\n}\n")
    q = read(conf(extra=extra)).quorum
    assert (q.expected_votes, q.two_node, q.wait_for_all, q.wait_for_all_effective) == (
        3, True, None, True)
    assert (q.last_man_standing, q.last_man_standing_window) == (True, 20000)
    assert (q.auto_tie_breaker, q.auto_tie_breaker_node) == (True, (3, 1))
    assert q.allow_downscale and q.expected_votes_tracking
    q = read(conf(extra="quorum {\n\ttwo_node: 1\n\twait_for_all: 0\n}\n")).quorum
    assert q.wait_for_all is False and q.wait_for_all_effective is False
    q = read(conf(extra="quorum {\n\tauto_tie_breaker: 1\n\tauto_tie_breaker_node: highest\n}\n")).quorum
    assert q.auto_tie_breaker_node == "highest"


def test_logging_settings_and_subsystems():
    extra = ("logging {\n\tto_stderr: off\n\tto_syslog: no\n\tto_logfile: yes\n"
             "\tlogfile: /tmp/x.log\n\tdebug: trace\n\ttimestamp: off\n\tfileline: on\n"
             "\tfunction_name: on\n\tblackbox: off\n\tsyslog_facility: local3\n"
             "\tsyslog_priority: WARNING\n\tlogfile_priority: err\n"
             "\tlogger_subsys {\n\t\tsubsys: QUORUM\n\t\tdebug: on\n\t\tto_syslog: yes\n\t}\n"
             "\tlogger_subsys {\n\t\tsubsys: CPG\n\t\tlogfile: /tmp/cpg.log\n\t}\n}\n")
    lg = read(conf(extra=extra)).logging
    assert (lg.to_stderr, lg.to_syslog, lg.to_logfile, lg.logfile) == (False, False, True,
                                                                        "/tmp/x.log")
    assert (lg.debug_mode, lg.debug, lg.timestamp, lg.fileline, lg.function_name,
            lg.blackbox) == ("trace", True, "off", True, True, False)
    assert (lg.syslog_facility, lg.syslog_priority, lg.logfile_priority) == (
        "local3", "warning", "err")
    q, c = lg.logger_subsys
    assert (q.subsys, q.debug_mode, q.to_syslog, q.to_stderr) == ("QUORUM", "on", True, None)
    assert (c.subsys, c.logfile, c.debug) == ("CPG", "/tmp/cpg.log", None)


def test_obsolete_logging_keys_warn_and_still_count():
    extra = "logging {\n\tto_file: yes\n\tsyslog_level: debug\n}\n"
    cfg = read(conf(extra=extra))
    assert cfg.logging.to_logfile and cfg.logging.syslog_priority == "debug"
    assert [w.split(": ", 2)[1] for w in cfg.warnings] == ["logging.to_file", "logging.syslog_level"]


def test_logging_daemon_named_corosync_is_the_main_logging():
    extra = ("logging {\n\tlogging_daemon {\n\t\tname: corosync\n\t\tsubsys: CPG\n"
             "\t\tdebug: on\n\t}\n\tlogging_daemon {\n\t\tname: other\n\t\tdebug: on\n\t}\n}\n")
    cfg = read(conf(extra=extra))
    assert cfg.logging.logger_subsys[0].debug_mode == "on"
    assert cfg.cmap["logging.logging_daemon.other.debug"] == "on"


def test_system_settings():
    extra = "system {\n\tstate_dir: /srv/st\n\tsched_rr: no\n\tpriority: -10\n\tqb_ipc_type: socket\n}\n"
    s = read(conf(extra=extra)).system
    assert (s.state_dir, s.sched_rr, s.priority, s.qb_ipc_type) == ("/srv/st", False, "-10",
                                                                    "socket")


def test_uidgid_sections_and_uidgid_d(tmp_path):
    extra = "uidgid {\n\tuid: root\n\tgid: 0\n}\nuidgid {\n\tuid: 1234\n}\n"
    cfg = read(conf(extra=extra))
    assert [(u.kind, u.id, u.written, u.line) for u in cfg.uidgid] == [
        ("uid", 0, "root", 17), ("gid", 0, "0", 18), ("uid", 1234, "1234", 21)]
    assert cfg.allowed_uids == {0, 1234} and cfg.cmap_types["uidgid.config.uid.1234"] == "u8"
    (tmp_path / "uidgid.d").mkdir()
    (tmp_path / "uidgid.d" / "app").write_text("uidgid {\n\tuid: 4321\n\tgid: 99\n}\n")
    (tmp_path / "corosync.conf").write_text(conf())
    cfg = load(tmp_path / "corosync.conf", hostname="h", addresses=["127.0.0.1"])
    assert cfg.allowed_uids == {4321} and cfg.allowed_gids == {99}
    (tmp_path / "uidgid.d" / "bad").write_text("uidgid {\n\tuser: 1\n}\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "corosync.conf", hostname="h", addresses=["127.0.0.1"])
    assert info.value.file.endswith("uidgid.d/bad") and info.value.line == 2


def test_load_names_the_file_in_errors(tmp_path):
    path = tmp_path / "corosync.conf"
    path.write_text(conf("token: abc"))
    with pytest.raises(ConfigError) as info:
        load(path, hostname="h", addresses=["127.0.0.1"])
    assert str(info.value).startswith(f"{path}:5: totem.token: expected an integer >= 30")
    with pytest.raises(OSError):
        load(tmp_path / "missing.conf")


def test_non_utf8_bytes_do_not_break_reading(tmp_path):
    path = tmp_path / "corosync.conf"
    path.write_bytes(conf("cluster_name: caf\xe9").encode("latin-1"))
    cfg = load(path, hostname="h", addresses=["127.0.0.1"])
    assert cfg.cluster_name.startswith("caf")


def test_message_format_example_from_the_design():
    err = refused("\n" * 10 + "totem {\n\ttoken: abc\n}\n")
    assert re.fullmatch(r"corosync\.conf:12: totem\.token: expected an integer >= 30, got 'abc'"
                        r" \(corosync: .*\)", str(err))
