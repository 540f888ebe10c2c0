"""One totemd node on trio: the pure stack wired to the udpu transport, timers and logs.

The protocol decisions all live in :class:`~totem.stack.TotemStack` (and the sync
engine above it); this shell only moves datagrams between the socket and the stack,
sleeps until the stack's next deadline, and turns events into corosync-style logs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import trio

from .log import NOTICE, subsystem
from .net.udpu import UdpuTransport
from .srp import (
    Broadcast,
    ConfigurationChanged,
    ConfigurationKind,
    LogMessage,
    SrpConfig,
    StateChanged,
)
from .services import ServiceLog, default_services
from .servicehost import ServiceHost
from .stack import TotemStack
from .statefile import FileRingSeqStore, StateDirLock
from .sync import SyncCompleted, SyncEngine
from .wire import WireError

LOG_TOTEM = subsystem("TOTEM")
LOG_MAIN = subsystem("MAIN")
LOG_QUORUM = subsystem("QUORUM")

_LEVELS = {"debug": 10, "info": 20, "notice": NOTICE, "warning": 30, "error": 40}
MALFORMED_LOG_INTERVAL = 60.0
"""A source of malformed datagrams is logged at most once per this many seconds."""


@dataclass
class NodeSettings:
    nodeid: int
    members: dict[int, str]
    """nodeid -> ring0 address, the whole nodelist (this node included)."""
    port: int = 5405
    srp: SrpConfig = field(default_factory=SrpConfig)
    state_dir: str = "/var/lib/corosync"
    block_unlisted_ips: bool = True
    cluster_name: str = ""
    votes: int = 1
    expected_votes: int | None = None
    """votequorum's expected votes; the sum of the nodelist's votes when None."""
    sync: bool = True
    """Run corosync's service synchronisation (needed in rings with real corosync nodes)."""
    ipc: str | None = None
    """Serve client libraries over libqb IPC: ``shm`` (as corosync), ``socket`` (a
    debugging transport Pacemaker refuses) or None. Needs ``sync``."""
    uidgid: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
    """(uids, gids) of the config's ``uidgid`` entries: non-root clients allowed."""
    config: Any = None
    """The :class:`~totem.config.ClusterConfig` it came from, if any (cmap, quorum)."""

    @property
    def local_addr(self) -> str:
        return self.members[self.nodeid]

    @property
    def control_path(self) -> Path:
        return Path(self.state_dir) / "totemd.sock"


class Node:
    """A running node. ``await node.run()`` until cancelled or :meth:`stop` is called."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.lock = StateDirLock(settings.state_dir)
        self.store: FileRingSeqStore | None = None
        self.stack: TotemStack | None = None
        self.transport: UdpuTransport | None = None
        self.sync: SyncEngine | None = None
        """corosync's service synchronisation with the default services above the ring."""
        self.host: ServiceHost | None = None
        """The services' client side (with ``settings.ipc``)."""
        self.ipc_server: Any = None
        self._wait_scope: trio.CancelScope | None = None
        self._kicked = False
        self._queue_critical = False
        self.malformed: dict[str, int] = {}
        self._malformed_logged: dict[str, float] = {}
        self._stopping = trio.Event()
        self._stopped = trio.Event()
        self.on_event: list[Callable[[Any], None]] = []
        self.started_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Take the state directory and bind the socket (raises on failure)."""
        s = self.settings
        Path(s.state_dir).mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self.store = FileRingSeqStore(s.state_dir, s.nodeid)
            self.stack = TotemStack(s.nodeid, s.srp, self.store, auto_trans_ack=not s.sync)
            if s.sync:
                expected = s.expected_votes or len(s.members) * s.votes
                self.sync = SyncEngine(s.nodeid, default_services(s.nodeid, expected, s.votes),
                                       room=self.stack.room)
            self.transport = UdpuTransport(s.local_addr, s.port, s.members,
                                           block_unlisted=s.block_unlisted_ips)
            if s.ipc and self.sync is not None:
                self._open_ipc(s.ipc)
        except BaseException:
            self.lock.release()
            raise

    def _open_ipc(self, transport: str) -> None:
        from .ipc.server import IpcServer

        assert self.sync is not None
        uids, gids = self.settings.uidgid
        self.host = ServiceHost(self.sync.services.values(),
                                access=lambda uid, gid: uid in uids or gid in gids)
        self.ipc_server = IpcServer(sorted(self.host.services), _HostAdapter(self),
                                    transport=transport)
        self.host.server = self.ipc_server

    def kick(self) -> None:
        """Wake the loop: something outside it (a client request) queued work."""
        self._kicked = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def after_service_call(self) -> None:
        """Carry out what a client request made the services do: hand their exec
        messages to the stack, their responses and events to the clients."""
        if self.sync is not None:
            self._send_all(self.sync.poll())
            self._sync_events()
        self.kick()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.lock.release()
        try:
            self.settings.control_path.unlink()
        except FileNotFoundError:
            pass

    def stop(self) -> None:
        """Ask the node to send its LEAVE and return from :meth:`run`."""
        self._stopping.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.stack is None:
            self.open()
        assert self.stack is not None and self.transport is not None
        s = self.settings
        LOG_TOTEM.info(f"Initializing transport (UDP/IP Unicast). bound to {s.local_addr}:{s.port}")
        LOG_TOTEM.info(f"The network interface [{s.local_addr}] is now up.")
        self.started_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._control_server)
                if self.ipc_server is not None:
                    await nursery.start(self.ipc_server.serve)
                self.stack.start(self._now())
                await self._flush()
                task_status.started()
                nursery.start_soon(self._loop)
                await self._stopping.wait()
                LOG_MAIN.log(NOTICE, "Node was shut down by a signal")
                self.stack.leave(self._now())
                await self._flush()
                nursery.cancel_scope.cancel()
        finally:
            self.close()
            self._stopped.set()
            LOG_MAIN.log(NOTICE, "Corosync Cluster Engine exiting normally")

    # -- the loop ----------------------------------------------------------------------

    def _now(self) -> float:
        return trio.current_time()

    async def _loop(self) -> None:
        stack, transport = self.stack, self.transport
        assert stack is not None and transport is not None
        while True:
            deadline = stack.get_timer()
            with trio.CancelScope(deadline=deadline if deadline is not None else math.inf) as scope:
                self._wait_scope = scope
                if not self._kicked:
                    await transport.wait_readable()
            self._wait_scope = None
            kicked, self._kicked = self._kicked, False
            batch = transport.drain()
            if batch:
                now = self._now()
                for data, addr in batch:
                    try:
                        stack.receive_datagram(data, now)
                    except WireError as exc:
                        self._malformed(addr, exc)
                    await self._flush()
            deadline = stack.get_timer()
            if deadline is not None and deadline <= self._now():
                stack.handle_timer(self._now())
                await self._flush()
            if self.sync is not None and self.sync.wants_poll:
                self._send_all(self.sync.poll())
                self._sync_events()
                await self._flush()
            elif kicked:
                await self._flush()
            if self.host is not None:
                self._update_host()
                await self._flush()

    def _update_host(self) -> None:
        """Tell the service host whether requests must wait: while a sync runs or the
        totem send queue is critical (75% used; 70% to leave, as totempg's levels)."""
        stack, sync, host = self.stack, self.sync, self.host
        assert stack is not None and sync is not None and host is not None
        used = 1.0 - stack.srp.avail() / stack.srp.queue_max
        if used >= 0.75:
            self._queue_critical = True
        elif used < 0.70:
            self._queue_critical = False
        host.update(holding=sync.in_sync or self._queue_critical, ready=not sync.in_sync)
        if not host.holding:
            for svc in host.services.values():
                svc.flush_pending()
        if sync.wants_poll:
            self._send_all(sync.poll())
        self._sync_events()

    def _malformed(self, addr: str, exc: WireError) -> None:
        self.malformed[addr] = self.malformed.get(addr, 0) + 1
        now = self._now()
        last = self._malformed_logged.get(addr)
        if last is None or now - last >= MALFORMED_LOG_INTERVAL:
            self._malformed_logged[addr] = now
            LOG_TOTEM.warning(f"Dropped a malformed datagram from {addr}: {exc} "
                              f"({self.malformed[addr]} from this source so far)")

    async def _flush(self) -> None:
        stack, transport = self.stack, self.transport
        assert stack is not None and transport is not None
        while True:
            for d in stack.datagrams_to_send():
                if isinstance(d, Broadcast):
                    await transport.broadcast(d.data)
                else:
                    await transport.send_to(d.nodeid, d.data)
            ev = stack.next_event()
            if ev is None:
                return
            self._handle_event(ev)

    def _handle_event(self, ev: Any) -> None:
        if isinstance(ev, LogMessage):
            LOG_TOTEM.log(_LEVELS.get(ev.level, 20), ev.text)
        elif isinstance(ev, ConfigurationChanged) and self.sync is None:
            # without the sync engine (and its quorum service, which logs these), say
            # what corosync would say at once
            if ev.kind is ConfigurationKind.REGULAR:
                LOG_QUORUM.log(NOTICE, f"Sync members[{len(ev.members)}]: " + " ".join(map(str, ev.members)))
                if ev.joined:
                    LOG_QUORUM.log(NOTICE, f"Sync joined[{len(ev.joined)}]: " + " ".join(map(str, ev.joined)))
                LOG_QUORUM.log(NOTICE, f"Members[{len(ev.members)}]: " + " ".join(map(str, ev.members)))
                LOG_MAIN.log(NOTICE, "Completed service synchronization, ready to provide service.")
            elif ev.left:
                LOG_QUORUM.log(NOTICE, f"Sync left[{len(ev.left)}]: " + " ".join(map(str, ev.left)))
        elif isinstance(ev, StateChanged):
            LOG_TOTEM.debug(f"entering {ev.new.name} state ({ev.reason}).")
        for cb in self.on_event:
            cb(ev)
        if self.sync is not None:
            self._send_all(self.sync.handle(ev))
            self._sync_events()

    def _send_all(self, out) -> None:
        stack = self.stack
        assert stack is not None
        for o in out:
            if not stack.send(o.groups, o.body):
                raise AssertionError("the sync engine's room check let through what send refused")

    def _sync_events(self) -> None:
        sync, stack = self.sync, self.stack
        assert sync is not None and stack is not None
        while (ev := sync.next_event()) is not None:
            if self.host is not None and self.host.event(ev):
                continue
            if isinstance(ev, ServiceLog):
                if ev.text.startswith("Completed service synchronization"):
                    members = sync.members
                    LOG_QUORUM.log(NOTICE, f"Members[{len(members)}]: " + " ".join(map(str, members)))
                subsystem(ev.subsys).log(_LEVELS.get(ev.level, 20), ev.text)
            elif isinstance(ev, SyncCompleted):
                stack.trans_ack()
            for cb in self.on_event:
                cb(ev)

    async def send(self, groups, body) -> bool:
        """Queue one message for agreed delivery and put what it triggers on the wire
        (a token_hold_cancel when the ring idles); False when the send queue is full."""
        assert self.stack is not None
        ok = self.stack.send(groups, body)
        await self._flush()
        return ok

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        stack = self.stack
        assert stack is not None and self.transport is not None
        srp = stack.srp
        t = self.transport.stats
        return {
            "nodeid": self.settings.nodeid,
            "cluster_name": self.settings.cluster_name,
            "pid": os.getpid(),
            "state": srp.state.name,
            "ring_id": {"rep": srp.ring_id.rep, "seq": srp.ring_id.seq},
            "members": list(srp.members),
            "uptime": round(self._now() - self.started_at, 3),
            "stats": {"srp": dict(srp.stats),
                      "pg": dict(stack.pg_in.stats),
                      "transport": {"rx": t.rx, "tx": t.tx, "tx_errors": t.tx_errors,
                                    "rejected_unlisted": t.rejected_unlisted},
                      "malformed": dict(self.malformed)},
            "timers": {k: round(v - self._now(), 3) for k, v in srp._timers.items()},
            "config": {"token": srp.config.token, "consensus": srp.config.consensus,
                       "token_retransmit": srp.config.token_retransmit, "hold": srp.config.hold,
                       "join": srp.config.join, "merge": srp.config.merge},
        }

    async def _control_server(self) -> None:
        path = self.settings.control_path
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(str(path))
        os.chmod(path, 0o660)
        sock.listen(8)
        listener = trio.SocketListener(sock)
        async with listener:
            await trio.serve_listeners(self._control_client, [listener])

    async def _control_client(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(5):
                request = b""
                while not request.endswith(b"\n") and len(request) < 4096:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
                command = request.decode(errors="replace").strip()
                if command == "status":
                    reply = self.status()
                else:
                    reply = {"error": f"unknown command {command!r}"}
                await stream.send_all(json.dumps(reply).encode() + b"\n")


class _HostAdapter:
    """The IPC server's handler: the node's service host, followed by carrying out
    what each call made the services do."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ipc_connect(self, conn_id: int, service: str, creds) -> int:
        assert self.node.host is not None
        rc = self.node.host.ipc_connect(conn_id, service, creds)
        self.node.after_service_call()
        return rc

    def ipc_request(self, conn_id: int, data: bytes) -> None:
        assert self.node.host is not None
        self.node.host.ipc_request(conn_id, data)
        self.node.after_service_call()

    def ipc_disconnect(self, conn_id: int) -> None:
        assert self.node.host is not None
        self.node.host.ipc_disconnect(conn_id)
        self.node.after_service_call()


async def query(path: str | Path, command: str = "status", timeout: float = 5.0) -> dict[str, Any]:
    """Ask a running totemd over its control socket."""
    with trio.fail_after(timeout):
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            await stream.send_all(command.encode() + b"\n")
            data = b""
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
    return json.loads(data)
