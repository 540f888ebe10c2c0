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
        self.proc = subprocess.Popen(
            [binary, "-f", "-c", str(self.conffile)],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "stderr", "wb"),
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM (corosync sends its LEAVE), then SIGKILL if it lingers."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

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
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"corosync exited ({self.proc.returncode}) before logging "
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
