"""totem.config accepts and refuses the configurations real corosync 3.1.7 does.

Each case is one corosync.conf; `corosync -t` checks it (on this host, whose nodelist
entry is the node on 127.0.0.1) and so does totem.config.parse_text with this host's
real name and addresses. Where totemd deliberately differs (it speaks udpu only and is
stricter about a few things corosync lets through; it accepts crypto on udpu, which
corosync 3 refuses), the case says so, and the test checks that the difference is still
exactly that one.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from totem.config import ConfigError, parse_text

NODES = "\tnode {\n\t\tring0_addr: 127.0.0.1\n\t\tnodeid: 1\n\t}\n" \
        "\tnode {\n\t\tring0_addr: 127.0.0.2\n\t\tnodeid: 2\n\t}\n"


@dataclass
class Case:
    id: str
    totem: str = ""
    nodes: str = NODES
    extra: str = ""
    corosync: bool = True
    """Does corosync -t accept it?"""
    ours: bool | None = None
    """Does totemd accept it? None: as corosync."""
    why: str = ""
    """Why totemd differs, when it does."""
    raw: str | None = None
    """The whole text instead of the template (STATE is replaced by the state dir).
    Later lines win over earlier ones, so the template's totem keys can be overridden."""


def accepted(id, totem="", nodes=NODES, extra=""):
    return Case(id, totem, nodes, extra, True)


def refused(id, totem="", nodes=NODES, extra=""):
    return Case(id, totem, nodes, extra, False)


def stricter(id, why, totem="", nodes=NODES, extra=""):
    return Case(id, totem, nodes, extra, True, False, why)


def laxer(id, why, totem="", nodes=NODES, extra=""):
    return Case(id, totem, nodes, extra, False, True, why)


NAMED = "\tnode {\n\t\tring0_addr: 127.0.0.1\n\t\tnodeid: 1\n\t\tname: a\n\t}\n" \
        "\tnode {\n\t\tring0_addr: 127.0.0.2\n\t\tnodeid: 2\n\t\tname: b\n\t}\n"
KEY = "keyfile: KEYFILE"

CASES = [
    # grammar
    accepted("baseline"),
    accepted("no-blank-after-colon", "token:3000"),
    accepted("indented-comment", "   # a comment\n\t# another"),
    accepted("hash-inside-a-string-value", 'cluster_name: "a b" # x'),
    accepted("colon-after-section-name", extra="logging:{\n\tto_syslog: no\n}\n"),
    accepted("empty-value", "cluster_name:"),
    accepted("repeated-key-last-wins", "token: 10\ntoken: 3000"),
    accepted("repeated-sections-merge", extra="totem {\n\tjoin: 60\n}\n"),
    refused("trailing-comment-is-part-of-the-value", "token: 3000 # ms"),
    refused("quotes-are-part-of-the-value", 'token: "3000"'),
    refused("missing-closing-brace", extra="zz {\n"),
    refused("unexpected-closing-brace", extra="}\n"),
    refused("text-after-opening-brace", extra="foo { bar: 1 }\n"),
    refused("text-after-closing-brace", extra="q {\n} # x\n"),
    refused("section-without-name", extra="{\n}\n"),
    refused("line-without-colon-or-brace", extra="include other.conf\n"),
    refused("blank-in-key-name", "my key: 1"),
    refused("line-too-long", "cluster_name: " + "x" * 600),
    accepted("line-of-510-bytes", "cluster_name: " + "x" * 495),
    # integers and minimums
    accepted("plus-sign", "token: +3000"),
    accepted("zero-means-default", "token: 0\njoin: 0\nconsensus: 0"),
    refused("not-an-integer", "token: abc"),
    refused("negative", "token: -5"),
    refused("hex", "token: 0x10"),
    refused("token-below-30", "token: 10"),
    refused("join-below-30", "join: 5"),
    refused("merge-below-30", "merge: 5"),
    refused("downcheck-below-30", "downcheck: 5"),
    refused("token-retransmit-below-30", "token_retransmit: 5"),
    refused("max-network-delay-below-30", "max_network_delay: 10"),
    refused("hold-below-14", "hold: 10"),
    refused("consensus-below-join", "consensus: 40"),
    accepted("consensus-below-1.2-token", "consensus: 1000"),
    refused("token-warning-above-100", "token_warning: 101"),
    refused("derived-retransmit-below-30", "token_retransmits_before_loss_const: 1000"),
    stricter("tiny-netmtu", "netmtu below 576 leaves no room for a frame", "netmtu: 10"),
    # totem
    refused("version-3", "version: 3"),
    refused("invalid-transport", "transport: tcp"),
    stricter("knet-transport", "totemd speaks udpu only", "transport: knet"),
    stricter("udp-transport", "totemd speaks udpu only", "transport: udp"),
    refused("ip-version-bogus", "ip_version: ipv5"),
    refused("ipv6-only-with-ipv4-nodes", "ip_version: ipv6"),
    accepted("clear-node-high-bit-other-value", "clear_node_high_bit: maybe"),
    accepted("unknown-totem-key", "tokne: 3000"),
    accepted("deprecated-totem-nodeid", "nodeid: 5"),
    accepted("rrp-option", "rrp_problem_count_timeout: 5"),
    stricter("unknown-subsection", "a typo in a known section's subsection is refused",
             "foo {\n}"),
    # crypto (a key file exists, so corosync gets as far as the transport check);
    # corosync 3 allows crypto only with knet, totemd offers corosync 2.x's envelope on udpu
    laxer("cipher-and-hash", "crypto on udpu", f"crypto_cipher: aes256\ncrypto_hash: sha256\n{KEY}"),
    laxer("hash-only", "crypto on udpu", f"crypto_hash: sha1\n{KEY}"),
    laxer("secauth-on", "crypto on udpu", f"secauth: on\n{KEY}"),
    refused("cipher-without-hash", f"crypto_cipher: aes256\n{KEY}"),
    refused("bogus-cipher", "crypto_cipher: bogus"),
    accepted("crypto-none", "crypto_cipher: none\ncrypto_hash: none\nsecauth: off"),
    accepted("secauth-other-value", "secauth: bogus"),
    # knet-only options
    stricter("knet-mtu", "knet options are refused", "knet_mtu: 1400"),
    stricter("link-mode", "knet options are refused", "link_mode: passive"),
    stricter("knet-ping-interval", "knet options are refused",
             "interface {\n\tknet_ping_interval: 100\n}"),
    refused("link-mode-bogus", "link_mode: bogus"),
    refused("knet-link-priority", "interface {\n\tknet_link_priority: 3\n}"),
    # interface
    refused("ttl-on-udpu", "interface {\n\tttl: 3\n}"),
    accepted("ttl-1", "interface {\n\tttl: 1\n}"),
    accepted("mcastport", "interface {\n\tmcastport: 5407\n}"),
    accepted("mcastport-0-is-default", "interface {\n\tmcastport: 0\n}"),
    refused("mcastport-too-big", "interface {\n\tmcastport: 70000\n}"),
    accepted("empty-link-1", "interface {\n\tlinknumber: 1\n}"),
    refused("link-1", "interface {\n\tlinknumber: 1\n\tmcastport: 5407\n}"),
    refused("link-8", "interface {\n\tlinknumber: 8\n\tmcastport: 5407\n}"),
    accepted("bindnetaddr-with-nodelist", "interface {\n\tbindnetaddr: 127.0.0.1\n}"),
    # nodelist
    accepted("generated-nodeids", nodes="\tnode {\n\t\tring0_addr: 127.0.0.1\n\t}\n"
             "\tnode {\n\t\tring0_addr: 127.0.0.2\n\t}\n"),
    accepted("nodeid-0-is-generated", nodes=NODES.replace("nodeid: 1", "nodeid: 0")),
    refused("duplicate-nodeid", nodes=NODES.replace("nodeid: 2", "nodeid: 1")),
    refused("generated-nodeid-clashes", nodes=NODES.replace("nodeid: 1", "nodeid: 2130706434")
            .replace("\t\tnodeid: 2\n", "")),
    stricter("duplicate-address", "two nodes on one address cannot both be reached",
             nodes=NODES.replace("127.0.0.2", "127.0.0.1")),
    stricter("duplicate-name", "names find the local node and name nodes to clients",
             nodes=NAMED.replace("name: b", "name: a")),
    stricter("node-without-ring0-addr", "corosync silently leaves such a node out",
             nodes=NODES + "\tnode {\n\t\tname: c\n\t\tnodeid: 3\n\t}\n"),
    refused("ring1-addr", nodes=NAMED.replace("name: a", "name: a\n\t\tring1_addr: 127.0.0.5")
            .replace("name: b", "name: b\n\t\tring1_addr: 127.0.0.6")),
    refused("no-local-node", nodes=NODES.replace("127.0.0.1", "127.0.0.9")),
    refused("ipv6-without-nodeid", nodes="\tnode {\n\t\tring0_addr: ::1\n\t}\n"
            "\tnode {\n\t\tring0_addr: ::2\n\t}\n"),
    refused("mixed-families", nodes=NODES.replace("127.0.0.2", "::2")),
    refused("unresolvable-ring0-addr", nodes=NODES + "\tnode {\n\t\tring0_addr: nohost.invalid\n"
            "\t\tnodeid: 3\n\t}\n"),
    refused("nodeid-not-a-number", nodes=NODES.replace("nodeid: 2", "nodeid: x")),
    accepted("local-node-by-name-of-a-hostname-ring0-addr",
             nodes=NODES.replace("ring0_addr: 127.0.0.1", "ring0_addr: localhost")),
    Case("transport-absent-means-knet", corosync=True, ours=False, why="totemd speaks udpu only",
         raw="totem {\n\tversion: 2\n}\nnodelist {\n" + NODES + "}\nsystem {\n"
             "\tstate_dir: STATE\n}\nlogging {\n\tto_stderr: yes\n\tto_syslog: no\n}\n"),
    Case("no-nodelist", corosync=False,
         raw="totem {\n\tversion: 2\n\ttransport: udpu\n}\nsystem {\n\tstate_dir: STATE\n}\n"
             "logging {\n\tto_stderr: yes\n\tto_syslog: no\n}\n"),
    # logging
    accepted("logging-values", extra="logging {\n\tto_stderr: on\n\tfileline: on\n"
             "\tfunction_name: on\n\tblackbox: off\n\tdebug: trace\n\tsyslog_facility: kern\n"
             "\tlogfile_priority: ERROR\n}\n"),
    accepted("to-logfile-without-logfile", extra="logging {\n\tto_logfile: yes\n}\n"),
    refused("debug-yes", extra="logging {\n\tdebug: yes\n}\n"),
    refused("timestamp-yes", extra="logging {\n\ttimestamp: yes\n}\n"),
    refused("to-stderr-maybe", extra="logging {\n\tto_stderr: maybe\n}\n"),
    refused("facility-case", extra="logging {\n\tsyslog_facility: LOCAL1\n}\n"),
    refused("facility-unknown", extra="logging {\n\tsyslog_facility: local9\n}\n"),
    refused("priority-unknown", extra="logging {\n\tsyslog_priority: loud\n}\n"),
    refused("logger-subsys-without-subsys", extra="logging {\n\tlogger_subsys {\n"
            "\t\tdebug: on\n\t}\n}\n"),
    accepted("logger-subsys-first-value-wins", extra="logging {\n\tlogger_subsys {\n"
             "\t\tsubsys: QUORUM\n\t\tdebug: on\n\t\tdebug: bogus\n\t}\n}\n"),
    refused("logger-subsys-first-value-wins-bad", extra="logging {\n\tlogger_subsys {\n"
            "\t\tsubsys: QUORUM\n\t\tdebug: bogus\n\t\tdebug: on\n\t}\n}\n"),
    accepted("top-level-repeated-key-last-wins", extra="logging {\n\tdebug: bogus\n"
             "\tdebug: on\n}\n"),
    # quorum, system, uidgid, unknown sections
    accepted("quorum-settings", extra="quorum {\n\tprovider: corosync_votequorum\n"
             "\ttwo_node: 1\n\twait_for_all: 0\n\tlast_man_standing_window: 20000\n}\n"),
    refused("quorum-flag-not-a-number", extra="quorum {\n\ttwo_node: yes\n}\n"),
    refused("sched-rr-maybe", extra="system {\n\tsched_rr: maybe\n}\n"),
    refused("ipc-type-bogus", extra="system {\n\tqb_ipc_type: bogus\n}\n"),
    accepted("uidgid", extra="uidgid {\n\tuid: root\n\tgid: 0\n}\n"),
    refused("uidgid-unknown-user", extra="uidgid {\n\tuid: no-such-user-here\n}\n"),
    refused("uidgid-other-key", extra="uidgid {\n\tuser: root\n}\n"),
    accepted("unknown-top-level-section", extra="extra {\n\ta {\n\t\tb: c\n\t}\n}\n"),
    accepted("nozzle", extra="nozzle {\n\tname: noz\n\tipaddr: 192.168.77.0\n"
             "\tipprefix: 24\n}\n"),
]


def render(case: Case, state_dir, keyfile) -> str:
    if case.raw is not None:
        return case.raw.replace("STATE", str(state_dir))
    totem = "".join(f"\t{line}\n" for line in case.totem.splitlines())
    text = (f"totem {{\n\tversion: 2\n\tcluster_name: interop\n\ttransport: udpu\n{totem}}}\n"
            f"nodelist {{\n{case.nodes}}}\n"
            f"system {{\n\tstate_dir: {state_dir}\n}}\n"
            f"logging {{\n\tto_stderr: yes\n\tto_syslog: no\n}}\n{case.extra}")
    return text.replace("KEYFILE", str(keyfile))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_accepts_and_refuses_as_corosync(corosync_available, tmp_path, case):
    state = tmp_path / "state"
    state.mkdir()
    key = tmp_path / "authkey"
    key.write_bytes(bytes(range(128)))
    text = render(case, state, key)
    conf = tmp_path / "corosync.conf"
    conf.write_text(text)
    res = subprocess.run([corosync_available, "-t", "-c", str(conf)], capture_output=True,
                         text=True, timeout=30)
    assert (res.returncode == 0) == case.corosync, (
        f"corosync -t {'refused' if res.returncode else 'accepted'} it:\n{text}\n"
        f"{res.stdout}{res.stderr}")
    try:
        parse_text(text, str(conf))
        ours, why = True, ""
    except ConfigError as exc:
        ours, why = False, str(exc)
    expected = case.corosync if case.ours is None else case.ours
    assert ours == expected, f"totemd {'accepted' if ours else 'refused'} it: {why}\n{text}"
