"""``totemctl quorum`` and ``totemctl cmap`` against real corosync 3.1.7 and totemd.

The Python clients (:mod:`quorum.client`, :mod:`cmap.client`) speak the client
libraries' protocols, so on every node of a mixed ring ``totemctl quorum`` must print
what ``corosync-quorumtool`` prints there (the date aside) and exit as it does, and
``totemctl cmap`` must print keys as ``corosync-cmapctl`` does, whichever daemon answers.
"""

from __future__ import annotations

import json
import re
import sys

from interop.cluster import Cluster
from interop.test_quorum_mixed import wait_quorum

TOKEN = 1000
TOTEMCTL = [sys.executable, "-m", "totem.cli.totemctl"]


def _undated(text: str) -> str:
    return re.sub(r"^Date: .*$", "Date: <now>", text, flags=re.M)


def _same_answer(c: Cluster, n: int, ours: list[str], theirs: list[str]) -> str:
    a = c.run(n, TOTEMCTL + ours, timeout=20)
    b = c.run(n, theirs, timeout=20)
    assert (a.returncode, _undated(a.stdout)) == (b.returncode, _undated(b.stdout)), \
        f"node{n} ({c.node(n).kind}) totemctl {ours}:\n{a.stdout}{a.stderr}\n{theirs}:\n{b.stdout}{b.stderr}"
    assert a.stderr == "", a.stderr
    return a.stdout


def test_totemctl_quorum_prints_what_quorumtool_prints(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync", "totemd"), token=TOKEN) as c:
        wait_quorum(c, [1, 2, 3], quorate="Yes", total="3")
        for n in (1, 2):
            out = _same_answer(c, n, ["quorum"], ["corosync-quorumtool", "-s"])
            assert "Quorate:          Yes" in out and f"node{n} (local)" in out, out
            _same_answer(c, n, ["quorum", "-l"], ["corosync-quorumtool", "-l"])
            _same_answer(c, n, ["quorum", "-H"], ["corosync-quorumtool", "-s", "-H"])
            doc = json.loads(c.run(n, TOTEMCTL + ["quorum", "--json"], timeout=20).stdout)
            assert doc["quorate"] is True and doc["local_nodeid"] == n and doc["expected_votes"] == 3
            assert doc["provider"] == "corosync_votequorum" and "Quorate" in doc["flags"]
            assert sorted(m["nodeid"] for m in doc["nodes"]) == [1, 2, 3]
            assert all(m["votes"] == 1 and m["state"] == "MEMBER" for m in doc["nodes"]), doc
        # expected votes changed from totemctl on a totemd node reach the corosync node
        assert c.run(1, TOTEMCTL + ["quorum", "-e", "4"], timeout=20).returncode == 0
        wait_quorum(c, [1, 2, 3], expected="4", quorum="3")
        # two of three gone: not quorate, exit status 2 on both tools
        c.stop(3)
        wait_quorum(c, [1, 2], total="2")
        c.stop(1)
        wait_quorum(c, [2], total="1", quorate="No")
        out = _same_answer(c, 2, ["quorum"], ["corosync-quorumtool", "-s"])
        assert "Activity blocked" in out
        r = c.run(2, TOTEMCTL + ["quorum"], timeout=20)
        assert r.returncode == 2


def test_totemctl_cmap_prints_what_cmapctl_prints(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd", "corosync"), token=TOKEN) as c:
        wait_quorum(c, [1, 2], quorate="Yes", total="2")
        for n in (1, 2):
            for t, v in (("u32", "42"), ("i8", "-5"), ("str", "hello world"), ("dbl", "1.5"),
                         ("u64", "18446744073709551615"), ("bin", "00415c")):
                assert c.run(n, TOTEMCTL + ["cmap", "-s", f"test.{t}", t, v], timeout=20).returncode == 0
            _same_answer(c, n, ["cmap", "test."], ["corosync-cmapctl", "test."])
            # (bytes >= 0x80 differ on purpose: cmapctl sign-extends them, \xFFFFFFFF for 0xff)
            _same_answer(c, n, ["cmap", "-b", "test."], ["corosync-cmapctl", "-b", "test."])
            _same_answer(c, n, ["cmap", "-g", "test.str"], ["corosync-cmapctl", "-g", "test.str"])
            _same_answer(c, n, ["cmap", "totem."], ["corosync-cmapctl", "totem."])
            _same_answer(c, n, ["cmap", "nodelist."], ["corosync-cmapctl", "nodelist."])
            doc = json.loads(c.run(n, TOTEMCTL + ["cmap", "--json", "test."], timeout=20).stdout)
            assert doc["test.u32"] == {"type": "u32", "value": 42}
            assert doc["test.str"] == {"type": "str", "value": "hello world"}
            assert doc["test.bin"] == {"type": "bin", "value": "00415c"}
            assert c.run(n, TOTEMCTL + ["cmap", "-d", "test.u32"], timeout=20).returncode == 0
            gone = c.run(n, TOTEMCTL + ["cmap", "-g", "test.u32"], timeout=20)
            assert gone.returncode == 1 and "NOT_EXIST" in gone.stderr, gone
            assert c.run(n, TOTEMCTL + ["cmap", "-D", "test."], timeout=20).returncode == 0
            assert c.run(n, ["corosync-cmapctl", "test."], timeout=20).stdout == ""
            stats = json.loads(c.run(n, TOTEMCTL + ["cmap", "-m", "stats", "--json", "stats.srp."],
                                     timeout=20).stdout)
            assert stats["stats.srp.orf_token_rx"]["type"] == "u64", stats
