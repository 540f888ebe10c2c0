"""Quorum and the operator tools in mixed rings of real corosync 3.1.7 and totemd.

Every step is judged by corosync's own ``corosync-quorumtool -s`` run on every live
node: the quorum state it prints (quorate, expected votes, highest expected, total
votes, quorum, flags, the members and their votes, the ring id) must be the same on
totemd nodes and corosync nodes, and must be what votequorum(5) says it is. The other
tools (``corosync-cmapctl``, ``corosync-cfgtool``) must answer on a totemd node as they
answer on a corosync node of the same cluster.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Iterable

from interop.cluster import Cluster

TOKEN = 1000
LMS_WINDOW = 1000


# -- corosync-quorumtool ---------------------------------------------------------------

_FIELD = re.compile(r"^([A-Z][A-Za-z ]+):[ \t]*(.*?)[ \t]*$", re.M)
_MEMBER = re.compile(r"^[ \t]+(\d+)[ \t]+(\d+)[ \t]+(\S+)", re.M)


def quorum_state(c: Cluster, n: int) -> dict:
    """What ``corosync-quorumtool -s`` on node ``n`` says, without what is local to the
    node asking (date, its node id, the "(local)" mark)."""
    r = c.run(n, ["corosync-quorumtool", "-s"], timeout=15)
    fields = dict(_FIELD.findall(r.stdout))
    membership = r.stdout.split("Membership information", 1)[-1]
    return {
        "rc": r.returncode,
        "nodes": fields.get("Nodes"),
        "ring": fields.get("Ring ID"),
        "quorate": fields.get("Quorate"),
        "expected": fields.get("Expected votes"),
        "highest": fields.get("Highest expected"),
        "total": fields.get("Total votes"),
        "quorum": fields.get("Quorum"),
        "flags": fields.get("Flags"),
        "members": tuple(_MEMBER.findall(membership)),
        "error": r.stderr.strip() or None,
    }


def wait_quorum(c: Cluster, nodes: Iterable[int], timeout: float = 30.0, **want: str) -> dict:
    """Wait until every node in ``nodes`` prints the same quorum state and it has the
    ``want`` fields (``quorate="Yes"``, ``expected="5"``, ...); return it."""
    nodes = list(nodes)
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for n in nodes:
            try:
                states[n] = quorum_state(c, n)
            except subprocess.TimeoutExpired as exc:
                states[n] = {"error": f"timeout: {exc}"}
        first = states[nodes[0]]
        agree = all(s == first for s in states.values())
        if agree and all(first.get(k) == v for k, v in want.items()):
            return first
        if time.monotonic() > deadline:
            kinds = {n: c.node(n).kind for n in nodes}
            raise AssertionError(f"nodes {kinds} did not agree on {want} within {timeout}s:\n"
                                 + "\n".join(f"  node{n}: {s}" for n, s in states.items()))
        time.sleep(0.3)


def member_rows(nodes: Iterable[int], votes: int = 1) -> tuple:
    return tuple((str(n), str(votes), f"node{n}") for n in sorted(nodes))


# -- quorum across membership changes ----------------------------------------------------

FIVE = ("totemd", "corosync", "totemd", "corosync", "totemd")


def test_five_nodes_lose_nodes_one_by_one(totemd_ok, tmp_path):
    """Without last_man_standing expected votes stay 5: quorum (3) is lost with the
    third node gone, on corosync and totemd nodes alike."""
    with Cluster(tmp_path, kinds=FIVE, token=TOKEN) as c:
        live = [1, 2, 3, 4, 5]
        st = wait_quorum(c, live, quorate="Yes", expected="5", highest="5", total="5",
                         quorum="3", flags="Quorate", members=member_rows(live))
        assert st["rc"] == 0 and st["nodes"] == "5" and st["ring"].startswith("1.")
        for gone, quorate in ((5, "Yes"), (4, "Yes"), (3, "No")):
            c.stop(gone)
            live.remove(gone)
            st = wait_quorum(c, live, quorate=quorate, expected="5", total=str(len(live)),
                             members=member_rows(live))
            assert st["nodes"] == str(len(live))
        # two of five: quorum 3 blocks activity, and the tool says so in its exit status
        assert st["quorum"] == "3 Activity blocked", st
        assert st["flags"] == "" and st["rc"] != 0, st
        # a node coming back restores quorum everywhere
        c.start(4)
        live.append(4)
        wait_quorum(c, live, quorate="Yes", total="3", expected="5", members=member_rows(live))


def test_five_nodes_with_last_man_standing_go_down_to_two(totemd_ok, tmp_path):
    """last_man_standing: after each loss and the window, expected votes follow the
    nodes left, so 5 -> 4 -> 3 -> 2 stay quorate; the last but one going leaves the last
    node (without auto_tie_breaker) not quorate."""
    options = {"last_man_standing": 1, "last_man_standing_window": LMS_WINDOW}
    with Cluster(tmp_path, kinds=FIVE, token=TOKEN, quorum_options=options) as c:
        live = [1, 2, 3, 4, 5]
        wait_quorum(c, live, quorate="Yes", expected="5", total="5",
                    flags="Quorate LastManStanding")
        for gone in (5, 4, 3):
            c.stop(gone)
            live.remove(gone)
            n = str(len(live))
            st = wait_quorum(c, live, quorate="Yes", expected=n, highest=n, total=n,
                             flags="Quorate LastManStanding", members=member_rows(live))
        assert st["quorum"] == "2", st
        c.stop(2)
        st = wait_quorum(c, [1], quorate="No", expected="2", total="1")
        assert st["quorum"] == "2 Activity blocked", st


def test_two_node_cluster_survives_either_node_and_waits_for_all_after_restart(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("corosync", "totemd"), token=TOKEN,
                 quorum_options={"two_node": 1}) as c:
        both = [1, 2]
        wait_quorum(c, both, quorate="Yes", expected="2", total="2", quorum="1",
                    flags="2Node Quorate WaitForAll", members=member_rows(both))
        for gone, alive in ((2, 1), (1, 2)):
            c.stop(gone)
            wait_quorum(c, [alive], quorate="Yes", expected="2", total="1", quorum="1")
            c.start(gone)
            wait_quorum(c, both, quorate="Yes", total="2", members=member_rows(both))
        # a full restart: each node alone waits for the other (wait_for_all)
        for alone in (1, 2):
            c.stop(1)
            c.stop(2)
            c.start(alone)
            st = wait_quorum(c, [alone], quorate="No", expected="2", total="1")
            assert "WaitForAll" in st["flags"], st
            c.start(3 - alone)
            wait_quorum(c, both, quorate="Yes", total="2", flags="2Node Quorate WaitForAll")


def test_wait_for_all_after_a_full_restart(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync", "totemd"), token=TOKEN,
                 quorum_options={"wait_for_all": 1}) as c:
        wait_quorum(c, [1, 2, 3], quorate="Yes", expected="3", total="3",
                    flags="Quorate WaitForAll")
        for n in (1, 2, 3):
            c.stop(n)
        c.start(1)
        c.start(2)
        # 2 of 3 votes would be quorate, but not before all nodes were seen together
        st = wait_quorum(c, [1, 2], quorate="No", expected="3", total="2",
                         members=member_rows([1, 2]))
        assert st["flags"] == "WaitForAll", st
        c.start(3)
        wait_quorum(c, [1, 2, 3], quorate="Yes", total="3", flags="Quorate WaitForAll")
        # once all were seen, losing one keeps quorum
        c.stop(3)
        wait_quorum(c, [1, 2], quorate="Yes", total="2", flags="Quorate WaitForAll")


def test_expected_votes_set_on_either_kind_reaches_every_node(totemd_ok, tmp_path):
    """``corosync-quorumtool -e`` on a totemd node and on a corosync node."""
    with Cluster(tmp_path, kinds=("totemd", "corosync", "totemd"), token=TOKEN) as c:
        wait_quorum(c, [1, 2, 3], quorate="Yes", expected="3")
        for asker, value, quorum in ((1, 5, "3"), (2, 4, "3"), (3, 3, "2")):
            r = c.run(asker, ["corosync-quorumtool", "-e", str(value)], timeout=15)
            assert r.returncode == 0, (asker, r.stdout, r.stderr)
            wait_quorum(c, [1, 2, 3], quorate="Yes", expected=str(value), highest=str(value),
                        total="3", quorum=quorum)


# -- cmap and cfg: the same answers from both kinds ---------------------------------------

def _normalised(text: str, n: int) -> str:
    """Tool output with what names the asking node (``n``) made neutral."""
    text = text.replace(f"Local node ID {n},", "Local node ID <me>,")
    text = re.sub(rf"(nodeid:\s+{n}:\s+)localhost", r"\1connected", text)
    return text.replace(" (local)", "")


def test_cfgtool_and_quorumtool_listing_answer_alike(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync", "totemd"), token=TOKEN) as c:
        wait_quorum(c, [1, 2, 3], quorate="Yes", total="3")
        for argv in (["corosync-quorumtool", "-l"], ["corosync-cfgtool", "-s"],
                     ["corosync-cfgtool", "-a", "1"], ["corosync-cfgtool", "-a", "3"],
                     ["corosync-cfgtool", "-a", "9"]):
            answers = {}
            for n in (1, 2):
                r = c.run(n, argv, timeout=15)
                if argv[-1] == "-s":
                    assert re.search(rf"nodeid:\s+{n}:\s+localhost", r.stdout), r.stdout
                answers[c.node(n).kind] = (r.returncode, _normalised(r.stdout, n), r.stderr)
            assert answers["totemd"] == answers["corosync"], (argv, answers)


def _cmap_session(c: Cluster, n: int) -> list:
    """One operator session with corosync-cmapctl on node ``n``: set, get, load a file
    (-p), delete, track a prefix (-T) and iterate a prefix. Returns what each step printed."""
    node = c.node(n)
    loadfile = node.dir / "cmap-load.txt"
    loadfile.write_text("test.p.a u8 7\ntest.p.b str a b c\ntest.p.c u64 18446744073709551615\n"
                        "^test.p.a\ntest.p.d dbl 1.5\n")
    out = []

    def step(*argv: str) -> None:
        r = c.run(n, ["corosync-cmapctl", *argv], timeout=15)
        out.append((argv, r.returncode, r.stdout, r.stderr))

    tracker = c.popen(n, ["corosync-cmapctl", "-T", "test.t"], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # the tracker connects and registers
        step("-s", "test.t.u32", "u32", "42")
        step("-g", "test.t.u32")
        step("-s", "test.t.u32", "u32", "43")
        step("-s", "test.t.s", "str", "hello world")
        step("-s", "test.t.i8", "i8", "-5")
        step("-d", "test.t.s")
        step("-g", "test.t.s")
        step("-g", "test.nothing")
        step("-s", "test.t.bad", "u8", "300")
        step("-p", loadfile.name)  # relative: the tools run in the node's directory
        step("test.")
        step("-D", "test.t")
        step("test.")
        time.sleep(1.0)
        tracked, _ = tracker.communicate("q\n", timeout=10)
    finally:
        if tracker.poll() is None:
            tracker.kill()
    out.append(("-T", tracker.returncode, tracked, ""))
    return out


def test_cmapctl_session_answers_alike(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync"), token=TOKEN) as c:
        wait_quorum(c, [1, 2], quorate="Yes", total="2")
        ours, theirs = _cmap_session(c, 1), _cmap_session(c, 2)
        for a, b in zip(ours, theirs):
            assert a == b, f"totemd: {a}\ncorosync: {b}"
        assert len(ours) == len(theirs)
        assert "test.t.u32 (u32) = 43" in ours[-1][2], ours[-1]


def _keys(c: Cluster, n: int, *argv: str) -> set[str]:
    r = c.run(n, ["corosync-cmapctl", *argv], timeout=15, check=True)
    return set(re.findall(r"^(\S+) \(\w+\) = ", r.stdout, re.M))


def test_cmap_runtime_and_stats_keys_of_corosync_exist_on_totemd(totemd_ok, tmp_path):
    """The runtime keys tools read (members, totem config, services) and the stats map's
    srp keys are there on totemd, with the same names and types as corosync's."""
    with Cluster(tmp_path, kinds=("totemd", "corosync"), token=TOKEN) as c:
        wait_quorum(c, [1, 2], quorate="Yes", total="2")
        for prefix in ("runtime.members.", "runtime.config.totem.", "totem.", "nodelist.",
                       "quorum.", "runtime.votequorum."):
            ours, theirs = _keys(c, 1, prefix), _keys(c, 2, prefix)
            assert theirs, prefix
            assert theirs <= ours, (prefix, sorted(theirs - ours))
        ours = _keys(c, 1, "-m", "stats", "stats.srp.")
        theirs = _keys(c, 2, "-m", "stats", "stats.srp.")
        assert len(theirs) > 20 and theirs <= ours, sorted(theirs - ours)
        members = c.run(1, ["corosync-cmapctl", "runtime.members."], check=True).stdout
        for m in (1, 2):
            assert f"runtime.members.{m}.status (str) = joined" in members, members
            assert f"runtime.members.{m}.ip (str) = r(0) ip(198.18.0.{m}) " in members, members


# -- cfg: reload of the nodelist and killnode --------------------------------------------

def test_cfgtool_reload_adds_and_removes_nodes_and_killnode(totemd_ok, tmp_path):
    kinds = ("totemd", "corosync", "totemd", "corosync")
    with Cluster(tmp_path, kinds=kinds, token=TOKEN, nodelist=[1, 2, 3], start=False) as c:
        for n in (1, 2, 3):
            c.start(n)
        wait_quorum(c, [1, 2, 3], quorate="Yes", expected="3", total="3")
        # node 4 goes into every node's config; a reload asked on a totemd node reaches all
        for n in c.nodeids:
            c.write_config(n, [1, 2, 3, 4])
        r = c.run(1, ["corosync-cfgtool", "-R"], timeout=15)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "Reloading corosync.conf" in r.stdout, r.stdout
        wait_quorum(c, [1, 2, 3], quorate="Yes", expected="4", total="3", quorum="3")
        c.start(4)
        wait_quorum(c, [1, 2, 3, 4], quorate="Yes", expected="4", total="4",
                    members=member_rows([1, 2, 3, 4]))
        # killnode: a totemd node kills a corosync node, a corosync node kills a totemd one
        for asker, victim in ((1, 4), (2, 3)):
            r = c.run(asker, ["corosync-cfgtool", "-k", str(victim)], timeout=15)
            assert r.returncode == 0, (asker, victim, r.stdout, r.stderr)
            proc = c.node(victim).proc
            assert proc is not None
            # both kinds exit with corosync's status -1 and say who killed them
            assert proc.wait(timeout=15) == 255, c.logs(victim)[-500:]
            c.wait_log(victim, rf"\[CFG   \] Killed by node {asker} : Killed by corosync-cfgtool", 1)
        wait_quorum(c, [1, 2], quorate="No", expected="4", total="2")
        # node 3 and 4 leave the config; a reload asked on a corosync node reaches totemd
        for n in c.nodeids:
            c.write_config(n, [1, 2])
        r = c.run(2, ["corosync-cfgtool", "-R"], timeout=15)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_quorum(c, [1, 2], quorate="Yes", expected="2", total="2", quorum="2")
