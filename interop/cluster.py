"""A cluster of real daemons -- corosync and/or pytotem's totemd -- each in its own namespaces.

    with Cluster(tmp_path, kinds=["corosync", "corosync", "totemd"], token=1000) as c:
        c.wait_log_all(r"Sync members\\[3\\]: 1 2 3")  # ring formed on every node
        c.partition([[1, 2], [3]])
        ...
        print(c.run(2, ["corosync-quorumtool", "-l"]).stdout)

Node ``i`` (1..N) is ``node<i>`` at ``198.18.0.<i>``, alone in a network namespace
cabled to a bridge (:class:`interop.netns.Network`), with its own mount and UTS
namespaces (:class:`interop.netns.Holder`: hostname ``node<i>``, private ``/run``,
``/dev/shm``, ``/tmp``, ``/var/lib/corosync``), so each daemon has its own libqb IPC
endpoints, pid file and ring id files, and the corosync tools run by :meth:`Cluster.run`
talk to that node's daemon. Every node reads the same nodelist; its work directory
``<tmpdir>/node<i>/`` holds its ``corosync.conf``, ``state/`` (``system.state_dir``),
``corosync.log`` and the daemon's ``stdout``/``stderr``.

Cleanup is unconditional: leaving the ``with`` block (also by an exception) kills every
process the cluster started and deletes its namespaces; an ``atexit`` hook does the same
for clusters never closed, and every new cluster first sweeps namespaces left behind by
dead test processes (:func:`interop.netns.sweep_stale`). Needs root, ``ip``, ``nsenter``
and ``unshare``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from interop.netns import PREFIX, Holder, Network, kill_group, node_addr, sweep_stale
from interop.realcorosync import NodeSpec, corosync_binary, udpu_config

KINDS = ("corosync", "totemd")
REPO_ROOT = Path(__file__).resolve().parent.parent

_counter = itertools.count(1)
_live: set["Cluster"] = set()
_live_lock = threading.Lock()


def totemd_available() -> str | None:
    """None if pytotem's daemon can run here, else why not: ``totem.cli.totemd`` must
    import and accept a cluster configuration (``totemd -t``)."""
    env = _python_env()
    res = subprocess.run([sys.executable, "-c", "import totem.cli.totemd"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        return f"totem.cli.totemd does not import: {_last_line(res.stderr)}"
    with tempfile.TemporaryDirectory(prefix="pyt-totemd-check-") as d:
        conf = Path(d) / "corosync.conf"
        conf.write_text(cluster_config([1, 2, 3], Path(d) / "state", Path(d) / "log"))
        res = subprocess.run(daemon_argv("totemd", conf, 1)[:3] + ["-t", "-c", str(conf), "--node", "1"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        return (f"totemd -t rejects a cluster configuration (exit {res.returncode}): "
                f"{_last_line(res.stderr or res.stdout)}")
    return None


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def daemon_argv(kind: str, conffile: Path, nodeid: int) -> list[str]:
    """The one place that says how each kind of daemon is started (in the foreground)."""
    if kind == "corosync":
        binary = corosync_binary()
        if binary is None:
            raise RuntimeError("corosync is not installed")
        return [binary, "-f", "-c", str(conffile)]
    if kind == "totemd":
        return [sys.executable, "-m", "totem.cli.totemd", "-f", "-c", str(conffile),
                "--node", str(nodeid)]
    raise ValueError(f"unknown node kind {kind!r} (one of {KINDS})")


def cluster_config(nodeids: Sequence[int], state_dir: Path, logfile: Path, *,
                   token: int | None = None, totem_options: dict | None = None,
                   quorum_options: dict | None = None,
                   cluster_name: str = "pytotem-interop") -> str:
    """``interop.realcorosync.udpu_config`` with ``name: node<i>`` in each nodelist entry
    and any extra ``totem {}`` and ``quorum {}`` options."""
    text = udpu_config([NodeSpec(i, node_addr(i)) for i in nodeids], state_dir, logfile,
                       token=token, cluster_name=cluster_name)
    for i in nodeids:
        entry = f"\t\tnodeid: {i}\n"
        assert entry in text
        text = text.replace(entry, f"{entry}\t\tname: node{i}\n")
    if totem_options:
        extra = "".join(f"\t{k}: {v}\n" for k, v in totem_options.items())
        text = text.replace("totem {\n", "totem {\n" + extra, 1)
    if quorum_options:
        extra = "".join(f"\t{k}: {v}\n" for k, v in quorum_options.items())
        head = "quorum {\n\tprovider: corosync_votequorum\n"
        assert head in text
        text = text.replace(head, head + extra, 1)
    return text


@dataclass
class ClusterNode:
    nodeid: int
    kind: str
    dir: Path
    netns: str
    holder: Holder | None = None
    proc: subprocess.Popen | None = None
    paused: bool = False
    log_mark: int = 0
    """Log length when the daemon was last started: where :meth:`Cluster.wait_log` looks
    from by default."""
    pids: list[int] = field(default_factory=list)
    """Every pid started for this node (holder, daemons, tools)."""

    @property
    def name(self) -> str:
        return f"node{self.nodeid}"

    @property
    def addr(self) -> str:
        return node_addr(self.nodeid)

    @property
    def conffile(self) -> Path:
        return self.dir / "corosync.conf"

    @property
    def logfile(self) -> Path:
        return self.dir / "corosync.log"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def control_socket(self) -> Path:
        """totemd's control socket."""
        return self.state_dir / "totemd.sock"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """N daemons in namespaces; see the module doc. Nodes are addressed by nodeid (1..N)."""

    def __init__(self, tmpdir: str | Path, kinds: Sequence[str] = ("corosync",) * 3, *,
                 token: int | None = None, totem_options: dict | None = None,
                 quorum_options: dict | None = None, nodelist: Sequence[int] | None = None,
                 start: bool = True, cluster_name: str = "pytotem-interop") -> None:
        """``nodelist``: the node ids the config lists (default: all of them), so that a
        node can be added later with :meth:`write_config` and a reload."""
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"unknown node kind {k!r} (one of {KINDS})")
        if not kinds:
            raise ValueError("a cluster needs at least one node")
        self.tmpdir = Path(tmpdir).resolve()
        self.token = token
        self.totem_options = totem_options
        self.quorum_options = quorum_options
        self.cluster_name = cluster_name
        self.autostart = start
        self.prefix = f"{PREFIX}{os.getpid()}-{next(_counter)}-"
        self.network = Network(self.prefix, list(range(1, len(kinds) + 1)))
        self.nodes: dict[int, ClusterNode] = {
            i: ClusterNode(i, kind, self.tmpdir / f"node{i}", self.network.netns(i))
            for i, kind in enumerate(kinds, 1)}
        self.nodelist = list(nodelist) if nodelist is not None else list(self.nodes)
        self._tools: list[subprocess.Popen] = []
        self._open = False

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "Cluster":
        self.open()
        if self.autostart:
            try:
                self.start_all()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Create the namespaces, network and per-node directories (no daemons yet)."""
        if self._open:
            return
        sweep_stale()
        with _live_lock:
            _live.add(self)
        self._open = True
        try:
            self.network.create()
            for node in self.nodes.values():
                node.dir.mkdir(parents=True, exist_ok=True)
                node.state_dir.mkdir(exist_ok=True)
                self.write_config(node.nodeid)
                node.holder = Holder(node.netns, node.name,
                                     keep=[node.dir, REPO_ROOT, sys.prefix, sys.base_prefix],
                                     errfile=node.dir / "holder.err")
                node.holder.start()
                node.pids.append(node.holder.pid)
        except BaseException:
            self.close()
            raise

    def write_config(self, n: int, nodelist: Sequence[int] | None = None) -> None:
        """(Re)write node ``n``'s corosync.conf, listing ``nodelist`` (default: the
        cluster's current :attr:`nodelist`, which this updates)."""
        if nodelist is not None:
            self.nodelist = list(nodelist)
        node = self.node(n)
        node.conffile.write_text(cluster_config(
            self.nodelist, node.state_dir, node.logfile, token=self.token,
            totem_options=self.totem_options, quorum_options=self.quorum_options,
            cluster_name=self.cluster_name))

    def close(self) -> None:
        """Kill everything started for this cluster and delete its namespaces. Idempotent."""
        if not self._open:
            return
        for node in self.nodes.values():
            self._kill_proc(node.proc)
        for p in self._tools:
            self._kill_proc(p)
        for node in self.nodes.values():
            if node.holder is not None:
                node.holder.stop()
        self.network.destroy()  # also kills anything else still inside the namespaces
        self._open = False
        with _live_lock:
            _live.discard(self)

    _kill_proc = staticmethod(kill_group)

    @property
    def nodeids(self) -> list[int]:
        return list(self.nodes)

    def node(self, n: int) -> ClusterNode:
        try:
            return self.nodes[n]
        except KeyError:
            raise ValueError(f"no node {n} in this cluster ({self.nodeids})") from None

    def all_pids(self) -> list[int]:
        return [p for node in self.nodes.values() for p in node.pids]

    # -- daemons ---------------------------------------------------------------------

    def start(self, n: int) -> None:
        node = self.node(n)
        if node.running:
            raise RuntimeError(f"{node.name} is already running")
        assert node.holder is not None, "cluster is not open"
        node.log_mark = len(self.logs(n))
        argv = daemon_argv(node.kind, node.conffile, n)
        with open(node.dir / "stdout", "ab") as out, open(node.dir / "stderr", "ab") as err:
            node.proc = subprocess.Popen(node.holder.enter(node.dir) + argv,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=_python_env(), start_new_session=True)
        node.paused = False
        node.pids.append(node.proc.pid)

    def start_all(self) -> None:
        for n in self.nodes:
            self.start(n)

    def stop(self, n: int, timeout: float = 10.0) -> int | None:
        """SIGTERM (a graceful leave), SIGKILL after ``timeout``; the exit status."""
        node = self.node(n)
        p = node.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            if node.paused:
                os.killpg(p.pid, signal.SIGCONT)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_proc(p)
        node.paused = False
        return p.returncode

    def kill(self, n: int) -> int | None:
        """SIGKILL: a crash, no leave message."""
        node = self.node(n)
        self._kill_proc(node.proc)
        node.paused = False
        return node.proc.returncode if node.proc else None

    def restart(self, n: int, *, graceful: bool = True) -> None:
        if graceful:
            self.stop(n)
        else:
            self.kill(n)
        self.start(n)

    def pause(self, n: int) -> None:
        """SIGSTOP: the daemon stops answering (a hung process)."""
        node = self.node(n)
        if not node.running:
            raise RuntimeError(f"{node.name} is not running")
        os.killpg(node.proc.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, n: int) -> None:
        node = self.node(n)
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def pid(self, n: int) -> int | None:
        node = self.node(n)
        return node.proc.pid if node.running else None

    # -- network ---------------------------------------------------------------------

    def cut(self, a: int, b: int, *, oneway: bool = False) -> None:
        """Drop all traffic between ``a`` and ``b`` (only ``a`` -> ``b`` if ``oneway``)."""
        for n in (a, b):
            self.node(n)  # ValueError for an unknown node
        self.network.cut(a, b, oneway=oneway)

    def heal(self, a: int, b: int, *, oneway: bool = False) -> None:
        self.network.heal(a, b, oneway=oneway)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Only nodes in the same group talk; nodes named in no group are isolated.
        Replaces any earlier cuts."""
        self.network.partition([list(g) for g in groups])

    def isolate(self, n: int) -> None:
        for m in self.nodes:
            if m != n:
                self.cut(n, m)

    def heal_all(self) -> None:
        self.network.heal_all()

    # -- commands in a node ------------------------------------------------------------

    def _enter(self, n: int) -> list[str]:
        node = self.node(n)
        if node.holder is None:
            raise RuntimeError("cluster is not open")
        return node.holder.enter(node.dir)

    def run(self, n: int, argv: Sequence[str], *, timeout: float = 30.0, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` in node ``n``'s network, mount and UTS namespaces (cwd: its dir)."""
        p = self.popen(n, argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_proc(p)
            out, err = p.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
        finally:
            if p in self._tools:
                self._tools.remove(p)
        res = subprocess.CompletedProcess(list(argv), p.returncode, out, err)
        if check:
            res.check_returncode()
        return res

    def popen(self, n: int, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` in node ``n``'s namespaces in the background; killed on close."""
        kwargs.setdefault("env", _python_env())
        p = subprocess.Popen(self._enter(n) + list(argv), start_new_session=True, **kwargs)
        self._tools.append(p)
        self.node(n).pids.append(p.pid)
        return p

    def status(self, n: int) -> dict:
        """totemd's status (``totemctl status --json``): state, ring_id, members, ..."""
        node = self.node(n)
        if node.kind != "totemd":
            raise ValueError(f"{node.name} runs {node.kind}; status() is for totemd")
        res = self.run(n, [sys.executable, "-m", "totem.cli.totemctl", "status",
                           "--socket", str(node.control_socket), "--json"], timeout=10)
        if res.returncode != 0:
            raise RuntimeError(f"totemctl status on {node.name} failed ({res.returncode}): "
                               f"{res.stderr.strip()}")
        return json.loads(res.stdout)

    def members(self, n: int) -> list[int]:
        """The node ids node ``n``'s daemon currently has in its membership."""
        node = self.node(n)
        if node.kind == "totemd":
            return sorted(self.status(n)["members"])
        res = self.run(n, ["corosync-cmapctl", "-b", "runtime.members"], timeout=10)
        if res.returncode != 0:
            raise RuntimeError(f"corosync-cmapctl on {node.name} failed: {res.stderr.strip()}")
        return sorted(int(m) for m in re.findall(
            r"^runtime\.members\.(\d+)\.status \(str\) = joined$", res.stdout, re.M))

    def wait_members(self, nodes: Iterable[int], expected: Iterable[int], timeout: float = 20.0) -> None:
        """Wait until each of ``nodes`` reports exactly ``expected`` as its members."""
        nodes, want = list(nodes), sorted(expected)
        deadline = time.monotonic() + timeout
        while True:
            seen = {}
            for n in nodes:
                try:
                    seen[n] = self.members(n)
                except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                    seen[n] = f"error: {exc}"
            if all(v == want for v in seen.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"members did not become {want} within {timeout}s: {seen}")
            time.sleep(0.2)

    def wait_ring(self, nodes: Iterable[int], timeout: float = 20.0) -> dict:
        """Wait until the totemd ``nodes`` are OPERATIONAL in one ring made of exactly
        them (same ring id everywhere); return their status."""
        nodes = sorted(nodes)
        deadline = time.monotonic() + timeout
        st: dict = {}
        while time.monotonic() < deadline:
            try:
                st = {n: self.status(n) for n in nodes}
            except (RuntimeError, subprocess.TimeoutExpired, ValueError):  # a daemon still starting
                st = {}
            if st and all(s["state"] == "OPERATIONAL" and s["members"] == nodes for s in st.values()) \
                    and len({(s["ring_id"]["rep"], s["ring_id"]["seq"]) for s in st.values()}) == 1:
                return st
            time.sleep(0.05)
        raise AssertionError(f"nodes {nodes} did not form one ring: {st} "
                             + "; ".join(f"{n}: {self.logs(n)[-600:]}" for n in nodes))

    # -- logs ------------------------------------------------------------------------

    def logs(self, n: int) -> str:
        try:
            return self.node(n).logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self, n: int) -> int:
        """The current length of node ``n``'s log, for ``wait_log(after=...)``."""
        return len(self.logs(n))

    def marks(self) -> dict[int, int]:
        return {n: self.mark(n) for n in self.nodes}

    def wait_log(self, n: int, pattern: str, timeout: float = 20.0,
                 after: int | None = None) -> re.Match:
        """Wait for ``pattern`` (a regex) in node ``n``'s log after character ``after``
        (default: since the daemon was last started). Fails early if the daemon exits."""
        return self.wait_log_all(pattern, timeout, nodes=[n],
                                 after=None if after is None else {n: after})[n]

    def wait_log_all(self, pattern: str, timeout: float = 20.0, nodes: Iterable[int] | None = None,
                     after: dict[int, int] | None = None) -> dict[int, re.Match]:
        """Wait until each of ``nodes`` (default all) logged ``pattern``; fails as soon as
        one of their daemons has exited."""
        rx = re.compile(pattern)
        pending = {n: (self.node(n).log_mark if after is None or n not in after else after[n])
                   for n in (self.nodeids if nodes is None else nodes)}
        found: dict[int, re.Match] = {}
        deadline = time.monotonic() + timeout
        while True:
            for n, start in list(pending.items()):
                node = self.node(n)
                exited = node.proc is not None and node.proc.poll() is not None
                text = self.logs(n)
                m = rx.search(text, start)
                if m:
                    found[n] = m
                    del pending[n]
                elif exited:
                    raise AssertionError(
                        f"{node.name} ({node.kind}) exited ({node.proc.returncode}) before logging "
                        f"{pattern!r}:\n{text[start:][-3000:]}\n{self._stderr_tail(node)}")
            if not pending:
                return found
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {self.node(n).name} ({self.node(n).kind}):\n"
                                  f"{self.logs(n)[start:][-2000:]}" for n, start in pending.items())
                raise AssertionError(f"{[self.node(n).name for n in pending]} did not log "
                                     f"{pattern!r} within {timeout}s:\n{tails}")
            time.sleep(0.05)

    @staticmethod
    def _stderr_tail(node: ClusterNode) -> str:
        try:
            return "stderr: " + (node.dir / "stderr").read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return ""


def _close_all() -> None:
    with _live_lock:
        live = list(_live)
    for c in live:
        try:
            c.close()
        except Exception as exc:  # pragma: no cover - best effort at exit
            print(f"interop.cluster: cleanup of {c.prefix}* failed: {exc}", file=sys.stderr)


atexit.register(_close_all)


def tools_available() -> str | None:
    """None if the namespace tools are here, else what is missing."""
    missing = [t for t in ("ip", "nsenter", "unshare", "mount") if shutil.which(t) is None]
    return f"missing {', '.join(missing)}" if missing else None
