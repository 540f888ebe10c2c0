"""Programs the libqb IPC interop tests run in other namespaces; each prints JSON lines.

``serve-libcpg <shm|socket>``
    Run inside a private network namespace (``unshare --net``): our IpcServer serves
    the service name ``cpg`` with a two-request test service (LOCAL_GET, FINALIZE), and
    real ``libcpg.so.4`` clients, separate processes using the system Python's ctypes,
    call ``cpg_initialize``, ``cpg_fd_get``, ``cpg_local_get`` and ``cpg_finalize`` -- once
    as root and once as ``nobody`` (the files must be chowned for that to work).

``corosync-client``
    Run inside real corosync's mount namespace (its private /dev/shm): our IpcClient
    does cpg LOCAL_GET, JOIN (and receives the CONFCHG event), cmap GET of
    ``totem.cluster_name``, then waits for an event until corosync is killed.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from totem.ipc import ConnectionClosed, IpcClient, IpcRefused, IpcServer  # noqa: E402
from totem.lib.common import (  # noqa: E402
    CsError,
    parse_request_header_untrusted,
    parse_response_header_untrusted,
    request_header,
    response_header,
)

NODEID = 0x1234567

CPG_LOCAL_GET, CPG_FINALIZE, CPG_JOIN = 4, 8, 0
RES_CPG_LOCAL_GET, RES_CPG_FINALIZE, RES_CPG_JOIN, CPG_CONFCHG_EVENT = 7, 12, 0, 4
CMAP_GET = 2

LIBCPG_CLIENT = r"""
import ctypes, json, os, socket, struct
lib = ctypes.CDLL("libcpg.so.4")
handle = ctypes.c_uint64()
out = {"uid": os.getuid(), "pid": os.getpid()}
out["initialize"] = lib.cpg_initialize(ctypes.byref(handle), None)
fd = ctypes.c_int(-1)
out["fd_get"] = lib.cpg_fd_get(handle, ctypes.byref(fd))
sock = socket.socket(fileno=os.dup(fd.value))
out["peercred"] = struct.unpack("iII", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
sock.close()
nodeid = ctypes.c_uint(0)
out["local_get"] = lib.cpg_local_get(handle, ctypes.byref(nodeid))
out["nodeid"] = nodeid.value
out["finalize"] = lib.cpg_finalize(handle)
print(json.dumps(out), flush=True)
"""


class CpgStub:
    """Answers the two requests the probe makes, and records what the server did."""

    def __init__(self) -> None:
        self.server: IpcServer | None = None
        self.log: list[dict] = []
        self.open: set[int] = set()

    def ipc_connect(self, conn_id, service, creds) -> int:
        self.open.add(conn_id)
        self.log.append({"connect": conn_id, "service": service, "uid": creds.uid, "pid": creds.pid})
        return 0

    def ipc_request(self, conn_id: int, data: bytes) -> None:
        assert self.server is not None
        msg_id, size = parse_request_header_untrusted(data)
        info = self.server.connections[conn_id]
        st = os.stat(info.directory)
        self.log.append({"request": msg_id, "size": size, "dir_uid": st.st_uid,
                         "dir_mode": st.st_mode & 0o777})
        if msg_id == CPG_LOCAL_GET:
            self.server.respond(conn_id, response_header(RES_CPG_LOCAL_GET, 32)
                                + struct.pack("<I4x", NODEID))
        elif msg_id == CPG_FINALIZE:
            self.server.respond(conn_id, response_header(RES_CPG_FINALIZE, 24))
        else:
            self.server.respond(conn_id, response_header(msg_id, 24, CsError.NOT_SUPPORTED))

    def ipc_disconnect(self, conn_id: int) -> None:
        self.open.discard(conn_id)
        self.log.append({"disconnect": conn_id})


async def serve_libcpg(transport: str) -> None:
    stub = CpgStub()
    server = IpcServer(["cpg"], stub, transport=transport)
    stub.server = server
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        for user in (None, 65534):
            dirs_before = set(os.listdir("/dev/shm"))
            res = await trio.to_thread.run_sync(lambda: subprocess.run(
                ["/usr/bin/python3", "-c", LIBCPG_CLIENT], capture_output=True, text=True,
                timeout=60, user=user, group=user, extra_groups=None if user is None else [],
                cwd="/"))
            with trio.move_on_after(5):
                while stub.open:
                    await trio.sleep(0.01)
            left = sorted(set(os.listdir("/dev/shm")) - dirs_before)
            print(json.dumps({"user": user, "returncode": res.returncode, "stderr": res.stderr[-2000:],
                              "client": json.loads(res.stdout) if res.stdout.strip() else None,
                              "server": stub.log, "left_in_dev_shm": left,
                              "server_pid": os.getpid()}), flush=True)
            stub.log = []
        nursery.cancel_scope.cancel()


def cpg_join_request(group: bytes, pid: int) -> bytes:
    body = struct.pack("<I4x128s", len(group), group) + struct.pack("<I4xI4x", pid, 0)
    return request_header(CPG_JOIN, 16 + len(body)) + body


def cmap_get_request(key: bytes, value_len: int) -> bytes:
    body = struct.pack("<H6x256sQ", len(key), key, value_len)
    return request_header(CMAP_GET, 16 + len(body)) + body


async def connect_when_ready(service: str) -> IpcClient:
    """corosync refuses with EAGAIN until its first sync is over."""
    with trio.fail_after(30):
        while True:
            try:
                return await IpcClient.connect(service)
            except IpcRefused as exc:
                if exc.cs_error != CsError.TRY_AGAIN:
                    raise
            await trio.sleep(0.2)


async def corosync_client() -> None:
    out: dict = {}
    cpg = await connect_when_ready("cpg")
    out["transport"] = cpg.transport
    out["max_msg_size"] = cpg.max_msg_size
    creds = cpg.server_creds
    out["server"] = {"pid": creds.pid, "uid": creds.uid, "gid": creds.gid,
                     "comm": Path(f"/proc/{creds.pid}/comm").read_text().strip()}
    resp = await cpg.request(request_header(CPG_LOCAL_GET, 16))
    out["local_get"] = list(parse_response_header_untrusted(resp)) + [
        struct.unpack_from("<I", resp, 24)[0]]
    t0 = time.perf_counter()
    for _ in range(200):
        await cpg.request(request_header(CPG_LOCAL_GET, 16))
    out["rtt_us"] = (time.perf_counter() - t0) / 200 * 1e6
    group = b"pytotem-ipc-interop"
    resp = await cpg.request(cpg_join_request(group, os.getpid()))
    out["join"] = list(parse_response_header_untrusted(resp))
    with trio.fail_after(10):
        event = await cpg.receive_event()
    msg_id, size, _err = parse_response_header_untrusted(event)
    glen, = struct.unpack_from("<I", event, 24)
    members, joined, left = struct.unpack_from("<I4xI4xI", event, 160)
    entries = [list(struct.unpack_from("<I4xI4xI", event, 184 + 24 * i))
               for i in range(members + left + joined)]  # nodeid, pid, reason
    out["confchg"] = {"id": msg_id, "size": size, "group": event[32:32 + glen].decode(),
                      "members": members, "left": left, "joined": joined, "entries": entries,
                      "client_pid": os.getpid()}

    async with await connect_when_ready("cmap") as cmap:
        key = b"totem.cluster_name"
        resp = await cmap.request(cmap_get_request(key, 0))
        head = parse_response_header_untrusted(resp)
        length, vtype = struct.unpack_from("<QB", resp, 24)
        out["cmap_len"] = list(head) + [length, vtype]
        resp = await cmap.request(cmap_get_request(key, length))
        out["cmap_get"] = list(parse_response_header_untrusted(resp)) + [
            resp[40:40 + length].decode()]
        resp = await cmap.request(cmap_get_request(b"no.such.key", 16))
        out["cmap_missing"] = list(parse_response_header_untrusted(resp))
    print(json.dumps(out), flush=True)

    # the test kills corosync now: a waiting receive_event must end promptly
    print(json.dumps({"waiting": True}), flush=True)
    t0 = time.monotonic()
    try:
        with trio.fail_after(20):
            await cpg.receive_event()
        result = "event"
    except ConnectionClosed as exc:
        result = f"closed: {exc}"
    try:
        await cpg.request(request_header(CPG_LOCAL_GET, 16))
        after = "answered"
    except ConnectionClosed:
        after = "closed"
    await cpg.aclose()
    print(json.dumps({"result": result, "after": after, "seconds": time.monotonic() - t0}),
          flush=True)


def main() -> None:
    if sys.argv[1] == "serve-libcpg":
        trio.run(serve_libcpg, sys.argv[2])
    elif sys.argv[1] == "corosync-client":
        trio.run(corosync_client)
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")


if __name__ == "__main__":
    main()
