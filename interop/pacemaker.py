"""Pacemaker 2.1.5 on a :class:`interop.cluster.Cluster`: each node runs its messaging
daemon (corosync or totemd) and a real ``pacemakerd`` in its own namespaces.

    with PacemakerCluster(tmp_path, kinds=("totemd", "totemd", "corosync")) as pc:
        pc.start_all()                      # daemons, ring of 3, then pacemakerd everywhere
        dc = pc.wait_dc()                   # a DC that every node agrees on
        pc.add_dummy("R")
        where = pc.wait_running("R")        # "node2"
        pc.kill_messaging(2)                # SIGKILL of corosync/totemd under the resource
        ...

How Pacemaker is started (no systemd; the project's client IPC spec, §3.5): ``pacemakerd``
in the foreground, in the node's network, mount and UTS namespaces, as root, with
``PCMK_logfile=<node dir>/pacemaker.log``, ``PCMK_logpriority=info`` and
``PCMK_logfacility=none`` (nothing goes to the host's syslog). Its subdaemons run as
``hacluster``/``haclient`` (based, attrd, controld, schedulerd) or root (fenced, execd).

What Pacemaker 2.1.5 writes, and where each node gets a private copy:

* ``/var/lib/pacemaker/{cib,pengine,blackbox,cores}`` (hacluster:haclient 0750): the CIB
  (``cib.xml`` + ``.sig`` + ``cib-N.raw`` backups), the scheduler inputs, blackbox dumps;
  ``lrm/secrets`` on demand. Bind-mounted from ``<node dir>/pacemaker/lib`` (kept after
  the test for post-mortems, and across restarts of the node's Pacemaker).
* ``/var/log/pacemaker`` (hacluster:haclient 0770, ``bundles/``): the default log file,
  unused here because ``PCMK_logfile`` points into the node directory; bind-mounted from
  ``<node dir>/pacemaker/log`` anyway so nothing reaches the host's directory.
* ``/run/crm`` (created by pacemakerd), ``/run/resource-agents``, the state file of
  ``ocf:pacemaker:Dummy`` (``/var/run/Dummy-<id>.state``, ``/var/run`` = ``/run``),
  libqb's ``/dev/shm`` ring buffers and ``/tmp``: already private tmpfs mounts of every
  node (:class:`interop.netns.Holder`). Pacemaker's own IPC endpoints are abstract Unix
  sockets, private to the network namespace.

Every node starts from the same seeded CIB (:func:`seed_cib`, written with Pacemaker's own
``cibadmin``/``crm_attribute`` on a ``CIB_file``): ``stonith-enabled=false``, a short
``dc-deadtime`` and ``cluster-recheck-interval``, ``no-quorum-policy=stop`` (so a resource
that keeps running proves quorum). With the properties in the CIB from the first start,
the first DC election does not wait the default 20 s.

Cleanup: pacemakerd's subdaemons start their own sessions, so killing pacemakerd's process
group does not reach them. :meth:`PacemakerCluster.close` SIGKILLs pacemakerd first (no
respawn race), then every other process left in the node's network namespace, before
:meth:`Cluster.close <interop.cluster.Cluster.close>` deletes the namespaces (which kills
whatever remains in them).
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from interop.cluster import KINDS, Cluster, _python_env
from interop.netns import kill_group, namespace_pids

PCMK_USER = "hacluster"
PCMK_GROUP = "haclient"
DUMMY_AGENT = "/usr/lib/ocf/resource.d/pacemaker/Dummy"
TOOLS = ("pacemakerd", "crm_mon", "crmadmin", "cibadmin", "crm_resource", "crm_attribute")

DEFAULT_PROPERTIES = {
    "stonith-enabled": "false",
    "dc-deadtime": "5s",
    "cluster-recheck-interval": "30s",
    "no-quorum-policy": "stop",
}
"""Cluster properties every node's CIB starts with (see the module doc)."""

@dataclass(frozen=True)
class PrivateDir:
    """A directory Pacemaker writes, given to each node as its own copy: ``target`` in the
    node is bind-mounted from ``<node dir>/pacemaker/<sub>``, with the modes and owners
    Debian's package gives them."""
    target: str
    sub: str
    mode: int
    owned: bool
    """the top directory belongs to hacluster:haclient (else root)"""
    children: tuple[str, ...]
    child_mode: int
    """the children all belong to hacluster:haclient"""


PRIVATE = (
    PrivateDir("/var/lib/pacemaker", "lib", 0o755, False,
               ("cib", "pengine", "blackbox", "cores"), 0o750),
    PrivateDir("/var/log/pacemaker", "log", 0o770, True, ("bundles",), 0o770),
)


def pacemaker_available() -> str | None:
    """None if Pacemaker can run here, else what is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install pacemaker pacemaker-cli-utils)"
    if not os.path.exists(DUMMY_AGENT):
        return f"missing {DUMMY_AGENT} (apt-get install pacemaker-resource-agents)"
    try:
        pwd.getpwnam(PCMK_USER)
        grp.getgrnam(PCMK_GROUP)
    except KeyError:
        return f"no user {PCMK_USER} / group {PCMK_GROUP} (created by the pacemaker package)"
    for d in PRIVATE:
        if not os.path.isdir(d.target):
            return f"{d.target} does not exist (created by the pacemaker package)"
    if os.geteuid() != 0:
        return "Pacemaker in namespaces needs root"
    return None


def _pcmk_ids() -> tuple[int, int]:
    return pwd.getpwnam(PCMK_USER).pw_uid, grp.getgrnam(PCMK_GROUP).gr_gid


def seed_cib(path: Path, properties: dict[str, str]) -> None:
    """Write an empty CIB with ``properties`` (crm_config) to ``path`` using Pacemaker's
    own tools on a file (``CIB_file``), so the XML is what this Pacemaker version accepts.
    (pacemaker-based warns once that the file has no ``.sig`` digest and writes one.)"""
    res = subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True)
    path.write_text(res.stdout)
    env = dict(os.environ, CIB_file=str(path))
    for name, value in properties.items():
        subprocess.run(["crm_attribute", "--type", "crm_config", "--name", name,
                        "--update", value], env=env, capture_output=True, text=True, check=True)


@dataclass
class Status:
    """One node's view from ``crm_mon -1 --output-as=xml``."""
    viewer: int
    dc: str | None
    quorate: bool
    online: set[str]
    offline: set[str]
    resources: dict[str, list[str]]
    """resource id -> names of the nodes it is active on"""
    failures: list[dict] = field(default_factory=list)
    xml: str = ""

    @classmethod
    def parse(cls, viewer: int, text: str) -> "Status":
        root = ET.fromstring(text)
        dc_el = root.find("summary/current_dc")
        dc = None
        quorate = False
        if dc_el is not None and dc_el.get("present") == "true":
            dc = dc_el.get("name")
            quorate = dc_el.get("with_quorum") == "true"
        online, offline = set(), set()
        for n in root.iterfind("nodes/node"):
            (online if n.get("online") == "true" else offline).add(n.get("name"))
        resources = {}
        for r in root.iter("resource"):
            if r.get("id") is None:
                continue
            resources[r.get("id")] = [n.get("name") for n in r.iterfind("node")
                                      if r.get("active") == "true"]
        failures = [dict(f.attrib) for f in root.iterfind("failures/failure")]
        return cls(viewer, dc, quorate, online, offline, resources, failures, text)


class PacemakerError(AssertionError):
    pass


_live: "weakref.WeakSet[PacemakerCluster]" = weakref.WeakSet()
_live_lock = threading.Lock()


def _close_all() -> None:
    """At exit: Pacemaker first (pacemakerd before its children), then the namespaces.
    Registered after interop.cluster's hook, so it runs before it."""
    with _live_lock:
        live = list(_live)
    for pc in live:
        try:
            pc.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_close_all)


class PacemakerCluster:
    """A :class:`Cluster` whose nodes also run Pacemaker (see the module doc).

    Nodes are addressed by nodeid (1..N) as in :class:`Cluster`; Pacemaker calls them by
    their nodelist names ``node<i>``.
    """

    def __init__(self, tmpdir: str | Path, kinds: Sequence[str] = ("corosync",) * 3, *,
                 token: int | None = 1000, properties: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.cluster = Cluster(tmpdir, kinds, token=token, start=False)
        self.properties = dict(DEFAULT_PROPERTIES, **(properties or {}))
        self.env = dict(env or {})
        self.pcmk: dict[int, subprocess.Popen | None] = {n: None for n in self.cluster.nodes}
        self.pcmk_mark: dict[int, int] = {n: 0 for n in self.cluster.nodes}
        """pacemaker.log length when pacemakerd was last started."""

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "PacemakerCluster":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Namespaces, network and the private Pacemaker directories (no daemons yet)."""
        with _live_lock:
            _live.add(self)
        self.cluster.open()
        try:
            uid, gid = _pcmk_ids()
            with tempfile.TemporaryDirectory(prefix="pyt-cib-") as d:
                template = Path(d) / "cib.xml"
                seed_cib(template, self.properties)
                for node in self.cluster.nodes.values():
                    base = node.dir / "pacemaker"
                    for d in PRIVATE:
                        top = base / d.sub
                        top.mkdir(parents=True, exist_ok=True)
                        os.chmod(top, d.mode)
                        if d.owned:
                            os.chown(top, uid, gid)
                        for child in d.children:
                            (top / child).mkdir(exist_ok=True)
                            os.chown(top / child, uid, gid)
                            os.chmod(top / child, d.child_mode)
                        node.holder.bind_mount(top, d.target)
                    cib = base / "lib" / "cib" / "cib.xml"
                    if not cib.exists():
                        shutil.copyfile(template, cib)
                        os.chown(cib, uid, gid)
                        os.chmod(cib, 0o600)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every Pacemaker process and daemon, delete the namespaces. Idempotent."""
        for n in self.cluster.nodes:
            try:
                self.kill_pacemaker(n)
            except Exception:  # noqa: BLE001 - best effort, Cluster.close kills the rest
                pass
        self.cluster.close()
        with _live_lock:
            _live.discard(self)

    @property
    def nodeids(self) -> list[int]:
        return self.cluster.nodeids

    def name(self, n: int) -> str:
        return self.cluster.node(n).name

    def nodeid(self, name: str) -> int:
        m = re.fullmatch(r"node(\d+)", name)
        if not m or int(m.group(1)) not in self.cluster.nodes:
            raise ValueError(f"no node named {name!r}")
        return int(m.group(1))

    def pacemaker_log(self, n: int) -> Path:
        return self.cluster.node(n).dir / "pacemaker.log"

    def pacemaker_logs(self, n: int, since_start: bool = False) -> str:
        try:
            text = self.pacemaker_log(n).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[self.pcmk_mark[n]:] if since_start else text

    # -- messaging daemons -----------------------------------------------------------

    def start_messaging(self, n: int) -> None:
        self.cluster.start(n)

    def kill_messaging(self, n: int) -> None:
        """SIGKILL of the node's corosync/totemd: no leave message."""
        self.cluster.kill(n)

    def stop_messaging(self, n: int, timeout: float = 15.0) -> int | None:
        return self.cluster.stop(n, timeout)

    def switch_kind(self, n: int, kind: str) -> None:
        """Make node ``n`` run ``kind`` ("corosync" or "totemd") from its next start, with
        the same corosync.conf and state directory: what a migration does on a real host.
        Its messaging daemon must be stopped."""
        node = self.cluster.node(n)
        if kind not in KINDS:
            raise ValueError(f"unknown node kind {kind!r} (one of {KINDS})")
        if node.running:
            raise RuntimeError(f"{node.name}'s {node.kind} is still running")
        node.kind = kind

    def wait_ring(self, nodes: Iterable[int], timeout: float = 30.0) -> None:
        """Each of ``nodes`` has exactly ``nodes`` as members and has finished a service
        synchronisation since its daemon started (what Pacemaker's clients need)."""
        nodes = sorted(nodes)
        self.cluster.wait_log_all(r"Completed service synchronization, ready to provide service",
                                  timeout, nodes=nodes)
        self.cluster.wait_members(nodes, nodes, timeout)

    # -- pacemaker -------------------------------------------------------------------

    def start_pacemaker(self, n: int) -> None:
        if self.pcmk_running(n):
            raise RuntimeError(f"pacemakerd already runs on {self.name(n)}")
        node = self.cluster.node(n)
        env = _python_env()
        env.update(PCMK_logfile=str(self.pacemaker_log(n)), PCMK_logpriority="info",
                   PCMK_logfacility="none")
        env.update(self.env)
        self.pcmk_mark[n] = len(self.pacemaker_logs(n))
        with open(node.dir / "pacemakerd.out", "ab") as out:
            self.pcmk[n] = self.cluster.popen(n, ["pacemakerd"], env=env,
                                              stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT)

    def pcmk_running(self, n: int) -> bool:
        p = self.pcmk[n]
        return p is not None and p.poll() is None

    def stop_pacemaker(self, n: int, timeout: float = 60.0) -> int | None:
        """SIGTERM to pacemakerd, as ``systemctl stop pacemaker`` does: the node's
        resources are moved away and the subdaemons exit. Its exit status (SIGKILL and
        a :class:`PacemakerError` after ``timeout``)."""
        p = self.pcmk[n]
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_pacemaker(n)
                raise PacemakerError(f"pacemakerd on {self.name(n)} did not stop within "
                                     f"{timeout}s:\n{self.pacemaker_logs(n)[-3000:]}") from None
        # pacemakerd waits for its subdaemons before it exits: nothing may be left
        deadline = time.monotonic() + 3.0
        while self._pacemaker_pids(n) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {pid: _exe(pid) for pid in self._pacemaker_pids(n)}
        self._reap_leftovers(n)
        if left:
            raise PacemakerError(f"pacemakerd on {self.name(n)} exited ({p.returncode}) but "
                                 f"left {left} running (killed now)")
        return p.returncode

    def stop_pacemaker_all(self, timeout: float = 60.0) -> dict[int, int | None]:
        """SIGTERM to every pacemakerd at once (a whole-cluster stop: no resource moves)."""
        for n in self.nodeids:
            if self.pcmk_running(n):
                self.pcmk[n].send_signal(signal.SIGTERM)
        return {n: self.stop_pacemaker(n, timeout) for n in self.nodeids}

    def kill_pacemaker(self, n: int) -> None:
        """SIGKILL pacemakerd, then every other Pacemaker process of the node."""
        kill_group(self.pcmk[n])
        self._reap_leftovers(n)

    def _reap_leftovers(self, n: int, timeout: float = 5.0) -> list[int]:
        """SIGKILL whatever still runs in node ``n``'s network namespace besides its
        namespace holder and messaging daemon: Pacemaker subdaemons (own sessions) and
        resource agents. pacemakerd itself must be gone already (no respawns)."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while True:
            pids = self._pacemaker_pids(n)
            if not pids or time.monotonic() > deadline:
                return killed
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def _pacemaker_pids(self, n: int) -> list[int]:
        """Pacemaker's processes (and resource agents) in node ``n``'s network namespace."""
        node = self.cluster.node(n)
        keep = {node.holder.pid if node.holder else -1,
                node.proc.pid if node.running else -1}
        return [p for p in namespace_pids(node.netns) if p not in keep and _is_pacemaker(p)]

    def start_all(self, timeout: float = 60.0) -> None:
        """Messaging daemons on every node, a ring of all, then pacemakerd on every node."""
        for n in self.nodeids:
            self.start_messaging(n)
        self.wait_ring(self.nodeids, timeout)
        for n in self.nodeids:
            self.start_pacemaker(n)

    def stop_node(self, n: int, timeout: float = 60.0) -> tuple[int | None, int | None]:
        """Graceful stop: pacemakerd SIGTERM, then the messaging daemon SIGTERM."""
        rc = self.stop_pacemaker(n, timeout)
        return rc, self.stop_messaging(n)

    def stop_all(self, timeout: float = 60.0) -> dict[int, int | None]:
        rcs = self.stop_pacemaker_all(timeout)
        for n in self.nodeids:
            self.stop_messaging(n)
        return rcs

    # -- queries ---------------------------------------------------------------------

    def run(self, n: int, argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self.cluster.run(n, argv, timeout=timeout)

    def status(self, n: int, timeout: float = 15.0) -> Status:
        """``crm_mon -1 --output-as=xml`` on node ``n``; PacemakerError if it fails."""
        res = self.run(n, ["crm_mon", "-1", "--output-as=xml", "--inactive"], timeout)
        if res.returncode != 0 or not res.stdout.lstrip().startswith("<"):
            raise PacemakerError(f"crm_mon on {self.name(n)} failed ({res.returncode}): "
                                 f"{(res.stderr or res.stdout).strip()[-500:]}")
        return Status.parse(n, res.stdout)

    def crm_mon_text(self, n: int) -> str:
        res = self.run(n, ["crm_mon", "-1"])
        return res.stdout + res.stderr

    def dc(self, n: int) -> str | None:
        """``crmadmin -D``: the DC as node ``n``'s controller knows it."""
        res = self.run(n, ["crmadmin", "-D", "-t", "5000"], 15)
        m = re.search(r"Designated Controller is: (\S+)", res.stdout)
        return m.group(1) if m else None

    def locate(self, rsc: str, n: int | None = None) -> list[str]:
        """``crm_resource --resource R --locate``: the nodes ``rsc`` runs on."""
        viewer = n if n is not None else self._any_pacemaker()
        res = self.run(viewer, ["crm_resource", "--resource", rsc, "--locate"])
        if res.returncode not in (0,):
            raise PacemakerError(f"crm_resource --locate on {self.name(viewer)} failed "
                                 f"({res.returncode}): {(res.stderr or res.stdout).strip()}")
        return re.findall(r"is running on: (\S+)", res.stdout)

    def property(self, name: str, n: int | None = None) -> str | None:
        viewer = n if n is not None else self._any_pacemaker()
        res = self.run(viewer, ["crm_attribute", "--type", "crm_config", "--name", name,
                                "--query", "--quiet"])
        return res.stdout.strip() if res.returncode == 0 else None

    def set_properties(self, props: dict[str, str], n: int | None = None) -> None:
        """Change cluster properties in the running cluster (through node ``n``)."""
        viewer = n if n is not None else self._any_pacemaker()
        for name, value in props.items():
            self._retry(viewer, ["crm_attribute", "--type", "crm_config", "--name", name,
                                 "--update", value])

    def add_dummy(self, rsc: str = "R", monitor: str = "5s", *, prefer: str | None = None,
                  score: int = 100, n: int | None = None) -> None:
        """Create an ``ocf:pacemaker:Dummy`` primitive with a recurring monitor and, with
        ``prefer``, a location constraint giving node ``prefer`` a ``score`` (the resource
        starts there and fails back when that node returns)."""
        viewer = n if n is not None else self._any_pacemaker()
        constraint = ""
        if prefer is not None:
            self.nodeid(prefer)  # ValueError for an unknown node
            constraint = (f'<constraints><rsc_location id="{rsc}-prefers-{prefer}" rsc="{rsc}" '
                          f'node="{prefer}" score="{score}"/></constraints>')
        # one update for both (the constraint must name an existing resource), as a
        # merge (--modify) so that a retry after an unanswered attempt is harmless
        xml = (f'<configuration><resources><primitive id="{rsc}" class="ocf" '
               f'provider="pacemaker" type="Dummy"><operations><op id="{rsc}-monitor-{monitor}" '
               f'name="monitor" interval="{monitor}" timeout="20s"/></operations></primitive>'
               f'</resources>{constraint}</configuration>')
        self._retry(viewer, ["cibadmin", "--modify", "--scope", "configuration", "--xml-text", xml])

    def settle(self, n: int | None = None, timeout: float = 60.0) -> None:
        """``crm_resource --wait``: block until the scheduler has nothing left to do
        (probes of a joined node, recoveries, moves); PacemakerError if it does not."""
        viewer = n if n is not None else self._any_pacemaker()
        secs = max(1, int(timeout))
        t0 = time.monotonic()
        res = self.run(viewer, ["crm_resource", "--wait", f"--timeout={secs}s"], timeout + 15)
        if res.returncode != 0:
            raise PacemakerError(f"cluster did not settle within {time.monotonic() - t0:.0f}s "
                                 f"(crm_resource --wait on {self.name(viewer)}: {res.returncode}) "
                                 f"{(res.stderr or res.stdout).strip()[-800:]}")

    def _retry(self, n: int, argv: list[str], timeout: float = 30.0) -> None:
        """Run a CIB-changing tool until it succeeds (the CIB may be briefly unavailable
        while a DC is elected); PacemakerError with its output after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.run(n, argv)
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PacemakerError(f"{' '.join(argv)} on {self.name(n)} failed "
                                     f"({res.returncode}): {(res.stderr or res.stdout).strip()}")
            time.sleep(0.5)

    def _any_pacemaker(self) -> int:
        for n in self.nodeids:
            if self.pcmk_running(n):
                return n
        raise RuntimeError("no node runs Pacemaker")

    # -- waiting ---------------------------------------------------------------------

    def wait_for(self, what: str, check, nodes: Iterable[int] | None = None,
                 timeout: float = 60.0, interval: float = 1.0) -> dict[int, Status]:
        """Poll ``crm_mon`` on ``nodes`` (default: those running pacemakerd) until
        ``check(statuses)`` is true; PacemakerError with every view and log tail if not."""
        nodes = list(nodes) if nodes is not None else [n for n in self.nodeids if self.pcmk_running(n)]
        deadline = time.monotonic() + timeout
        last: dict[int, Status | str] = {}
        while True:
            for n in nodes:
                if not self.pcmk_running(n):
                    raise PacemakerError(f"waiting for {what}: pacemakerd on {self.name(n)} exited "
                                         f"({self.pcmk[n].returncode if self.pcmk[n] else None})"
                                         + self.diagnostics([n]))
                try:
                    last[n] = self.status(n)
                except (PacemakerError, subprocess.TimeoutExpired) as exc:
                    last[n] = f"error: {str(exc)[-300:]}"
            statuses = {n: s for n, s in last.items() if isinstance(s, Status)}
            if len(statuses) == len(nodes):
                try:
                    ok = check(statuses)
                except (KeyError, ValueError):
                    ok = False
                if ok:
                    return statuses
            if time.monotonic() > deadline:
                views = "\n".join(f"{self.name(n)}: {_summary(s)}" for n, s in last.items())
                raise PacemakerError(f"{what} not reached within {timeout}s:\n{views}"
                                     + self.diagnostics(nodes))
            time.sleep(interval)

    def wait_dc(self, nodes: Iterable[int] | None = None, online: Iterable[int] | None = None,
                timeout: float = 60.0) -> str:
        """Every node of ``nodes`` sees the same DC, quorum and exactly ``online``
        (default: ``nodes``) online. The DC's name."""
        nodes = sorted(nodes) if nodes is not None else [n for n in self.nodeids if self.pcmk_running(n)]
        want = {self.name(n) for n in (online if online is not None else nodes)}

        def check(st: dict[int, Status]) -> bool:
            dcs = {s.dc for s in st.values()}
            return (len(dcs) == 1 and None not in dcs and all(s.quorate for s in st.values())
                    and all(s.online == want for s in st.values()))

        st = self.wait_for(f"one DC with quorum and {sorted(want)} online", check, nodes, timeout)
        return next(iter(st.values())).dc

    def wait_running(self, rsc: str, nodes: Iterable[int] | None = None,
                     allowed: Iterable[str] | None = None, timeout: float = 60.0,
                     settle: bool = True) -> str:
        """``rsc`` active on exactly one node (one of ``allowed`` if given) in every view
        of ``nodes``, and still so once the cluster has settled (:meth:`settle`); that
        node's name."""
        allowed = set(allowed) if allowed is not None else None

        def check(st: dict[int, Status]) -> bool:
            where = {tuple(s.resources.get(rsc, [])) for s in st.values()}
            if len(where) != 1:
                return False
            on = next(iter(where))
            return len(on) == 1 and (allowed is None or on[0] in allowed)

        what = f"{rsc} running on one node" + (f" of {sorted(allowed)}" if allowed else "")
        nodes = list(nodes) if nodes is not None else None
        t0 = time.monotonic()
        st = self.wait_for(what, check, nodes, timeout)
        if settle:
            # the views may show a state the scheduler is about to change (a probe of a
            # rejoined node still to come): wait until it is done, then look again
            self.settle(nodes[0] if nodes else None,
                        max(5.0, timeout - (time.monotonic() - t0)))
            st = self.wait_for(what + " after the cluster settled", check, nodes, 10)
        return next(iter(st.values())).resources[rsc][0]

    def diagnostics(self, nodes: Iterable[int] | None = None, chars: int = 2500) -> str:
        """Log tails (pacemaker.log and the messaging daemon's log) for failure messages."""
        out = []
        for n in (nodes if nodes is not None else self.nodeids):
            node = self.cluster.node(n)
            out.append(f"\n--- {node.name} ({node.kind}) pacemaker.log:\n"
                       f"{self.pacemaker_logs(n)[-chars:]}"
                       f"\n--- {node.name} ({node.kind}) {node.logfile.name}:\n"
                       f"{self.cluster.logs(n)[-chars:]}")
        return "".join(out)


def _summary(s: "Status | str") -> str:
    if isinstance(s, str):
        return s
    return (f"dc={s.dc} quorate={s.quorate} online={sorted(s.online)} offline={sorted(s.offline)} "
            f"resources={s.resources} failures={len(s.failures)}")


_PCMK_EXES = re.compile(r"/(pacemakerd|pacemaker-\w+|crm_\w+|cibadmin|crmadmin|attrd_updater)$")


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"


def _is_pacemaker(pid: int) -> bool:
    """True for Pacemaker's daemons and tools and for resource agents they run (anything
    but the messaging daemon and the namespace holder, which the caller excludes)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    if _PCMK_EXES.search(exe):
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"/ocf/resource.d/" in cmdline or b"/ocf/lib/" in cmdline
