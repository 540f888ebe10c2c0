"""The text ``totemctl quorum`` and ``totemctl cmap`` print (corosync-quorumtool's and
corosync-cmapctl's formats); the interop tests compare them with the real tools."""

from __future__ import annotations

import pytest

from quorum.client import NodeVotes, QuorumStatus
from totem.cli.cmaptool import format_key
from totem.cli.quorumtool import format_nodes, format_status
from totem.cmapdb import Value
from totem.wire import RingId

DATE = "Thu Dec  3 23:25:13 2026"


def _status(**kw) -> QuorumStatus:
    base = dict(provider="corosync_votequorum", quorate=True, local_nodeid=2, ring_id=RingId(1, 0x1c),
                nodes=(NodeVotes(1, "node1", False, 1, 3, "MEMBER", ("Quorate",)),
                       NodeVotes(2, "node2", True, 1, 3, "MEMBER", ("Quorate",))),
                expected_votes=3, highest_expected=3, total_votes=2, quorum=2, flags=("Quorate",))
    base.update(kw)
    return QuorumStatus(**base)


def test_a_quorate_votequorum_status_reads_like_quorumtool_s():
    assert format_status(_status(), DATE) == (
        "Quorum information\n------------------\n"
        f"Date:             {DATE}\n"
        "Quorum provider:  corosync_votequorum\n"
        "Nodes:            2\n"
        "Node ID:          2\n"
        "Ring ID:          1.1c\n"
        "Quorate:          Yes\n"
        "\nVotequorum information\n----------------------\n"
        "Expected votes:   3\n"
        "Highest expected: 3\n"
        "Total votes:      2\n"
        "Quorum:           2  \n"
        "Flags:            Quorate \n"
        "\nMembership information\n----------------------\n"
        "    Nodeid      Votes Name\n"
        "         1          1 node1\n"
        "         2          1 node2 (local)\n")


def test_blocked_activity_hex_ids_and_only_the_flags_quorumtool_names():
    text = format_status(_status(quorate=False, flags=("2Node", "WaitForAll", "QdeviceAlive"), quorum=2),
                         DATE, hex_ids=True)
    assert "Quorate:          No\n" in text
    assert "Quorum:           2 Activity blocked\n" in text
    assert "Flags:            2Node WaitForAll \n" in text
    assert "Node ID:          0x00000002\n" in text
    assert "0x00000001          1 node1\n" in text


def test_without_a_provider_only_the_quorum_part_and_the_ring_seq():
    st = _status(provider=None, nodes=(NodeVotes(2, "node2", True),), expected_votes=None)
    text = format_status(st, DATE)
    assert text.endswith("Ring ID:          1c\nQuorate:          Yes\n")
    assert "Votequorum" not in text
    assert format_nodes(st) == ("\nMembership information\n----------------------\n"
                                "    Nodeid Name\n         2 node2 (local)\n")


def test_a_registered_qdevice_adds_its_column_and_row():
    nodes = (NodeVotes(1, "node1", True, 1, 3, "MEMBER", ("Quorate", "Qdevice", "QdeviceAlive",
                                                          "QdeviceCastVote")),
             NodeVotes(2, "node2", False, 1, 3, "MEMBER", ("Quorate",)))
    text = format_nodes(_status(nodes=nodes, qdevice="Qdevice", qdevice_votes=1))
    assert text.splitlines()[3:] == [
        "    Nodeid      Votes    Qdevice Name",
        "         1          1    A,V,NMW node1 (local)",
        "         2          1         NR node2",
        "         0          1            Qdevice",
    ]


@pytest.mark.parametrize("vtype, text, line", [
    ("u32", "42", "k (u32) = 42"),
    ("i8", "-5", "k (i8) = -5"),
    ("u64", "18446744073709551615", "k (u64) = 18446744073709551615"),
    ("dbl", "1.5", "k (dbl) = 1.500000"),
    ("flt", "0.25", "k (flt) = 0.250000"),
    ("str", "hello world", "k (str) = hello world"),
    ("bin", "00415c", "k (bin)"),
])
def test_cmap_keys_print_as_cmapctl_prints_them(vtype, text, line):
    assert format_key("k", Value.parse(vtype, text)) == line


def test_binary_values_print_escaped_with_b():
    assert format_key("k", Value.parse("bin", "00415cff"), binary=True) == "k (bin) = \\x00A\\\\\\xFF"
    assert format_key("k", Value.parse("bin", ""), binary=True) == "k (bin) = *empty*"
