"""``totemctl demo``: three real totemd processes on loopback, a crash, and a rejoin.

Needs no root: the daemons bind 127.0.0.1, .2 and .3 on the totem port, keep their
state in a temporary directory, and are stopped (and the directory removed) at the end,
also on Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODES = {1: "127.0.0.1", 2: "127.0.0.2", 3: "127.0.0.3"}


def _config(workdir: Path, nodeid: int, port: int, token: int | None) -> Path:
    d = workdir / f"node{nodeid}"
    d.mkdir(parents=True, exist_ok=True)
    nodelist = "".join(
        f"\tnode {{\n\t\tring0_addr: {addr}\n\t\tnodeid: {n}\n\t\tname: node{n}\n\t}}\n"
        for n, addr in NODES.items())
    token_line = f"\ttoken: {token}\n" if token else ""
    text = (
        "totem {\n\tversion: 2\n\tcluster_name: demo\n\ttransport: udpu\n"
        f"\tinterface {{\n\t\tmcastport: {port}\n\t}}\n{token_line}}}\n"
        f"nodelist {{\n{nodelist}}}\n"
        f"system {{\n\tstate_dir: {d}\n}}\n"
        "logging {\n\tto_stderr: no\n\tto_logfile: yes\n"
        f"\tlogfile: {d / 'totemd.log'}\n\ttimestamp: hires\n}}\n"
    )
    conf = d / "corosync.conf"
    conf.write_text(text)
    return conf


class _Daemon:
    def __init__(self, workdir: Path, nodeid: int, port: int, token: int | None) -> None:
        self.nodeid = nodeid
        self.conf = _config(workdir, nodeid, port, token)
        self.dir = self.conf.parent
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "totem.cli.totemd", "-f", "-c", str(self.conf), "--node", str(self.nodeid), "--ipc", "none"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr", "ab"), start_new_session=True)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 5) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def status(self) -> dict | None:
        from ..node import poll_status

        return poll_status(self.dir / "totemd.sock")


def _ring(st: dict | None) -> str:
    if not st:
        return "down"
    r = st["ring_id"]
    return f"{st['state'].lower():<11} ring {r['rep']:x}.{r['seq']:x} members {st['members']}"


def _wait(daemons, want, timeout: float, say) -> float:
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        states = {d.nodeid: d.status() for d in daemons}
        view = tuple(_ring(states[n]) for n in sorted(states))
        if view != last:
            for n in sorted(states):
                say(f"    node {n}: {_ring(states[n])}")
            last = view
        if want(states):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"no result after {timeout:.0f}s")


def run(port: int = 5405, token: int | None = None, out=print) -> int:
    if sys.platform != "linux":
        out("the demo needs Linux (127.0.0.2 and .3 are loopback addresses there)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="totemd-demo-"))
    daemons = [_Daemon(workdir, n, port, token) for n in NODES]
    all_three = lambda states: all(  # noqa: E731
        s and s["state"] == "OPERATIONAL" and s["members"] == [1, 2, 3] for s in states.values()) and len(
        {json.dumps(s["ring_id"]) for s in states.values()}) == 1
    try:
        out(f"Starting three totemd daemons on 127.0.0.1-3 port {port} (state in {workdir})")
        for d in daemons:
            d.start()
        took = _wait(daemons, all_three, 30, out)
        out(f"  one ring of three after {took:.2f}s")

        out("Killing node 3 with SIGKILL: the others notice after token + consensus")
        daemons[2].signal(signal.SIGKILL)
        daemons[2].wait()
        took = _wait(daemons[:2], lambda st: all(s and s["members"] == [1, 2] and s["state"] == "OPERATIONAL"
                                                 for s in st.values()), 60, out)
        out(f"  new ring of nodes 1 and 2 after {took:.2f}s")

        out("Restarting node 3: it rejoins")
        daemons[2].start()
        took = _wait(daemons, all_three, 30, out)
        out(f"  node 3 is back in the ring after {took:.2f}s")
        log = (workdir / "node1" / "totemd.log").read_text()
        out("From node 1's log:")
        for line in log.splitlines():
            if "A new membership" in line or "processor failed" in line:
                out("    " + line)
        return 0
    except TimeoutError as exc:
        out(f"demo failed: {exc}; logs are in {workdir}")
        workdir = None  # keep them
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for d in daemons:
            d.signal(signal.SIGTERM)
        for d in daemons:
            d.wait()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        out("All daemons stopped" + (" and the temporary state removed." if workdir else "."))
