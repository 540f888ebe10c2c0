"""Our libqb IPC client against our IPC server, in one trio run (and a few subprocesses).

Every test serves its own service names (``pytotem-test-<random>``), so nothing clashes
with a corosync or totemd that owns ``cpg``, ``cmap``, ... on this host.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import trio

from totem.ipc import (
    ConnectionClosed,
    DaemonUnavailable,
    IpcClient,
    IpcRefused,
    IpcServer,
    TryAgain,
)
from totem.ipc import names
from totem.ipc.handshake import (
    CONNECTION_RESPONSE_SIZE,
    pack_connection_request,
    parse_connection_response_untrusted,
)
from totem.lib.common import (
    IPC_REQUEST_SIZE,
    CsError,
    parse_request_header_untrusted,
    parse_response_header_untrusted,
    request_header,
    response_header,
)

ROOT = Path(__file__).resolve().parents[1]

ECHO, EVENT_FIRST, EVENT_AFTER, DEFER, NO_ANSWER, EVENTS, CRASH, SELF_DISCONNECT = range(1, 9)


def unique() -> str:
    return f"pytotem-test-{uuid.uuid4().hex[:12]}"


def req(msg_id: int, body: bytes = b"") -> bytes:
    return request_header(msg_id, 16 + len(body)) + body


def body_of(resp: bytes, expect_id: int) -> bytes:
    msg_id, size, error = parse_response_header_untrusted(resp)
    assert (msg_id, size, error) == (expect_id, len(resp), CsError.OK)
    return resp[24:]


class Handler:
    """A test service: what it does with a request depends on the request id."""

    def __init__(self) -> None:
        self.server: IpcServer | None = None
        self.refuse = 0
        self.connected: dict[int, tuple[str, object]] = {}
        self.disconnected: list[int] = []
        self.deferred: list[int] = []
        self.unanswered: list[bytes] = []

    def ipc_connect(self, conn_id, service, creds) -> int:
        if self.refuse:
            return self.refuse
        self.connected[conn_id] = (service, creds)
        return 0

    def ipc_request(self, conn_id: int, data: bytes) -> None:
        assert self.server is not None
        msg_id, _ = parse_request_header_untrusted(data)
        body = data[16:]
        out = response_header(msg_id, 24 + len(body)) + body
        if msg_id == ECHO:
            self.server.respond(conn_id, out)
        elif msg_id == EVENT_FIRST:
            self.server.send_event(conn_id, response_header(100, 24 + len(body)) + body)
            self.server.respond(conn_id, out)
        elif msg_id == EVENT_AFTER:
            self.server.respond(conn_id, out)
            self.server.send_event(conn_id, response_header(101, 24 + len(body)) + body)
        elif msg_id == DEFER:
            self.deferred.append(conn_id)
        elif msg_id == NO_ANSWER:
            self.unanswered.append(body)
        elif msg_id == EVENTS:
            count, size = struct.unpack("<II", body)
            for i in range(count):
                payload = struct.pack("<I", i).ljust(size, b"e")
                self.server.send_event(conn_id, response_header(102, 24 + size) + payload)
            self.server.respond(conn_id, response_header(msg_id, 24))
        elif msg_id == CRASH:
            raise RuntimeError("handler bug")
        elif msg_id == SELF_DISCONNECT:
            self.server.disconnect(conn_id, "the service asked for it")

    def ipc_disconnect(self, conn_id: int) -> None:
        assert conn_id not in self.disconnected, "ipc_disconnect twice"
        self.disconnected.append(conn_id)


async def start(nursery: trio.Nursery, *names: str, **kw) -> tuple[IpcServer, Handler, str]:
    handler = Handler()
    names = names or (unique(),)
    server = IpcServer(list(names), handler, **kw)
    handler.server = server
    await nursery.start(server.serve)
    return server, handler, names[0]


async def wait_until(cond, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.005)


def qb_dirs(pid: int | None = None) -> set[str]:
    return {p for p in os.listdir("/dev/shm") if p.startswith(f"qb-{pid or os.getpid()}-")}


# -- basics -------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["shm", "socket"])
async def test_many_requests_and_events_in_order(nursery, transport):
    server, handler, name = await start(nursery, transport=transport)
    async with await IpcClient.connect(name) as client:
        assert client.transport == transport and client.max_msg_size == IPC_REQUEST_SIZE
        assert client.server_creds.pid == os.getpid() and client.server_creds.uid == os.getuid()
        for i in range(300):
            payload = os.urandom(i * 7 % 3000)
            assert body_of(await client.request(req(ECHO, payload)), ECHO) == payload
        assert body_of(await client.request(req(EVENT_FIRST, b"one")), EVENT_FIRST) == b"one"
        assert body_of(await client.request(req(EVENT_AFTER, b"two")), EVENT_AFTER) == b"two"
        assert body_of(await client.receive_event(), 100) == b"one"
        assert body_of(await client.receive_event(), 101) == b"two"
        (info,) = server.connections.values()
        assert (info.requests, info.responses, info.events) == (302, 302, 2)
        assert info.service == name and info.creds.pid == os.getpid()
        assert info.transport == transport and info.queued_bytes == 0
        conn_id = info.conn_id
    await wait_until(lambda: handler.disconnected == [conn_id])
    assert not server.connections
    assert not os.path.exists(info.directory)


async def test_several_services_and_concurrent_clients(nursery):
    names = [unique() for _ in range(3)]
    server, handler, _ = await start(nursery, *names)

    async def worker(i: int) -> None:
        async with await IpcClient.connect(names[i % 3]) as client:
            for j in range(40):
                body = f"{i}:{j}".encode()
                assert body_of(await client.request(req(ECHO, body)), ECHO) == body

    async with trio.open_nursery() as workers:
        for i in range(12):
            workers.start_soon(worker, i)
    await wait_until(lambda: len(handler.disconnected) == 12)
    assert {svc for svc, _ in handler.connected.values()} == set(names)


@pytest.mark.parametrize("transport", ["shm", "socket"])
async def test_one_mebibyte_messages(nursery, transport):
    server, handler, name = await start(nursery, transport=transport)
    async with await IpcClient.connect(name) as client:
        big = os.urandom(IPC_REQUEST_SIZE - 24)  # the echo is exactly 1 MiB
        response = await client.request(req(ECHO, big))
        assert len(response) == IPC_REQUEST_SIZE and body_of(response, ECHO) == big
        await client.send(req(NO_ANSWER, big + b"12345678"))  # a request of exactly 1 MiB
        await wait_until(lambda: handler.unanswered)
        assert handler.unanswered == [big + b"12345678"]
        # three maximal events: they overflow the 1 MiB event ring and are queued
        await client.request(req(EVENTS, struct.pack("<II", 3, IPC_REQUEST_SIZE - 24)))
        for i in range(3):
            event = await client.receive_event()
            assert len(event) == IPC_REQUEST_SIZE
            assert struct.unpack_from("<I", body_of(event, 102))[0] == i
        with pytest.raises(ValueError, match="exceeds max_msg_size"):
            await client.request(b"x" * (IPC_REQUEST_SIZE + 1))


async def test_events_overflowing_the_ring_arrive_in_order(nursery):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as client:
        await client.request(req(EVENTS, struct.pack("<II", 5000, 1000)))
        assert server.connections[1].queued_bytes > 0  # most of them waited in the queue
        for i in range(5000):
            assert struct.unpack_from("<I", body_of(await client.receive_event(), 102))[0] == i
        assert server.connections[1].queued_bytes == 0


# -- flow control, deferral, cancellation -------------------------------------------------

@pytest.mark.parametrize("transport", ["shm", "socket"])
async def test_flow_control_makes_sends_try_again(nursery, transport):
    server, handler, name = await start(nursery, transport=transport)
    async with await IpcClient.connect(name) as client:
        server.set_flow_control(1)
        with pytest.raises(TryAgain) as exc:
            await client.request(req(ECHO, b"x"))
        assert exc.value.cs_error == CsError.TRY_AGAIN
        with pytest.raises(TryAgain):
            await client.send(req(NO_ANSWER, b"m"), fc_max=2)
        server.set_flow_control(2, [1])  # cpg multicasts only
        assert body_of(await client.request(req(ECHO, b"y")), ECHO) == b"y"
        with pytest.raises(TryAgain):
            await client.send(req(NO_ANSWER, b"m"), fc_max=2)
        await client.send(req(NO_ANSWER, b"plain"))  # fc_max=1: level 2 lets it through
        server.set_flow_control(0)
        await client.send(req(NO_ANSWER, b"mcast"), fc_max=2)
        assert body_of(await client.request(req(ECHO, b"z")), ECHO) == b"z"
        assert handler.unanswered == [b"plain", b"mcast"]
        assert server.connections[1].flow_control == 0
    with pytest.raises(ValueError):
        server.set_flow_control(3)


async def test_deferred_response_and_cancelled_request(nursery):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as client:
        async with trio.open_nursery() as inner:
            inner.start_soon(client.request, req(DEFER))
            await wait_until(lambda: handler.deferred)
            assert client.transport == "shm"
            server.respond(handler.deferred.pop(), response_header(DEFER, 28) + b"late")
        with trio.move_on_after(0.3) as scope:
            await client.request(req(DEFER))  # cancelled while its response is pending
        assert scope.cancelled_caught
        server.respond(handler.deferred.pop(), response_header(DEFER, 27) + b"old")
        # the next request skips the cancelled one's response and gets its own
        assert body_of(await client.request(req(ECHO, b"new")), ECHO) == b"new"


async def test_requests_from_concurrent_tasks_are_serialised(nursery):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as client:
        results = {}

        async def one(i: int) -> None:
            results[i] = body_of(await client.request(req(ECHO, b"%d" % i)), ECHO)

        async with trio.open_nursery() as inner:
            for i in range(50):
                inner.start_soon(one, i)
        assert results == {i: b"%d" % i for i in range(50)}


# -- refusal, absence, misbehaviour ---------------------------------------------------------

async def test_refused_handshake_is_ipc_refused(nursery):
    server, handler, name = await start(nursery)
    before = qb_dirs()
    handler.refuse = -errno.EACCES
    with pytest.raises(IpcRefused) as exc:
        await IpcClient.connect(name)
    assert exc.value.cs_error == CsError.ACCESS and exc.value.errno == errno.EACCES
    assert "EACCES" in str(exc.value) and name in str(exc.value)
    handler.refuse = -errno.EAGAIN
    with pytest.raises(IpcRefused) as exc:
        await IpcClient.connect(name)
    assert exc.value.cs_error == CsError.TRY_AGAIN
    await trio.sleep(0.05)
    assert not server.connections and handler.disconnected == [] and qb_dirs() == before


async def test_nothing_listening_is_daemon_unavailable():
    name = unique()
    with pytest.raises(DaemonUnavailable, match=f"no daemon listening on the '{name}' IPC socket"):
        await IpcClient.connect(name)


def test_setup_address_follows_libqbs_rule(tmp_path, monkeypatch):
    addr = names.setup_address("cpg")
    assert addr == b"\0cpg" + bytes(104) and len(addr) == 108
    assert names.setup_address("cpg", "/run/x") == "/run/x/cpg"
    force = tmp_path / "force-filesystem-sockets"
    monkeypatch.setattr(names, "FORCE_FILESYSTEM_SOCKETS", str(force))
    assert names.setup_address("cmap") == b"\0cmap".ljust(108, b"\0")
    force.touch()
    assert names.setup_address("cmap") == "/tmp/cmap"  # Debian's libqb SOCKETDIR
    with pytest.raises(ValueError):
        names.abstract_address("x" * 108)


async def test_filesystem_socket_in_a_socket_dir(nursery, tmp_path):
    server, handler, name = await start(nursery, socket_dir=str(tmp_path))
    assert server.addresses[name] == str(tmp_path / name)
    with pytest.raises(DaemonUnavailable):
        await IpcClient.connect(name)  # libqb's default: the abstract name
    async with await IpcClient.connect(name, socket_dir=str(tmp_path)) as client:
        assert body_of(await client.request(req(ECHO, b"fs")), ECHO) == b"fs"


@pytest.mark.parametrize("bad, why", [
    (request_header(ECHO, 99) + b"abc", "header says 99 bytes"),
    (request_header(-2, 16), "unknown internal message id -2"),
    (b"short", "shorter than its header"),
])
async def test_malformed_request_drops_only_that_connection(nursery, caplog, bad, why):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as good, await IpcClient.connect(name) as evil:
        with caplog.at_level(logging.WARNING, logger="totem.ipc"):
            with pytest.raises(ConnectionClosed):
                await evil.request(bad)
        assert [r.getMessage() for r in caplog.records if why in r.getMessage()] != []
        assert len([r for r in caplog.records if r.name == "totem.ipc"]) == 1
        assert body_of(await good.request(req(ECHO, b"still")), ECHO) == b"still"
        await wait_until(lambda: len(handler.disconnected) == 1)


async def test_disconnect_request_and_service_disconnect_close_quietly(nursery):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as a, await IpcClient.connect(name) as b:
        await a.send(request_header(-3, 16))  # QB_IPC_MSG_DISCONNECT
        with pytest.raises(ConnectionClosed):
            await a.receive_event()
        with pytest.raises(ConnectionClosed):
            await b.request(req(SELF_DISCONNECT))
        await wait_until(lambda: sorted(handler.disconnected) == [1, 2])


async def test_handler_exception_drops_the_connection_not_the_server(nursery):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as a:
        with pytest.raises(ConnectionClosed):
            await a.request(req(CRASH))
    async with await IpcClient.connect(name) as b:
        assert body_of(await b.request(req(ECHO, b"ok")), ECHO) == b"ok"


async def test_oversized_response_drops_the_connection(nursery, caplog):
    server, handler, name = await start(nursery)
    outcome = []

    async def ask(client: IpcClient) -> None:
        try:
            await client.request(req(DEFER))
        except ConnectionClosed as exc:
            outcome.append(exc)

    async with await IpcClient.connect(name) as client:
        async with trio.open_nursery() as inner:
            inner.start_soon(ask, client)
            await wait_until(lambda: handler.deferred)
            server.respond(handler.deferred[0], b"r" * (IPC_REQUEST_SIZE + 1))
        assert len(outcome) == 1 and handler.disconnected == [1]
        assert "more than the negotiated max_msg_size" in caplog.text


# -- slow, stopped and dead clients -----------------------------------------------------------

async def test_client_not_reading_events_is_disconnected_others_keep_working(nursery, caplog):
    limit = 2 * 1024 * 1024
    server, handler, name = await start(nursery, event_backlog_limit=limit)
    async with await IpcClient.connect(name) as slow, await IpcClient.connect(name) as busy:
        slow_id = min(server.connections)
        mib = response_header(102, 1 << 20) + bytes((1 << 20) - 24)
        with caplog.at_level(logging.WARNING, logger="totem.ipc"):
            for _ in range(4):  # 4 x 1 MiB of events for the client that never reads
                server.send_event(slow_id, mib)
                assert body_of(await busy.request(req(EVENT_AFTER, b"b")), EVENT_AFTER) == b"b"
                assert body_of(await busy.receive_event(), 101) == b"b"
        await wait_until(lambda: handler.disconnected == [slow_id])
        backlog = [r.getMessage() for r in caplog.records if "backlog limit" in r.getMessage()]
        assert len(backlog) == 1
        with pytest.raises(ConnectionClosed):
            await slow.request(req(ECHO))
        assert body_of(await busy.request(req(ECHO, b"alive")), ECHO) == b"alive"


CHILD = r"""
import struct, sys, time, trio
from totem.ipc import IpcClient
from totem.ipc.ringbuffer import MAGIC_ALLOC
from totem.lib.common import request_header

async def main(mode, name):
    client = await IpcClient.connect(name)
    ring = client._ch.request  # test only: reach into the request ring
    if mode == "half":  # killed while writing a chunk: header and half the payload
        ring._w[0] = 0
        ring._w[1] = MAGIC_ALLOC
        ring._dmap[8:8 + 500] = b"h" * 500
    elif mode == "corrupt":  # posted and announced, but never committed
        ring._w[0] = 100
        ring._w[1] = MAGIC_ALLOC
        ring.sem.post()
        client._sock.send(b"\x01")
    print("ready", flush=True)
    time.sleep(120)

trio.run(main, sys.argv[1], sys.argv[2])
"""


def spawn_child(mode: str, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, name], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("mode", ["half", "corrupt", "idle"])
async def test_killed_client_leaves_nothing_behind(nursery, mode):
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as other:
        proc = await trio.to_thread.run_sync(spawn_child, mode, name)
        try:
            await wait_until(lambda: len(handler.connected) == 2)
            child_id = max(handler.connected)
            assert handler.connected[child_id][1].pid == proc.pid
            if mode == "corrupt":  # dropped by the server at once, before the kill
                await wait_until(lambda: handler.disconnected == [child_id])
            else:
                assert len(os.listdir(server.connections[child_id].directory)) == 6
            assert body_of(await other.request(req(ECHO, b"during")), ECHO) == b"during"
        finally:
            proc.kill()
            await trio.to_thread.run_sync(proc.wait)
            proc.stdout.close()
        await wait_until(lambda: handler.disconnected == [child_id])
        assert not [d for d in qb_dirs() if f"-{proc.pid}-" in d]
        assert body_of(await other.request(req(ECHO, b"after")), ECHO) == b"after"


async def test_stopped_client_does_not_block_the_server(nursery):
    server, handler, name = await start(nursery, event_backlog_limit=1 << 20)
    async with await IpcClient.connect(name) as other:
        proc = await trio.to_thread.run_sync(spawn_child, "idle", name)
        try:
            await wait_until(lambda: len(server.connections) == 2)
            stopped = next(i for i in server.connections.values() if i.creds.pid == proc.pid)
            os.kill(proc.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            event = response_header(102, 4096) + bytes(4096 - 24)
            for i in range(600):  # 600 x 4 KiB: ring full, then the backlog limit
                server.send_event(stopped.conn_id, event)
            assert time.monotonic() - t0 < 1.0
            await wait_until(lambda: handler.disconnected == [stopped.conn_id])
            assert not os.path.exists(stopped.directory)
            assert body_of(await other.request(req(ECHO, b"fine")), ECHO) == b"fine"
        finally:
            proc.kill()
            os.kill(proc.pid, signal.SIGCONT)
            await trio.to_thread.run_sync(proc.wait)
            proc.stdout.close()


# -- files, ownership, shutdown ------------------------------------------------------------------

async def test_files_belong_to_the_client(nursery):
    """A root peer may claim other credentials (SCM_CREDENTIALS): the server must chown
    the connection's directory and rings to them so that non-root clients can open them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to send other credentials")
    server, handler, name = await start(nursery)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await trio.to_thread.run_sync(sock.connect, server.addresses[name])
        creds = struct.pack("iII", os.getpid(), 65534, 65534)
        sock.sendmsg([pack_connection_request(IPC_REQUEST_SIZE)],
                     [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        raw = b""
        while len(raw) < CONNECTION_RESPONSE_SIZE:
            raw += await trio.to_thread.run_sync(sock.recv, CONNECTION_RESPONSE_SIZE - len(raw))
        resp = parse_connection_response_untrusted(raw)
        assert resp.error == 0 and resp.connection_type == 1
        directory = os.path.dirname(resp.request)
        assert os.path.basename(directory).startswith(f"qb-{os.getpid()}-{os.getpid()}-")
        st = os.stat(directory)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o770)
        for ring in (resp.request, resp.response, resp.event):
            for suffix in ("-header", "-data"):
                st = os.stat(ring + suffix)
                assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
        (info,) = server.connections.values()
        assert (info.creds.uid, info.creds.gid) == (65534, 65534)
    finally:
        sock.close()
    await wait_until(lambda: not server.connections)
    assert not os.path.exists(directory)


async def test_shutdown_closes_clients_and_removes_files():
    handler = Handler()
    name = unique()
    server = IpcServer([name], handler)
    handler.server = server
    closed = []

    async def wait_event(c: IpcClient) -> None:
        try:
            await c.receive_event()
        except ConnectionClosed:
            closed.append("event")

    async def wait_response(c: IpcClient) -> None:
        try:
            await c.request(req(DEFER))
        except ConnectionClosed:
            closed.append("response")

    async with trio.open_nursery() as waiters:
        async with trio.open_nursery() as serving:
            await serving.start(server.serve)
            clients = [await IpcClient.connect(name) for _ in range(3)]
            dirs = [i.directory for i in server.connections.values()]
            waiters.start_soon(wait_event, clients[0])
            waiters.start_soon(wait_response, clients[1])
            await wait_until(lambda: handler.deferred)
            serving.cancel_scope.cancel()
        assert sorted(handler.disconnected) == [1, 2, 3]
        assert not any(os.path.exists(d) for d in dirs)
    assert sorted(closed) == ["event", "response"]
    for c in clients:
        await c.aclose()
    with pytest.raises(DaemonUnavailable):
        await IpcClient.connect(name)


async def test_stale_directories_of_dead_servers_are_swept(tmp_path, nursery):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"qb-{dead.pid}-1-2-abcdef"
    live = tmp_path / "qb-1-1-2-abcdef"  # pid 1 is alive
    other = tmp_path / f"qb-{dead.pid}-unrelated"
    for d in (stale, live, other):
        d.mkdir()
    (stale / "qb-request-cpg-data").write_bytes(b"x")
    server, handler, name = await start(nursery, shm_dir=str(tmp_path))
    assert not stale.exists() and live.exists() and other.exists()
    async with await IpcClient.connect(name) as client:  # rings in tmp_path work too
        assert body_of(await client.request(req(ECHO, b"t")), ECHO) == b"t"
        assert str(server.connections[1].directory).startswith(str(tmp_path))


async def test_address_in_use_is_explained(nursery):
    server, handler, name = await start(nursery)
    with pytest.raises(OSError, match="already in use"):
        await nursery.start(IpcServer([name], Handler()).serve)


async def test_round_trip_time(nursery):
    """Not a benchmark: a sanity bound on a small request's round trip (one process)."""
    server, handler, name = await start(nursery)
    async with await IpcClient.connect(name) as client:
        for _ in range(50):
            await client.request(req(ECHO, b"warm"))
        n = 500
        t0 = time.perf_counter()
        for _ in range(n):
            await client.request(req(ECHO, b"ping"))
        per = (time.perf_counter() - t0) / n
        print(f"round trip of a 20-byte request: {per * 1e6:.0f} us")
        assert per < 0.01
