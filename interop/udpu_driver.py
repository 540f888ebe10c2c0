"""A minimal udpu shell for pure stacks, for interop tests until totemd exists.

Runs one or more :class:`~totem.stack.TotemStack` nodes in a background thread, each
on a real UDP socket bound to its nodelist address, so that real corosync nodes can
talk to them. It only moves bytes and timers; all protocol decisions are the stack's.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from totem.srp import Broadcast, ConfigurationChanged, LogMessage, SrpConfig, StateChanged
from totem.stack import MessageReceived, TotemStack


@dataclass
class DrivenNode:
    nodeid: int
    addr: str
    stack: TotemStack
    sock: socket.socket
    events: list = field(default_factory=list)
    """(monotonic time, event) for configurations, messages and notable logs."""


class UdpuDriver:
    def __init__(self, nodelist: dict[int, str], local: list[int], port: int = 5405,
                 config: SrpConfig | None = None) -> None:
        self.nodelist = nodelist
        self.port = port
        self.config = config or SrpConfig.derive(len(nodelist))
        self.nodes: dict[int, DrivenNode] = {}
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        for nid in local:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((nodelist[nid], port))
            s.setblocking(False)
            node = DrivenNode(nid, nodelist[nid], TotemStack(nid, self.config), s)
            self.nodes[nid] = node
            self.sel.register(s, selectors.EVENT_READ, node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        with self.lock:
            for n in self.nodes.values():
                n.stack.start(self.now())
                self._flush(n)
        self._thread.start()

    def _flush(self, n: DrivenNode) -> None:
        for d in n.stack.datagrams_to_send():
            dests = self.nodelist.values() if isinstance(d, Broadcast) else (self.nodelist[d.nodeid],)
            for addr in dests:
                try:
                    n.sock.sendto(d.data, (addr, self.port))
                except OSError:
                    pass
        while (ev := n.stack.next_event()) is not None:
            if isinstance(ev, (ConfigurationChanged, MessageReceived)) or (
                    isinstance(ev, LogMessage) and ev.level != "debug"):
                n.events.append((self.now(), ev))
            elif isinstance(ev, StateChanged):
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                deadlines = [t for n in self.nodes.values() if (t := n.stack.get_timer()) is not None]
            timeout = 0.05 if not deadlines else max(0.0, min(0.05, min(deadlines) - self.now()))
            for key, _ in self.sel.select(timeout):
                node: DrivenNode = key.data
                while True:
                    try:
                        data, _addr = node.sock.recvfrom(70000)
                    except (BlockingIOError, OSError):
                        break
                    with self.lock:
                        try:
                            node.stack.receive_datagram(data, self.now())
                        except Exception as exc:  # noqa: BLE001 - recorded for the test
                            self.errors.append(f"node {node.nodeid}: {exc!r}")
                        self._flush(node)
            with self.lock:
                now = self.now()
                for n in self.nodes.values():
                    t = n.stack.get_timer()
                    if t is not None and t <= now:
                        n.stack.handle_timer(now)
                        self._flush(n)

    def call(self, fn, *args):
        """Run ``fn(*args)`` under the driver's lock (e.g. to send or leave)."""
        with self.lock:
            result = fn(*args)
            for n in self.nodes.values():
                self._flush(n)
            return result

    def wait_for(self, predicate, timeout: float, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                v = predicate()
            if v:
                return v
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def leave(self, nid: int) -> None:
        with self.lock:
            n = self.nodes[nid]
            n.stack.leave(self.now())
            self._flush(n)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for n in self.nodes.values():
            try:
                self.sel.unregister(n.sock)
            except (KeyError, ValueError):
                pass
            n.sock.close()

    def __enter__(self) -> "UdpuDriver":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
