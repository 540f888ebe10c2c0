"""Real corosync and totemd side by side in one run: membership timings, idle CPU, memory.

Run as root from the repository root:  python bench/compare.py [--only membership|cpg|crypto]

For each implementation and ring size (3 and 5 nodes, token 1000 ms), in network
namespaces made by interop/cluster.py: time from start to the first full ring, time to
a new ring after SIGKILL of the highest node, time until it is back after a restart,
CPU seconds per daemon over an idle period, and resident memory per daemon. The table
ends with totemd/corosync ratios (below 1 means totemd is faster or smaller).

Then CPG on a 3-node ring (bench/cpgbench.py): messages/s and MB/s at 64 B, 1 KiB and
16 KiB with one and with three senders, latency of one message in flight, daemon CPU,
with totemd/corosync ratios (above 1 means totemd delivers more). ``--only`` runs one
part; ``--cpg-seconds`` sets the sending time per CPG cell (default 3).

Last, the cost of crypto: the same CPG cells on totemd with aes256+sha256 and without
(corosync 3 has no crypto on udpu, so this row compares totemd with itself).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interop.cluster import Cluster  # noqa: E402

TOKEN = 1000
IDLE_SECONDS = 10.0
KINDS = ("corosync", "totemd")
SIZES = (3, 5)


def ring_line(n: int) -> str:
    ids = " ".join(map(str, range(1, n + 1)))
    return rf"Sync members\[{n}\]: {ids}\n"


def wait_all(c: Cluster, pattern: str, nodes, since: dict[int, int], timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    c.wait_log_all(pattern, timeout, nodes=nodes, after=since)
    return time.monotonic() - t0


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process and its children threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_pages = int(open(f"/proc/{pid}/statm").read().split()[1])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE")


def daemon_pid(c: Cluster, n: int) -> int:
    """The daemon itself (the harness may start it through a wrapper)."""
    pid = c.pid(n)
    assert pid is not None
    kind = c.node(n).kind
    want = "corosync" if kind == "corosync" else "totem.cli.totemd"
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if want in cmd and not cmd.startswith(("nsenter", "unshare", "sh ")):
            return p
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        stack.extend(int(x) for x in children)
    return pid


def measure(kind: str, size: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pytotem-bench-") as tmp:
        with Cluster(Path(tmp), kinds=(kind,) * size, token=TOKEN, start=False) as c:
            nodes = list(range(1, size + 1))
            since = c.marks()
            t0 = time.monotonic()
            c.start_all()
            c.wait_log_all(ring_line(size), 60, nodes=nodes, after=since)
            out["first ring s"] = time.monotonic() - t0

            time.sleep(1.0)
            pids = [daemon_pid(c, n) for n in nodes]
            before = [proc_stats(p) for p in pids]
            time.sleep(IDLE_SECONDS)
            after = [proc_stats(p) for p in pids]
            out["idle CPU ms/s"] = statistics.mean(
                (a[0] - b[0]) / IDLE_SECONDS * 1000 for a, b in zip(after, before))
            out["RSS MiB"] = statistics.mean(a[1] for a in after) / 2**20

            since = c.marks()
            t0 = time.monotonic()
            c.kill(size)
            c.wait_log_all(ring_line(size - 1), 60, nodes=nodes[:-1], after=since)
            out["new ring after kill s"] = time.monotonic() - t0

            since = c.marks()
            t0 = time.monotonic()
            c.start(size)
            c.wait_log_all(ring_line(size), 60, nodes=nodes, after=since)
            out["rejoin s"] = time.monotonic() - t0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="corosync and totemd side by side")
    ap.add_argument("--only", choices=("membership", "cpg", "crypto"), help="run one part (default all)")
    ap.add_argument("--cpg-seconds", type=float, default=3.0, help="seconds of sending per CPG cell")
    ap.add_argument("--corosync-rt", action="store_true",
                    help="CPG part: leave corosync's SCHED_RR 99 on (default sched_rr: no, as totemd)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/compare.py needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.only in (None, "membership"):
        membership()
    import cpgbench

    if args.only in (None, "cpg"):
        if args.only is None:
            print()
        results = cpgbench.measure(args.cpg_seconds, corosync_rt=args.corosync_rt)
        cpgbench.print_table(results, args.cpg_seconds, args.corosync_rt)
    if args.only in (None, "crypto"):
        if args.only is None:
            print()
        results = cpgbench.measure(args.cpg_seconds, ("totemd", cpgbench.ENCRYPTED))
        cpgbench.print_crypto_table(results, args.cpg_seconds)
    return 0


def membership() -> None:
    results = {}
    for size in SIZES:
        for kind in KINDS:
            print(f"measuring {kind} x{size} ...", file=sys.stderr, flush=True)
            results[(kind, size)] = measure(kind, size)
    metrics = list(next(iter(results.values())))
    print(f"# corosync vs totemd, token {TOKEN} ms, idle period {IDLE_SECONDS:.0f} s, namespaces on one host")
    head = f"{'metric':<24}" + "".join(f"{k + ' x' + str(s):>16}" for s in SIZES for k in KINDS) + \
        "".join(f"{'ratio x' + str(s):>12}" for s in SIZES)
    print(head)
    print("-" * len(head))
    for m in metrics:
        row = f"{m:<24}"
        for s in SIZES:
            for k in KINDS:
                row += f"{results[(k, s)][m]:>16.3f}"
        for s in SIZES:
            base = results[("corosync", s)][m]
            row += f"{(results[('totemd', s)][m] / base if base else float('nan')):>12.2f}"
        print(row)


if __name__ == "__main__":
    sys.exit(main())
