"""One totemd node on trio: the pure stack wired to the udpu transport, timers and logs.

The protocol decisions all live in :class:`~totem.stack.TotemStack` (and the sync
engine above it); this shell only moves datagrams between the socket and the stack,
sleeps until the stack's next deadline, and turns events into corosync-style logs.
"""

from __future__ import annotations

import json
import math
import os
import socket
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
from .services import NodeServices, ServiceLog, ShutdownRequested, node_services
from .services.cfg import KilledByNode, ReloadRequested, ReopenLogFiles
from .services.votequorum import QuorumChanged
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
    crypto: Any = None
    """:class:`~totem.crypto.settings.CryptoSettings`: seal every datagram in corosync
    2.x's envelope (None: plain corosync 3.x udpu)."""

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
        self.services: NodeServices | None = None
        """The services above the ring (with ``settings.sync``)."""
        self.exit_status = 0
        """What totemd exits with: 0, or 255 when another node killed this one (cfg)."""
        self._stats_updated = -math.inf
        self.host: ServiceHost | None = None
        """The services' client side (with ``settings.ipc``)."""
        self.ipc_server: Any = None
        self._wait_scope: trio.CancelScope | None = None
        self._kicked = False
        self._queue_critical = False
        self.malformed: dict[str, int] = {}
        self._malformed_logged: dict[str, float] = {}
        self.crypto: Any = None
        """The :class:`~totem.crypto.channel.SecureChannel` with ``settings.crypto``."""
        self.reloader: Callable[[], Any] | None = None
        """Reads the configuration again for a reload: returns CryptoSettings (or None)."""
        self.config_loader: Callable[[], Any] | None = None
        """Reads corosync.conf again (a ClusterConfig) for cfg's RELOAD_CONFIG."""
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
            srp = s.srp
            if s.crypto is not None:
                from .crypto.settings import frame_config

                srp = frame_config(srp, s.crypto, s.local_addr)
            self.stack = TotemStack(s.nodeid, srp, self.store, auto_trans_ack=not s.sync)
            if s.sync:
                expected = s.expected_votes or len(s.members) * s.votes
                self.services = node_services(s.nodeid, cluster=s.config, expected_votes=expected,
                                              votes=s.votes, clock=self._now)
                self.sync = SyncEngine(s.nodeid, self.services.all, room=self.stack)
                self._update_votequorum_keys()
            self.transport = UdpuTransport(s.local_addr, s.port, s.members,
                                           block_unlisted=s.block_unlisted_ips)
            if s.crypto is not None:
                from .crypto.channel import SecureChannel

                self.crypto = SecureChannel(s.nodeid, s.crypto, s.members)
            if s.ipc and self.sync is not None:
                self._open_ipc(s.ipc)
        except BaseException:
            self.lock.release()
            raise

    def _open_ipc(self, transport: str) -> None:
        from .ipc.server import IpcServer

        assert self.sync is not None
        uids, gids = self.settings.uidgid
        db = self.services.db if self.services is not None else None
        self.host = ServiceHost(self.sync.services.values(),
                                access=lambda uid, gid: uid in uids or gid in gids
                                or (db is not None and db.allowed(uid, gid)))
        self.ipc_server = IpcServer(sorted(self.host.services), _HostAdapter(self),
                                    transport=transport, logger=subsystem("IPC"))
        self.host.server = self.ipc_server

    def kick(self) -> None:
        """Wake the loop: something outside it (a client request) queued work."""
        if self._kicked:
            return
        self._kicked = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def after_service_call(self) -> None:
        """A client call made the services queue exec messages, responses or events:
        the loop's next turn carries them out, for every call the IPC server handed
        over meanwhile at once (a burst of requests costs one turn, not one each)."""
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
                if self.exit_status == 0:
                    LOG_MAIN.log(NOTICE, "Node was shut down by a signal")
                    self._send_leave_messages()
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

    def _send_leave_messages(self) -> None:
        """votequorum's goodbye (allow_downscale) before the LEAVE, as corosync sends it."""
        vq = self.services.votequorum if self.services is not None else None
        msg = vq.leave_message() if vq is not None else None
        if msg is not None and self.stack is not None:
            self.stack.send((b"a",), msg)

    def _service_deadline(self) -> float | None:
        services = self.services
        if services is None:
            return None
        times = [t for t in (services.cfg.deadline,
                             services.votequorum.next_deadline() if services.votequorum else None)
                 if t is not None]
        return min(times) if times else None

    def _service_timers(self) -> None:
        services = self.services
        if services is None:
            return
        due = self._service_deadline()
        if due is not None and due <= self._now():
            now = self._now()
            services.cfg.handle_timer(now)
            if services.votequorum is not None:
                services.votequorum.handle_timer(now)
            if self.sync is not None:
                self._send_all(self.sync.poll())
                self._sync_events()

    async def _loop(self) -> None:
        stack, transport = self.stack, self.transport
        assert stack is not None and transport is not None
        while True:
            deadline = stack.get_timer()
            service_due = self._service_deadline()
            if service_due is not None and (deadline is None or service_due < deadline):
                deadline = service_due
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
                        if self.crypto is None:
                            stack.receive_datagram(data, now)
                        else:
                            self._receive_sealed(data, addr, now)
                    except WireError as exc:
                        self._malformed(addr, exc)
                    await self._flush()
            deadline = stack.get_timer()
            if deadline is not None and deadline <= self._now():
                stack.handle_timer(self._now())
                await self._flush()
            self._service_timers()
            if self.sync is not None and self.sync.wants_poll:
                self._send_all(self.sync.poll())
                self._sync_events()
                await self._flush()
            elif kicked:
                await self._flush()
            if self.host is not None:
                self._update_host()
                await self._flush()
            elif self.services is not None and self.sync is not None and not self.sync.in_sync:
                for svc in self.services.all:
                    svc.flush_pending()
                if self.sync.wants_poll:
                    self._send_all(self.sync.poll())
                    self._sync_events()
                    await self._flush()
            if self.services is not None and self._now() - self._stats_updated >= 1.0:
                self._update_stats()

    def _update_votequorum_keys(self) -> None:
        """The ``runtime.votequorum.*`` keys (corosync-quorumtool reads this_node_id)."""
        services = self.services
        if services is None or services.votequorum is None:
            return
        db = services.db
        for key, (vtype, value) in services.votequorum.runtime_cmap().items():
            if db.python(key) != value:
                db.set_value(key, vtype, value)

    def _update_stats(self) -> None:
        """The stats map's srp counters, once a second at most (cmapctl -m stats)."""
        services, stack = self.services, self.stack
        assert services is not None and stack is not None
        self._stats_updated = self._now()
        services.stats.update_srp_stats(stack.srp.stats)
        if self.ipc_server is not None:
            services.stats.update_ipc_stats(len(self.ipc_server.connections), 0)

    def _update_host(self) -> None:
        """Tell the service host whether requests must wait: while a sync runs, the
        totem send queue is critical (75% used; 70% to leave, as totempg's levels) or
        multicasts totem refused are waiting in a service."""
        stack, sync, host = self.stack, self.sync, self.host
        assert stack is not None and sync is not None and host is not None
        used = 1.0 - stack.srp.avail() / stack.srp.queue_max
        if used >= 0.75:
            self._queue_critical = True
        elif used < 0.70:
            self._queue_critical = False
        if not sync.in_sync:
            # what totem refused before goes first, then requests may flow again
            for svc in host.services.values():
                svc.flush_pending()
        host.update(holding=sync.in_sync or self._queue_critical or host.backlogged(),
                    ready=not sync.in_sync)
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

    def _receive_sealed(self, data: bytes, addr: str, now: float) -> None:
        """Authenticate, decrypt and replay-check a datagram before the stack sees it."""
        stack, crypto = self.stack, self.crypto
        assert stack is not None and crypto is not None
        opened = crypto.open(data, addr, now, stack.srp.ring_id)
        if opened is not None:
            stack.receive_message(opened.msg, now, opened.data)
        self._crypto_logs()

    def _crypto_logs(self) -> None:
        for level, text in self.crypto.take_logs():
            LOG_TOTEM.log(_LEVELS.get(level, 20), text)

    async def _flush(self) -> None:
        stack, transport = self.stack, self.transport
        assert stack is not None and transport is not None
        while True:
            seal = self.crypto.seal if self.crypto is not None else None
            for d in stack.datagrams_to_send():
                data = d.data if seal is None else seal(d.data)
                if isinstance(d, Broadcast):
                    await transport.broadcast(data)
                else:
                    await transport.send_to(d.nodeid, data)
            ev = stack.next_event()
            if ev is None:
                if self.crypto is not None and self._crypto_announce():
                    continue
                return
            self._handle_event(ev)

    def _crypto_announce(self) -> bool:
        """Queue a due key announcement (key rotation); True if one was queued."""
        crypto, stack = self.crypto, self.stack
        assert crypto is not None and stack is not None
        out = crypto.announcement()
        if out is None or not stack.send(*out):
            return False
        crypto.announced()
        return True

    def reload_crypto(self, settings: Any) -> str:
        """New key material from a reload (CryptoSettings); ValueError if not applicable."""
        if self.crypto is None or settings is None:
            raise ValueError("crypto cannot be switched on or off by reload: every node must "
                             "be restarted with the new settings")
        text = self.crypto.reload(settings)
        self.crypto.set_nodelist(self.settings.members)
        self.settings.crypto = settings
        self._crypto_logs()
        self.kick()
        return text

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
        if isinstance(ev, ConfigurationChanged) and self.services is not None:
            services = self.services
            addresses = services.view.addresses
            if ev.kind is ConfigurationKind.REGULAR:
                joined = tuple(ev.joined)
                me = self.settings.nodeid
                if me not in joined and services.db.member_status(me) is None:
                    # corosync records itself from its first (single-node) ring, which
                    # we never report as a configuration of its own
                    joined += (me,)
                services.db.update_membership(joined, (), addresses)
                services.view.ring = tuple(ev.members)
            else:
                services.db.update_membership((), ev.left, addresses)
        if self.crypto is not None:
            self.crypto.handle_event(ev)
            self._crypto_logs()
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
                subsystem(ev.subsys).log(_LEVELS.get(ev.level, 20), ev.text)
            elif isinstance(ev, SyncCompleted):
                stack.trans_ack()
            elif isinstance(ev, QuorumChanged):
                self._update_votequorum_keys()
            elif isinstance(ev, ShutdownRequested):
                LOG_MAIN.log(NOTICE, "Shutting down as a client (cfg) or the cluster asked")
                self.stop()
            elif isinstance(ev, KilledByNode):
                LOG_MAIN.error(f"Killed by node {ev.sender}: {ev.reason!r}")
                self.exit_status = 255
                self.stop()
            elif isinstance(ev, ReloadRequested):
                self._reload_for_cfg(ev)
            elif isinstance(ev, ReopenLogFiles):
                LOG_MAIN.info("Reopening log files")
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
            "crypto": (self.crypto.status() if self.crypto is not None
                       else {"cipher": "none", "hash": "none"}),
            "timers": {k: round(v - self._now(), 3) for k, v in srp._timers.items()},
            "config": {"token": srp.config.token, "consensus": srp.config.consensus,
                       "token_retransmit": srp.config.token_retransmit, "hold": srp.config.hold,
                       "join": srp.config.join, "merge": srp.config.merge},
        }

    def _reload_for_cfg(self, ev: ReloadRequested) -> None:
        """corosync-cfgtool -R: read corosync.conf again; the nodelist (nodes added or
        removed without a restart), votequorum's options and the keys follow it."""
        services, transport = self.services, self.transport
        assert services is not None and transport is not None
        new, error = None, ""
        if self.config_loader is None:
            error = "this node has no configuration file to reload"
        else:
            try:
                new = self.config_loader()
            except Exception as exc:  # noqa: BLE001 - a bad file is reported, the node goes on
                error = str(exc)
        services.cfg.finish_reload(ev.conn, new, error)
        if new is None:
            LOG_MAIN.error(f"Configuration reload failed: {error}")
            return
        members = {n.nodeid: n.addr for n in new.nodes}
        if self.settings.nodeid not in members:
            LOG_MAIN.error("Reloaded configuration no longer lists this node; nodelist kept")
            return
        self.settings.members = members
        transport.set_members(members)
        services.view.addresses = {n.nodeid: [n.addr] for n in new.nodes}
        if services.votequorum is not None:
            from .services.votequorum import arithmetic_config

            services.votequorum.reload(arithmetic_config(new))
        LOG_MAIN.log(NOTICE, f"Configuration reloaded: nodelist of {len(members)} nodes")
        if self.reloader is not None:
            self.reload()

    def reload(self) -> dict[str, Any]:
        """Read the configuration again and apply what can change at run time: the
        crypto keys (SIGHUP and the control socket's ``reload``)."""
        if self.reloader is None:
            return {"error": "this node has no configuration file to reload"}
        try:
            settings = self.reloader()
            if settings is None and self.crypto is None:
                text = "none (nothing to reload)"
            else:
                text = self.reload_crypto(settings)
        except Exception as exc:  # noqa: BLE001 - reported to the operator, node goes on
            LOG_MAIN.error(f"Reload failed: {exc}")
            return {"error": f"reload failed: {exc}"}
        LOG_MAIN.log(NOTICE, f"Configuration reloaded: crypto {text}")
        return {"ok": True, "crypto": text}

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
                elif command == "reload":
                    reply = self.reload()
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


def poll_status(path: str | Path, timeout: float = 1.0) -> dict[str, Any] | None:
    """A running totemd's status for callers without trio (the demo, tests that poll),
    or None while nothing answers on ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"status\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)
    except (OSError, ValueError):
        return None
