"""Linux namespaces for interop clusters: a private network, mount and UTS namespace per node.

Everything here shells out to iproute2 (``ip``) and util-linux (``nsenter``, ``unshare``,
``mount``) and needs root. The pieces:

* :class:`Network` -- one network namespace per node plus one for a bridge; node ``i``
  has ``eth0`` (MAC ``02:00:c6:12:00:<i>``, address ``198.18.0.<i>/24``) cabled by a veth
  pair to port ``n<i>`` of bridge ``br0`` in the bridge namespace. Interface names live
  inside the namespaces, so several networks never clash. Links between nodes are cut
  per direction with a permanent neighbour entry that maps the peer's address to a MAC
  nobody has (:data:`SINK_MAC`): the frames leave, the bridge floods them, every node
  drops them as "other host" -- a silent loss, like a cable pulled between two
  switches, with no error for the sender and no netfilter or ``tc`` needed (this
  machine has neither nftables/iptables nor ``tc`` netem or drop actions).
* :class:`Holder` -- a process that owns a node's mount and UTS namespaces: started in
  the node's network namespace, it unshares mount+UTS, mounts private tmpfs on
  ``/run``, ``/dev/shm``, ``/tmp`` and ``/var/lib/corosync`` (re-binding the directories
  the node must still see, e.g. its own work directory when that is under ``/tmp``),
  remounts ``/sys`` for its network namespace, sets the hostname, then sleeps. Every
  command for the node (daemon, tools) enters the holder's namespaces with ``nsenter``.
  :meth:`Holder.bind_mount` adds more private directories later (e.g. Pacemaker's
  ``/var/lib/pacemaker`` from the node's work directory, see :mod:`interop.pacemaker`).
* :func:`sweep_stale` -- deletes namespaces named ``<prefix><pid>-...`` whose pid is gone
  (left behind by a test process that was killed), after killing what runs in them.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "pyt-"
"""Every namespace the harness creates is named ``pyt-<pid of the creating process>-...``."""

SUBNET = "198.18.0"
SINK_MAC = "02:00:c6:12:ff:fe"
"""The MAC a cut link's neighbour entry points to: no interface has it."""

PRIVATE_DIRS = ("/run", "/dev/shm", "/tmp", "/var/lib/corosync")
"""Mount points that get a fresh tmpfs in each node's mount namespace."""


class NetnsError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def list_namespaces() -> list[str]:
    res = ip("netns", "list", check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def namespace_pids(name: str) -> list[int]:
    res = ip("netns", "pids", name, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_namespace_processes(name: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process in network namespace ``name``; wait (briefly) until gone."""
    pids = namespace_pids(name)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and namespace_pids(name):
        time.sleep(0.02)
    return pids


def delete_namespace(name: str) -> None:
    """Kill what runs in ``name`` and delete it (its veth ends and bridge go with it)."""
    kill_namespace_processes(name)
    ip("netns", "del", name, check=False)


def sweep_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces ``<prefix><pid>-...`` whose creating process no longer exists."""
    rx = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    swept = []
    for name in list_namespaces():
        m = rx.match(name)
        if m and not pid_alive(int(m.group(1))):
            delete_namespace(name)
            swept.append(name)
    return swept


def node_addr(nodeid: int) -> str:
    return f"{SUBNET}.{nodeid}"


def node_mac(nodeid: int) -> str:
    return f"02:00:c6:12:{nodeid >> 8:02x}:{nodeid & 0xff:02x}"


class Network:
    """A bridge namespace and one network namespace per node, cabled by veth pairs."""

    def __init__(self, prefix: str, nodeids: list[int]) -> None:
        for n in nodeids:
            if not 1 <= n <= 254:
                raise ValueError(f"nodeid {n} does not fit {SUBNET}.0/24")
        self.prefix = prefix
        self.nodeids = list(nodeids)
        self.bridge_ns = f"{prefix}br"
        self.created: list[str] = []
        self.cuts: set[tuple[int, int]] = set()
        """Directed (from, to) pairs whose traffic is dropped."""

    def netns(self, nodeid: int) -> str:
        return f"{self.prefix}n{nodeid}"

    def create(self) -> None:
        try:
            self._add_ns(self.bridge_ns)
            ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
               "forward_delay", "0")
            ip("-n", self.bridge_ns, "link", "set", "br0", "up")
            for n in self.nodeids:
                ns = self.netns(n)
                self._add_ns(ns)
                ip("link", "add", "eth0", "netns", ns, "address", node_mac(n), "type", "veth",
                   "peer", "name", f"n{n}", "netns", self.bridge_ns)
                ip("-n", self.bridge_ns, "link", "set", f"n{n}", "master", "br0", "up")
                ip("-n", ns, "addr", "add", f"{node_addr(n)}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.created.append(name)

    def destroy(self) -> None:
        for name in reversed(self.created):
            delete_namespace(name)
        self.created.clear()
        self.cuts.clear()

    # -- cuts ------------------------------------------------------------------------

    def drop(self, src: int, dst: int) -> None:
        """Drop everything ``src`` sends to ``dst`` (one direction)."""
        if src == dst or (src, dst) in self.cuts:
            return
        ip("-n", self.netns(src), "neigh", "replace", node_addr(dst), "lladdr", SINK_MAC,
           "dev", "eth0", "nud", "permanent")
        self.cuts.add((src, dst))

    def undrop(self, src: int, dst: int) -> None:
        if (src, dst) not in self.cuts:
            return
        ip("-n", self.netns(src), "neigh", "del", node_addr(dst), "dev", "eth0", check=False)
        self.cuts.discard((src, dst))

    def cut(self, a: int, b: int, *, oneway: bool = False) -> None:
        self.drop(a, b)
        if not oneway:
            self.drop(b, a)

    def heal(self, a: int, b: int, *, oneway: bool = False) -> None:
        self.undrop(a, b)
        if not oneway:
            self.undrop(b, a)

    def partition(self, groups: list[list[int]]) -> None:
        """Exactly ``groups`` can talk within themselves; nodes in no group are alone."""
        group_of: dict[int, int] = {}
        for gi, g in enumerate(groups):
            for n in g:
                if n not in self.nodeids:
                    raise ValueError(f"no node {n}")
                if n in group_of:
                    raise ValueError(f"node {n} is in two groups")
                group_of[n] = gi
        for n in self.nodeids:
            group_of.setdefault(n, -n)
        want = {(a, b) for a in self.nodeids for b in self.nodeids
                if a != b and group_of[a] != group_of[b]}
        for a, b in sorted(self.cuts - want):
            self.undrop(a, b)
        for a, b in sorted(want - self.cuts):
            self.drop(a, b)

    def heal_all(self) -> None:
        for a, b in sorted(self.cuts):
            self.undrop(a, b)


_HOLDER_SCRIPT = r"""
import os, subprocess, sys
hostname = sys.argv[1]
keep = [k for k in sys.argv[2].split("\x1f") if k]
targets = [t for t in sys.argv[3].split("\x1f") if t]
def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")
def sh(*argv):
    r = subprocess.run(argv, capture_output=True, text=True, pass_fds=fds)
    if r.returncode:
        sys.exit(f"{' '.join(argv)}: {r.stderr.strip()}")
targets = [t for t in targets if os.path.isdir(t)]
rebind = [k for k in keep if any(under(k, t) for t in targets)]
fds = [os.open(k, os.O_RDONLY | os.O_DIRECTORY) for k in rebind]
subprocess.run(["mount", "-t", "sysfs", "sysfs", "/sys"], capture_output=True)
for t in targets:
    mode = "1777" if t in ("/tmp", "/dev/shm") else "0755"
    sh("mount", "-t", "tmpfs", "-o", f"mode={mode}", "pyt-" + t.strip("/").replace("/", "-"), t)
for k, fd in zip(rebind, fds):
    os.makedirs(k, exist_ok=True)
    sh("mount", "--no-canonicalize", "--rbind", f"/proc/self/fd/{fd}", k)
for fd in fds:
    os.close(fd)
with open("/proc/sys/kernel/hostname", "w") as f:
    f.write(hostname)
print("ready", flush=True)
os.execvp("sleep", ["sleep", "infinity"])
"""


class Holder:
    """The process that owns a node's mount and UTS namespaces (see the module doc)."""

    def __init__(self, netns: str, hostname: str, keep: list[str | Path], errfile: Path) -> None:
        self.netns = netns
        self.hostname = hostname
        self.keep = [os.path.realpath(k) for k in keep]
        self.errfile = errfile
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> None:
        targets = [os.path.realpath(t) for t in PRIVATE_DIRS]
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                "unshare", "--mount", "--uts", "--propagation", "private", "--",
                sys.executable, "-I", "-c", _HOLDER_SCRIPT,
                self.hostname, "\x1f".join(self.keep), "\x1f".join(targets)]
        with open(self.errfile, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        if sel.select(timeout):
            line = self.proc.stdout.readline()
        sel.close()
        self.proc.stdout.close()
        if line.strip() != b"ready":
            self.stop()
            raise NetnsError(f"namespace holder for {self.netns} did not start: "
                             f"{self.errfile.read_text(errors='replace').strip()}")

    def enter(self, cwd: str | Path | None = None) -> list[str]:
        """The ``nsenter`` prefix that runs a command in this node's namespaces."""
        argv = ["nsenter", "-t", str(self.pid), "--net", "--mount", "--uts"]
        if cwd is not None:
            argv.append(f"--wd={cwd}")
        return argv + ["--"]

    def bind_mount(self, source: str | Path, target: str | Path) -> None:
        """Mount host directory ``source`` over ``target`` in this node's mount namespace
        only (the host and the other nodes keep seeing their own ``target``): a private,
        persistent copy of e.g. ``/var/lib/pacemaker`` kept in the node's work directory.
        ``source`` must be visible in the namespace too (e.g. under the node's work
        directory, which the holder keeps); ``target`` must already exist (nothing is
        created on the host's file system)."""
        source, target = os.path.realpath(source), os.path.realpath(target)
        if not os.path.isdir(source):
            raise NetnsError(f"bind mount source {source} is not a directory")
        if not os.path.isdir(target):
            raise NetnsError(f"bind mount target {target} does not exist")
        res = subprocess.run(["nsenter", "-t", str(self.pid), "--mount", "--",
                              "mount", "--no-canonicalize", "--bind", source, target],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise NetnsError(f"mount --bind {source} {target} in {self.netns} failed: "
                             f"{res.stderr.strip()}")

    def stop(self) -> None:
        kill_group(self.proc)


def kill_group(p: subprocess.Popen | None) -> None:
    """SIGKILL a process started with its own session, and reap it."""
    if p is None:
        return
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass
