"""CPG with real parts: libcpg programs and corosync's tools on totemd, pytotem's Python
client on corosync, and mixed rings where every node must deliver the same sequence.

Clients run inside the nodes' namespaces (interop/cluster.py); their event logs are
JSON lines in the node directories. In the mixed ring, virtual synchrony is checked
from those logs: the nodes that stay up deliver identical sequences of messages and
membership changes per group; a node that leaves saw a prefix of that sequence, and
after it rejoins it sees the suffix from its own join on; every message is what its
sender sent (content derived from sender and sequence number), none lost or repeated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from interop.cluster import Cluster

TOKEN = 1000
REPO = Path(__file__).resolve().parents[1]


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by the process being killed
    return out


def start_worker(c: Cluster, n: int, group: str, name: str, *, count: int, big_every: int = 0,
                 wait_members: int = 1, pace: float = 0.0) -> tuple[subprocess.Popen, Path]:
    out = c.node(n).dir / f"{name}.jsonl"
    err = open(c.node(n).dir / f"{name}.err", "w")
    p = c.popen(n, [sys.executable, "-m", "interop.cpg_worker", "--group", group, "--count", str(count),
                    "--big-every", str(big_every), "--out", str(out), "--wait-members", str(wait_members),
                    "--pace", str(pace)], cwd=str(REPO), stdout=err, stderr=subprocess.STDOUT)
    return p, out


def wait_for(cond, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        res = cond()
        if res:
            return res
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def events(log: list[dict]) -> list[tuple]:
    """The delivered sequence: messages, END markers and membership changes."""
    out = []
    for e in log:
        if e["t"] == "msg":
            out.append(("msg", e["nodeid"], e["pid"], e["k"], e["len"], e["sha"]))
        elif e["t"] == "end":
            out.append(("end", e["nodeid"], e["pid"], e["n"]))
        elif e["t"] == "conf":
            out.append(("conf", tuple(map(tuple, e["members"])), tuple(map(tuple, e["left"])),
                        tuple(map(tuple, e["joined"]))))
    return out


def aligned(x: list[tuple], y: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Two clients' sequences from the later one's join on (each log starts with the
    membership change of its own join)."""
    if y and y[0] in x:
        return x[x.index(y[0]):], y
    if x and x[0] in y:
        return x, y[y.index(x[0]):]
    raise AssertionError(f"neither client's join is in the other's sequence: {x[:1]} / {y[:1]}")


def me(log: list[dict]) -> tuple[int, int]:
    first = log[0]
    assert first["t"] == "me", first
    return first["nodeid"], first["pid"]


# -- libcpg and corosync-cpgtool against totemd ---------------------------------------------


def test_libcpg_and_cpgtool_on_a_mixed_ring(totemd_ok, tmp_path):
    """Unmodified libcpg programs on a totemd node and a corosync node of one ring
    exchange messages in one order; corosync-cpgtool on both lists the same members."""
    with Cluster(tmp_path, kinds=("totemd", "corosync"), token=TOKEN) as c:
        c.wait_log_all(r"Completed service synchronization", 30)
        p, out = start_worker(c, 1, "probe", "probe", count=0)
        wait_for(lambda: any(e["t"] == "conf" for e in read_log(out)), 20, "the probe member to join")
        pid = me(read_log(out))[1]
        for n in (1, 2):
            listing = c.run(n, ["corosync-cpgtool"], check=True).stdout
            assert "probe" in listing and str(pid) in listing, (n, listing)
            delimited = c.run(n, ["corosync-cpgtool", "-d", ":"], check=True).stdout
            assert f"probe:{pid}:1" in delimited.splitlines(), (n, delimited)

        clients = {n: c.popen(n, [sys.executable, "-m", "interop.libcpg_client", "lc", "200", "300", "2"],
                              cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for n in (1, 2)}
        results = {}
        for n, proc in clients.items():
            stdout, stderr = proc.communicate(timeout=90)
            results[n] = [json.loads(line) for line in stdout.splitlines()]
            assert proc.returncode == 0, (n, stdout[-2000:], stderr[-2000:])
        for n, lines in results.items():
            calls = {e["call"]: e for e in lines if "call" in e}
            assert calls["cpg_initialize"]["rc"] == 1 and calls["cpg_join"]["rc"] == 1
            assert calls["cpg_local_get"]["nodeid"] == n
            assert calls["own_messages"]["received"] == 200
        # both programs received the messages both sent, in one order (each from its join on)
        seqs = {n: [(e["nodeid"], e["pid"], e["head"]) for e in lines if e.get("cb") == "deliver"]
                for n, lines in results.items()}
        common = [m for m in seqs[1] if m in set(seqs[2])]
        assert common == [m for m in seqs[2] if m in set(seqs[1])]
        assert len({(nodeid, pid) for nodeid, pid, _ in common}) == 2, "each saw the other's messages"
        p.terminate()


# -- the Python client against corosync and totemd, in a mixed ring with a node leaving ------


COUNT = 400
BIG_EVERY = 60


def test_mixed_ring_groups_deliver_one_sequence_while_a_node_leaves_and_rejoins(totemd_ok, tmp_path):
    kinds = ("totemd", "totemd", "corosync")
    groups = ("alpha", "beta")
    with Cluster(tmp_path, kinds=kinds, token=TOKEN) as c:
        c.wait_log_all(r"Members\[3\]: 1 2 3\n", 30)
        c.wait_log_all(r"Completed service synchronization", 30)
        logs: dict[tuple[int, str, int], Path] = {}
        procs = []
        for n in (1, 2, 3):
            for g in groups:
                p, out = start_worker(c, n, g, f"{g}-gen1", count=COUNT, big_every=BIG_EVERY,
                                      wait_members=3, pace=0.002)
                procs.append(p)
                logs[(n, g, 1)] = out
        # node 3 leaves while everyone is sending
        wait_for(lambda: all(sum(e["t"] == "msg" for e in read_log(logs[(3, g, 1)])) >= 60 for g in groups),
                 90, "node 3's clients to be well into the traffic")
        c.stop(3)
        time.sleep(2)
        c.start(3)
        c.wait_log(3, r"Completed service synchronization", 30)
        for g in groups:
            p, out = start_worker(c, 3, g, f"{g}-gen2", count=COUNT, big_every=BIG_EVERY, pace=0.002)
            procs.append(p)
            logs[(3, g, 2)] = out

        def ends(n: int, g: str, gen: int) -> set[tuple[int, int]]:
            return {(e["nodeid"], e["pid"]) for e in read_log(logs[(n, g, gen)]) if e["t"] == "end"}

        def finished() -> bool:
            # nodes 1 and 2 saw every surviving sender finish; node 3's new client saw
            # its own END (the others may have finished before it joined)
            for g in groups:
                if not all(read_log(logs[(n, g, gen)]) for n, gen in ((1, 1), (2, 1), (3, 2))):
                    return False
                senders = {me(read_log(logs[(n, g, gen)])) for n, gen in ((1, 1), (2, 1), (3, 2))}
                if not (senders <= ends(1, g, 1) and senders <= ends(2, g, 1)
                        and me(read_log(logs[(3, g, 2)])) in ends(3, g, 2)):
                    return False
            return True

        wait_for(finished, 240, "every surviving client to deliver every surviving sender's END", 1.0)
        time.sleep(1)
        for p in procs:
            p.terminate()

        for g in groups:
            full = {key: read_log(path) for key, path in logs.items() if key[1] == g}
            seq1, seq2 = events(full[(1, g, 1)]), events(full[(2, g, 1)])
            a, b = aligned(seq1, seq2)
            assert a == b, f"group {g}: nodes 1 and 2 delivered different sequences"
            ref = seq1 if len(seq1) >= len(seq2) else seq2
            for key, log in full.items():
                bad = [e for e in log if e["t"] == "msg" and not e["ok"]]
                assert not bad, (key, bad[:3])
            # every sender that finished: messages 0..COUNT-1 once each, in order
            by_sender: dict[tuple[int, int], list[int]] = {}
            for e in full[(1, g, 1)]:
                if e["t"] == "msg":
                    by_sender.setdefault((e["nodeid"], e["pid"]), []).append(e["k"])
            finished_senders = {(e["nodeid"], e["pid"]) for e in full[(1, g, 1)] if e["t"] == "end"}
            assert len(finished_senders) == 3
            for s in finished_senders:
                assert by_sender[s] == list(range(COUNT)), (g, s)
            # the node 3 sender that left: a gap-free prefix of its messages
            left_sender = me(full[(3, g, 1)])
            assert by_sender.get(left_sender, []) == list(range(len(by_sender.get(left_sender, []))))
            # node 3 before it left: what the others delivered, up to where it stopped
            a, gen1 = aligned(ref, events(full[(3, g, 1)]))
            assert gen1 and gen1 == a[:len(gen1)], f"group {g}: node 3 diverged before leaving"
            # node 3 after it rejoined: the others' sequence from its own join on
            a, gen2 = aligned(ref, events(full[(3, g, 2)]))
            assert gen2 == a, f"group {g}: node 3 after rejoining diverged"
            # the departure is a membership change on the survivors naming node 3's process
            assert any(e[0] == "conf" and any(x[:2] == left_sender for x in e[2]) for e in ref)
