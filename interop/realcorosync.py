"""Real corosync processes for interop tests: configuration, start, logs, stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def corosync_binary() -> str | None:
    return shutil.which("corosync") or (
        "/usr/sbin/corosync" if os.path.exists("/usr/sbin/corosync") else None)


@dataclass
class NodeSpec:
    nodeid: int
    addr: str


def udpu_config(nodes: list[NodeSpec], state_dir: Path, logfile: Path, *, token: int | None = None,
                quorum: bool = True, cluster_name: str = "pytotem-interop") -> str:
    """A corosync.conf for a udpu cluster of ``nodes`` (the same text for every node)."""
    totem_extra = f"\ttoken: {token}\n" if token else ""
    nodelist = "".join(
        f"\tnode {{\n\t\tring0_addr: {n.addr}\n\t\tnodeid: {n.nodeid}\n\t}}\n" for n in nodes)
    quorum_section = "quorum {\n\tprovider: corosync_votequorum\n}\n" if quorum else ""
    return (
        "totem {\n\tversion: 2\n"
        f"\tcluster_name: {cluster_name}\n\ttransport: udpu\n"
        "\tcrypto_cipher: none\n\tcrypto_hash: none\n" + totem_extra + "}\n"
        "nodelist {\n" + nodelist + "}\n" + quorum_section +
        f"system {{\n\tstate_dir: {state_dir}\n}}\n"
        "logging {\n\tto_stderr: no\n\tto_syslog: no\n\tto_logfile: yes\n"
        f"\tlogfile: {logfile}\n\ttimestamp: hires\n\tdebug: off\n}}\n"
    )


@dataclass
class RealCorosync:
    """One corosync daemon in the foreground, its config and log in ``workdir``.

    corosync finds its own nodelist entry by its interface addresses; on loopback the
    host has only 127.0.0.1 configured, so the real node is the one on 127.0.0.1.
    """

    workdir: Path
    nodes: list[NodeSpec]
    token: int | None = None
    proc: subprocess.Popen | None = None
    log_offset: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def logfile(self) -> Path:
        return self.workdir / "corosync.log"

    @property
    def conffile(self) -> Path:
        return self.workdir / "corosync.conf"

    def start(self) -> None:
        binary = corosync_binary()
        if binary is None:
            raise RuntimeError("corosync is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = self.workdir / "state"
        state.mkdir(exist_ok=True)
        self.conffile.write_text(udpu_config(self.nodes, state, self.logfile, token=self.token))
        # A private mount namespace with its own /run and /dev/shm: corosync's pid lock
        # and libqb's shared memory files then cannot clash with another corosync.
        script = ("mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
                  "mount -t tmpfs tmpfs /dev/shm && exec \"$0\" -f -c \"$1\"")
        argv = ["unshare", "--mount", "--fork", "sh", "-c", script, binary, str(self.conffile)]
        if shutil.which("unshare") is None or os.geteuid() != 0:
            argv = [binary, "-f", "-c", str(self.conffile)]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "stderr", "wb"),
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM to the whole process group (corosync sends its LEAVE), then SIGKILL."""
        self._signal_group(signal.SIGTERM)
        if not self._wait_group(5):
            self._signal_group(signal.SIGKILL)
            self._wait_group(5)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        self._wait_group(5)

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _wait_group(self, timeout: float) -> bool:
        """Wait until no process of the group is left (corosync runs under unshare)."""
        if self.proc is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                self.proc.wait()
                return True
            time.sleep(0.02)
        return False

    def running(self) -> bool:
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float, after: int = 0) -> re.Match:
        """Wait until ``pattern`` (a regex) appears in the log after character ``after``."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log(), after)
            if m:
                return m
            if self.proc is not None and not self.running():
                raise AssertionError(f"corosync exited ({self.proc.poll()}) before logging "
                                     f"{pattern!r}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"corosync did not log {pattern!r} within {timeout}s:\n"
                                     f"{self.log()[-3000:]}")
            time.sleep(0.05)

    def __enter__(self) -> "RealCorosync":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
