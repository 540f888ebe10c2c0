"""CPG throughput and latency, real corosync and totemd side by side in one run.

Run as root from the repository root:

    python bench/cpgbench.py [--seconds 3] [--corosync-rt]   # the table (= bench/compare.py --only cpg)
    python bench/cpgbench.py --crypto      # totemd with aes256+sha256 vs without (= compare.py --only crypto)
    python bench/cpgbench.py --profile [--profiler py-spy|cprofile] [--seconds 10] [--size 1024 --senders 3]

For each implementation, a 3-node ring (token 1000 ms) in network namespaces made by
interop/cluster.py. The load client is bench/cpgload.c, a C program on the real
libcpg.so.4, compiled here at bench time into bench/.build/ (gitignored, cached by source
hash): the same binary drives both daemons. Each node runs one client in its own
namespaces (its own libqb IPC endpoints and /dev/shm); every client joins the cell's group
and counts what it delivers; senders are receivers too.

Cells: 64 B, 1 KiB and 16 KiB messages (CPG_TYPE_AGREED) with one sender (node 1) and with
all three nodes sending, each for ``--seconds`` of sending as fast as the daemon takes them
(CS_ERR_TRY_AGAIN: dispatch, wait for the cpg fd up to 1 ms if nothing came, retry).
Throughput is measured at the receivers: messages delivered per second between a node's
first and last delivery, the lowest of the three nodes (the rate every member sustained);
MB = 10^6 bytes of payload. Latency: node 1 sends one 64-byte message, waits for its own
delivery, repeats; p50/p99 of that round trip (nodes 2 and 3 are joined receivers; their
send-to-delivery times are the "remote" rows). CPU: utime + stime of each daemon process
(/proc/<pid>/stat) over the cell, mean of the three daemons.

Scheduling: corosync makes itself SCHED_RR priority 99 by default; totemd stays
SCHED_OTHER. Three RT daemons on a 2-core machine starve the (SCHED_OTHER) load clients
and corosync's 16 KiB all-senders cell then collapses erratically (60-500 msgs/s, seen
here), so by default corosync runs with ``system { sched_rr: no }``: both daemons are
scheduled alike. ``--corosync-rt`` keeps corosync's default.

``--profile`` runs only totemd under load (default 1 KiB, all senders) and summarises where
node 1's daemon spends its CPU: py-spy (sampling, no change to the daemon; ``pip install
py-spy`` into the venv) or cProfile (the daemon started as ``python -m cProfile -o FILE
-m totem.cli.totemd ...``, stopped with SIGTERM so the dump is written; exact call counts,
but it slows the daemon about 2x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import interop.cluster as cluster_mod  # noqa: E402
from interop.cluster import Cluster  # noqa: E402

from compare import daemon_pid, proc_stats, ring_line  # noqa: E402
from machine import cpu_model  # noqa: E402

TOKEN = 1000
NODES = 3
KINDS = ("corosync", "totemd")
ENCRYPTED = "totemd+aes256/sha256"
"""totemd with crypto_cipher aes256 and crypto_hash sha256 (one fresh key on all nodes)."""
PLAIN = "\tcrypto_cipher: none\n\tcrypto_hash: none\n"
SIZES = (64, 1024, 16384)
LAT_SIZE = 64
SPY_RATE = 250
LIBCPG = "/usr/lib/x86_64-linux-gnu/libcpg.so.4"
SOURCE = BENCH / "cpgload.c"
BUILD_DIR = BENCH / ".build"


# -- the load client -------------------------------------------------------------------

def build_client() -> Path:
    """Compile bench/cpgload.c against the real libcpg (cached by source hash)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = BUILD_DIR / f"cpgload-{digest}"
    if binary.exists():
        return binary
    BUILD_DIR.mkdir(exist_ok=True)
    for old in BUILD_DIR.glob("cpgload-*"):
        old.unlink()
    tmp = BUILD_DIR / f"cpgload-{digest}.tmp"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp), str(SOURCE), LIBCPG], check=True)
    tmp.rename(binary)
    return binary


def _readline(p: subprocess.Popen, timeout: float) -> str:
    if not select.select([p.stdout], [], [], timeout)[0]:
        raise CellFailed("cpgload did not get ready (the group did not reach its members in time)")
    return p.stdout.readline()


class CellFailed(RuntimeError):
    """A load client failed (e.g. the daemon dropped its connection); the message carries
    the daemons' IPC/CPG log lines from the cell."""


def _cell_log(c: Cluster, since: dict[int, int]) -> list[str]:
    lines = []
    for n in c.nodeids:
        for line in c.logs(n)[since.get(n, 0):].splitlines():
            if any(k in line for k in ("[IPC", "[CPG", "[QB", "disconnect", "dropping")):
                lines.append(f"node{n}: {line}")
    return lines[:10]


def run_cell(c: Cluster, binary: Path, group: str, modes: dict[int, str], senders: int,
             size: int, seconds: float, maxpings: int = 100000) -> dict:
    """One cell: a cpgload per node (``modes``: node -> send|recv|ping), all started at once.
    Returns the per-node JSON results and the daemons' CPU seconds over the cell; raises
    :class:`CellFailed` as soon as one client fails (the others are killed)."""
    procs = {}
    since = c.marks()
    try:
        for n, mode in modes.items():
            procs[n] = c.popen(n, [str(binary), mode, group, str(len(modes)), str(senders), str(size),
                                   str(seconds), str(maxpings)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for n, p in procs.items():
            line = _readline(p, 60)
            if line.strip() != "ready":
                raise CellFailed(f"cpgload on node {n}: {line.strip() or p.stderr.read()}")
        pids = {n: daemon_pid(c, n) for n in modes}
        before = {n: proc_stats(pid)[0] for n, pid in pids.items()}
        t0 = time.monotonic()
        for p in procs.values():
            p.stdin.write("go\n")
            p.stdin.flush()
        results = {}
        deadline = t0 + seconds + 180
        while len(results) < len(procs):
            for n, p in procs.items():
                if n in results or p.poll() is None:
                    continue
                out, err = p.communicate()
                lines = out.strip().splitlines()
                res = json.loads(lines[-1]) if lines else {"error": err.strip()}
                if "error" in res or p.returncode != 0:
                    raise CellFailed(f"cpgload on node {n} (exit {p.returncode}): {res} {err.strip()}\n  "
                                     + "\n  ".join(_cell_log(c, since)))
                results[n] = res
            if time.monotonic() > deadline:
                raise CellFailed("cpgload did not finish in time\n  " + "\n  ".join(_cell_log(c, since)))
            time.sleep(0.02)
        wall = time.monotonic() - t0
        after = {n: proc_stats(pid)[0] for n, pid in pids.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return {"nodes": results, "wall_s": wall,
            "daemon_cpu_s": {n: after[n] - before[n] for n in modes}}


def throughput(cell: dict) -> dict[str, float]:
    nodes = cell["nodes"].values()
    sent = sum(r["sent"] for r in nodes if r["mode"] == "send")
    rates = [r["delivered"] / r["window_s"] for r in nodes if r["window_s"] > 0]
    mbs = [r["bytes"] / r["window_s"] / 1e6 for r in nodes if r["window_s"] > 0]
    return {
        "msgs/s": min(rates) if len(rates) == len(nodes) else 0.0,
        "MB/s": min(mbs) if len(mbs) == len(nodes) else 0.0,
        "daemon CPU s": statistics.mean(cell["daemon_cpu_s"].values()),
        "wall s": cell["wall_s"],
        "sent": sent,
        "lost": sum(sent - r["delivered"] for r in nodes),
        "gaps": sum(r["gaps"] + r["dups"] for r in nodes),
        "try_again": sum(r["try_again"] for r in nodes),
        "client CPU s": max(r["cpu_s"] for r in nodes),
    }


def measure_kind(kind: str, seconds: float, binary: Path, log=print, realtime: bool = True) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="pytotem-cpgbench-") as tmp:
        with open_ring(Path(tmp), kind, realtime) as c:
            nodes = list(range(1, NODES + 1))
            k = 0
            for size in SIZES:
                for nsend in (1, NODES):
                    k += 1
                    log(f"  {kind}: {size} B, {nsend} sender(s) ...")
                    modes = {n: ("send" if n <= nsend else "recv") for n in nodes}
                    try:
                        cell = run_cell(c, binary, f"bench{k}", modes, nsend, size, seconds)
                        out[(size, nsend)] = throughput(cell)
                    except CellFailed as exc:
                        log(f"  {kind}: {size} B, {nsend} sender(s) FAILED: {exc}")
                        out[(size, nsend)] = {"error": str(exc)}
                    time.sleep(0.5)
            log(f"  {kind}: latency ...")
            modes = {n: ("ping" if n == 1 else "recv") for n in nodes}
            try:
                cell = run_cell(c, binary, "benchlat", modes, 1, LAT_SIZE, seconds)
            except CellFailed as exc:
                log(f"  {kind}: latency FAILED: {exc}")
                out["latency"] = {"error": str(exc)}
                return out
            own = cell["nodes"][1]
            remote = [cell["nodes"][n] for n in nodes[1:]]
            out["latency"] = {
                "p50 ms": own["lat_p50_ms"], "p99 ms": own["lat_p99_ms"], "max ms": own["lat_max_ms"],
                "n": own["lat_n"],
                "remote p50 ms": max(r["lat_p50_ms"] for r in remote),
                "remote p99 ms": max(r["lat_p99_ms"] for r in remote),
                "daemon CPU s": statistics.mean(cell["daemon_cpu_s"].values()),
                "wall s": cell["wall_s"],
            }
    return out


def measure(seconds: float = 3.0, kinds=KINDS, log=None, corosync_rt: bool = False) -> dict:
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    binary = build_client()
    results = {}
    for kind in kinds:
        log(f"measuring CPG on {kind} x{NODES} ...")
        results[kind] = measure_kind(kind, seconds, binary, log, realtime=corosync_rt)
    return results


NAN = float("nan")
LAT_METRICS = ("p50 ms", "p99 ms", "max ms", "remote p50 ms", "remote p99 ms", "n", "daemon CPU s")


def _get(r: dict, key: str) -> float:
    return NAN if "error" in r else r[key]


def _fmt(v: float) -> str:
    if v != v:
        return "FAILED"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and a == a and b == b else "n/a"


def _label(size: int, nsend: int) -> str:
    unit = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
    return f"{unit}, {nsend} sender{'s' if nsend > 1 else ''}"


def print_table(results: dict, seconds: float, corosync_rt: bool = False, file=sys.stdout) -> None:
    co, to = results["corosync"], results["totemd"]
    load = os.getloadavg()
    p = lambda s="": print(s, file=file)  # noqa: E731
    p(f"# CPG, corosync 3.1.7 vs totemd, {NODES}-node ring (udpu, token {TOKEN} ms) in namespaces on one host")
    p(f"# {cpu_model()}, {os.cpu_count()} cores; {seconds:g} s of sending per cell; load average "
      f"after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    p("# corosync " + ("as shipped: SCHED_RR priority 99 (system.sched_rr: yes)" if corosync_rt else
                       "with system.sched_rr: no (SCHED_OTHER, as totemd; --corosync-rt for corosync's default)"))
    p("# throughput = deliveries/s at the slowest receiver; MB = 1e6 B of payload; CPU = daemon "
      "utime+stime over the cell, mean of 3; ratio = totemd/corosync")
    head = (f"{'cell':<18}{'corosync msgs/s':>16}{'totemd msgs/s':>15}{'ratio':>7}"
            f"{'coro MB/s':>11}{'tote MB/s':>11}{'coro CPU s':>11}{'tote CPU s':>11}{'CPU ratio':>10}")
    p(head)
    p("-" * len(head))
    for size in SIZES:
        for nsend in (1, NODES):
            a, b = co[(size, nsend)], to[(size, nsend)]
            p(f"{_label(size, nsend):<18}{_fmt(_get(a, 'msgs/s')):>16}{_fmt(_get(b, 'msgs/s')):>15}"
              f"{_ratio(_get(b, 'msgs/s'), _get(a, 'msgs/s')):>7}"
              f"{_fmt(_get(a, 'MB/s')):>11}{_fmt(_get(b, 'MB/s')):>11}"
              f"{_fmt(_get(a, 'daemon CPU s')):>11}{_fmt(_get(b, 'daemon CPU s')):>11}"
              f"{_ratio(_get(b, 'daemon CPU s'), _get(a, 'daemon CPU s')):>10}")
    la, lb = co["latency"], to["latency"]
    p()
    p(f"latency, one {LAT_SIZE} B message in flight (send, wait for own delivery), ms:")
    p(f"{'':<18}{'corosync':>12}{'totemd':>12}{'ratio':>8}")
    for m in LAT_METRICS:
        name = {"n": "round trips", "daemon CPU s": "daemon CPU s"}.get(m, m)
        va, vb = _get(la, m), _get(lb, m)
        cell = (lambda v: f"{v:>12.0f}" if v == v else f"{'FAILED':>12}") if m == "n" else \
               (lambda v: f"{v:>12.3f}" if v == v else f"{'FAILED':>12}")
        p(f"{name:<18}{cell(va)}{cell(vb)}{_ratio(vb, va):>8}")
    p()
    p("checks per cell (corosync | totemd): messages sent, lost (sent - delivered, summed over "
      "nodes), sequence gaps+dups, TRY_AGAIN returns, busiest client's CPU s, wall s")
    for size in SIZES:
        for nsend in (1, NODES):
            row = []
            for k in KINDS:
                r = results[k][(size, nsend)]
                if "error" in r:
                    row.append(f"{'FAILED (see below)':<44}")
                    continue
                row.append(f"{r['sent']:>9} {r['lost']:>4} {r['gaps']:>3} {r['try_again']:>8} "
                           f"{r['client CPU s']:>6.2f} {r['wall s']:>6.2f}")
            p(f"{_label(size, nsend):<18}" + " | ".join(row))
    failures = [(k, c, r["error"]) for k in KINDS for c, r in results[k].items() if "error" in r]
    for k, c, err in failures:
        what = "latency" if c == "latency" else _label(*c)
        p(f"FAILED {k} {what}: {err}")
    p()
    verdict = lambda r: "n/a" if r != r else ("met" if r else "NOT met")  # noqa: E731

    def share(size: int, nsend: int) -> float:
        return _get(to[(size, nsend)], "msgs/s") / _get(co[(size, nsend)], "msgs/s")
    t1s, t1, t64s, t64 = share(1024, 1), share(1024, NODES), share(64, 1), share(64, NODES)
    lat = _get(lb, "p50 ms") / _get(la, "p50 ms")
    pc = lambda v: "n/a" if v != v else f"{v:.0%}"  # noqa: E731
    both = lambda x, y, ok: NAN if x != x or y != y else ok  # noqa: E731
    p("targets (issue 5 item 6):")
    p(f"  1 KiB throughput >= 50% of corosync: {pc(t1s)} (1 sender), {pc(t1)} (3 senders) -> "
      f"{verdict(both(t1, t1s, min(t1, t1s) >= 0.5))}")
    p(f"  64 B throughput >= 100% of corosync: {pc(t64s)} (1 sender), {pc(t64)} (3 senders) -> "
      f"{verdict(both(t64, t64s, min(t64, t64s) >= 1.0))}")
    p(f"  latency p50 within 2x: {lat:.2f}x -> {verdict(both(lat, lat, lat <= 2.0))}")


# -- profile -----------------------------------------------------------------------------

def open_ring(tmp: Path, kind: str, realtime: bool = True) -> Cluster:
    """A started 3-node ring of ``kind``. corosync sets itself SCHED_RR priority 99 by
    default (system.sched_rr: yes); totemd stays SCHED_OTHER. ``realtime=False`` writes
    ``sched_rr: no`` into the corosync nodes' configurations (same scheduling as totemd)."""
    c = Cluster(tmp, kinds=("totemd" if kind == ENCRYPTED else kind,) * NODES, token=TOKEN, start=False)
    c.open()
    try:
        if kind == ENCRYPTED:
            encrypt(c, tmp)
        if not realtime:
            for node in c.nodes.values():
                text = node.conffile.read_text()
                assert "system {\n" in text
                node.conffile.write_text(text.replace("system {\n", "system {\n\tsched_rr: no\n", 1))
        c.start_all()
        c.wait_log_all(ring_line(NODES), 60)
        time.sleep(1.0)  # sync and the services settle
    except BaseException:
        c.close()
        raise
    return c


def _cprofile_argv():
    """totemd under ``python -m cProfile -o <node dir>/totemd.prof`` (the node's /tmp is
    private to its mount namespace; its work directory is shared)."""
    original = cluster_mod.daemon_argv

    def argv(kind, conffile, nodeid):
        base = original(kind, conffile, nodeid)
        if kind != "totemd":
            return base
        assert base[1:3] == ["-m", "totem.cli.totemd"], base
        return [base[0], "-m", "cProfile", "-o", str(Path(conffile).parent / "totemd.prof")] + base[1:]
    return original, argv


WAIT_FRAMES = ("EpollIOManager.get_events", "WorkerThread._work")
"""Where a totemd thread waits: trio's epoll_wait, and trio's idle thread-cache workers."""


def summarise_raw(path: Path, top: int, rate: int) -> str:
    """Own and cumulative time per function from py-spy's raw (collapsed) stacks, recorded
    with --idle: samples in epoll_wait and in idle worker threads are counted apart (py-spy's
    own idle detection was unreliable here, counting both as active), the rest is the base
    of the shares."""
    own: dict[str, int] = {}
    cum: dict[str, int] = {}
    total = waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or any(f.startswith(WAIT_FRAMES) for f in frames):
            waiting += n
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            cum[f] = cum.get(f, 0) + n
    busy = total - waiting
    lines = [f"{total} samples at {rate} Hz; {waiting} waiting (epoll_wait, idle worker threads), "
             f"{busy} busy = {busy / rate:.2f} s of Python on the CPU; shares below are of the busy samples"]
    for title, table in (("cumulative", cum), ("own", own)):
        lines.append(f"\ntop {top} by {title} time:")
        for f, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {n / max(busy, 1):6.1%}  {f}")
    return "\n".join(lines)


def profile(seconds: float, profiler: str, top: int = 15, size: int = 1024, senders: int = NODES,
            kind: str = "totemd") -> int:
    binary = build_client()
    spy_seconds = max(1, int(seconds - 2))
    spy_cpu = (NAN, NAN)
    out_dir = Path(tempfile.mkdtemp(prefix="pytotem-cpgprof-"))
    restore = None
    if profiler == "cprofile":
        restore, cluster_mod.daemon_argv = _cprofile_argv()
    else:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            print("py-spy is not installed (pip install py-spy into the venv)", file=sys.stderr)
            return 2
    try:
        with tempfile.TemporaryDirectory(prefix="pytotem-cpgbench-") as tmp:
            with open_ring(Path(tmp), kind) as c:
                nodes = list(range(1, NODES + 1))
                result: dict = {}
                if senders == 0:  # the latency cell: node 1 pings, one message in flight
                    modes = {n: ("ping" if n == 1 else "recv") for n in nodes}
                else:
                    modes = {n: ("send" if n <= senders else "recv") for n in nodes}
                worker = threading.Thread(target=lambda: result.update(
                    run_cell(c, binary, "benchprof", modes, max(senders, 1), size, seconds)))
                worker.start()
                if profiler == "py-spy":
                    time.sleep(1.0)
                    raw = out_dir / "totemd1.raw"
                    pid = daemon_pid(c, 1)
                    cpu0, t0 = proc_stats(pid)[0], time.monotonic()
                    subprocess.run([spy, "record", "--pid", str(pid), "--rate", str(SPY_RATE),
                                    "--duration", str(spy_seconds), "--format", "raw", "--function",
                                    "--idle", "--nonblocking", "-o", str(raw)],
                                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    spy_cpu = (proc_stats(pid)[0] - cpu0, time.monotonic() - t0)
                worker.join()
                if result and senders == 0:
                    own = result["nodes"][1]
                    print(f"# totemd x{NODES}, latency cell ({size} B, one in flight), {seconds:g} s: "
                          f"p50 {own['lat_p50_ms']:.3f} ms over {own['lat_n']} round trips; profiled node 1 "
                          f"with {profiler}")
                elif result:
                    t = throughput(result)
                    print(f"# totemd x{NODES}, {size} B, {senders} sender(s), {seconds:g} s: {t['msgs/s']:,.0f} msgs/s, "
                          f"daemon CPU {t['daemon CPU s']:.2f} s of {t['wall s']:.1f} s wall; profiled node 1 "
                          f"with {profiler}")
                if profiler == "cprofile":
                    for n in nodes:
                        c.stop(n)  # SIGTERM: totemd returns from main and cProfile writes its dump
                    shutil.copy(c.node(1).dir / "totemd.prof", out_dir / "totemd1.prof")
        if profiler == "py-spy":
            print(f"node 1's daemon used {spy_cpu[0]:.2f} CPU s (/proc) in the {spy_cpu[1]:.1f} s "
                  "py-spy sampled it")
            print(summarise_raw(raw, top, SPY_RATE))
            print(f"\nraw stacks: {raw}")
        else:
            import pstats
            prof = out_dir / "totemd1.prof"
            for key in ("cumulative", "tottime"):
                print(f"\n## top {top} by {key}")
                pstats.Stats(str(prof)).strip_dirs().sort_stats(key).print_stats(top)
            print(f"dump: {prof}")
    finally:
        if restore is not None:
            cluster_mod.daemon_argv = restore
    return 0


def encrypt(c: Cluster, tmp: Path) -> None:
    """Switch every node of ``c`` to aes256/sha256 with one new key (mode 0400 copies in
    the node directories, as on real hosts)."""
    from totem.crypto.keyfile import generate_key, read_key

    key = read_key(generate_key(tmp / "authkey"))
    for node in c.nodes.values():
        path = node.dir / "authkey"
        path.write_bytes(key)
        os.chmod(path, 0o400)
        text = node.conffile.read_text()
        assert PLAIN in text, "the cluster configuration no longer says crypto none"
        node.conffile.write_text(text.replace(PLAIN, "\tcrypto_cipher: aes256\n\tcrypto_hash: sha256\n"
                                                     f"\tkeyfile: {path}\n"))


def print_crypto_table(results: dict, seconds: float, file=sys.stdout) -> None:
    """What aes256+sha256 costs totemd's CPG (issue 7 item 6): the same cells with and
    without crypto, in one run."""
    plain, sealed = results["totemd"], results[ENCRYPTED]
    p = lambda s="": print(s, file=file)  # noqa: E731
    p(f"# CPG on totemd, aes256+sha256 vs no crypto, {NODES}-node ring in namespaces on one host; "
      f"{seconds:g} s of sending per cell")
    p("# ratio = with crypto / without (below 1: crypto costs that share of the throughput)")
    head = (f"{'cell':<18}{'none msgs/s':>13}{'aes msgs/s':>12}{'ratio':>7}"
            f"{'none MB/s':>11}{'aes MB/s':>10}{'none CPU s':>11}{'aes CPU s':>10}")
    p(head)
    p("-" * len(head))
    for size in SIZES:
        for nsend in (1, NODES):
            a, b = plain[(size, nsend)], sealed[(size, nsend)]
            p(f"{_label(size, nsend):<18}{_fmt(_get(a, 'msgs/s')):>13}{_fmt(_get(b, 'msgs/s')):>12}"
              f"{_ratio(_get(b, 'msgs/s'), _get(a, 'msgs/s')):>7}"
              f"{_fmt(_get(a, 'MB/s')):>11}{_fmt(_get(b, 'MB/s')):>10}"
              f"{_fmt(_get(a, 'daemon CPU s')):>11}{_fmt(_get(b, 'daemon CPU s')):>10}")
    la, lb = plain["latency"], sealed["latency"]
    p(f"{'latency p50 ms':<18}{_fmt(_get(la, 'p50 ms')):>13}{_fmt(_get(lb, 'p50 ms')):>12}"
      f"{_ratio(_get(lb, 'p50 ms'), _get(la, 'p50 ms')):>7}")
    for k in (("totemd", plain), (ENCRYPTED, sealed)):
        for c, r in k[1].items():
            if "error" in r:
                p(f"FAILED {k[0]} {'latency' if c == 'latency' else _label(*c)}: {r['error']}")
            elif c != "latency" and (r["lost"] or r["gaps"]):
                p(f"CHECK {k[0]} {_label(*c)}: lost {r['lost']}, gaps {r['gaps']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None,
                    help="seconds of sending per cell (default 3; 10 with --profile)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated (default both)")
    ap.add_argument("--crypto", action="store_true",
                    help="totemd with aes256+sha256 against totemd without crypto instead (with --profile: profile it)")
    ap.add_argument("--corosync-rt", action="store_true",
                    help="leave corosync's default SCHED_RR 99 on (default: sched_rr: no, as totemd)")
    ap.add_argument("--profile", action="store_true",
                    help="profile node 1's totemd under load (default 1 KiB, 3 senders)")
    ap.add_argument("--size", type=int, default=1024, help="--profile: message size")
    ap.add_argument("--senders", type=int, default=NODES,
                    help="--profile: number of senders; 0 = the latency cell (node 1 pings)")
    ap.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/cpgbench.py needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.profile:
        return profile(args.seconds or 10.0, args.profiler, args.top, args.size, args.senders,
                       ENCRYPTED if args.crypto else "totemd")
    seconds = args.seconds or 3.0
    if args.crypto:
        print_crypto_table(measure(seconds, ("totemd", ENCRYPTED)), seconds)
        return 0
    kinds = tuple(args.kinds.split(","))
    results = measure(seconds, kinds, corosync_rt=args.corosync_rt)
    if set(kinds) == set(KINDS):
        print_table(results, seconds, args.corosync_rt)
    else:
        print(json.dumps({k: {str(c): v for c, v in r.items()} for k, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
