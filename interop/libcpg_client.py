"""A client of the real libcpg.so.4 (through ctypes) for the interop tests.

Run inside a node's namespaces, it does what a C program built on libcpg does:
``cpg_initialize`` with deliver and confchg callbacks, ``cpg_local_get``,
``cpg_join``, ``cpg_mcast_joined`` (retrying CS_ERR_TRY_AGAIN), ``cpg_dispatch`` until
it has received its own messages back, ``cpg_leave``, ``cpg_finalize``. It prints one
JSON line per call result and per callback, so a test can check what the daemon
(totemd or corosync) did for an unmodified libcpg client.

    python -m interop.libcpg_client GROUP COUNT [SIZE [MEMBERS]]

With MEMBERS it waits for that many group members before sending and, before
leaving, for COUNT messages from each of them.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import sys
import time

CS_OK = 1
CS_ERR_TRY_AGAIN = 6
CS_DISPATCH_ALL = 2
CPG_TYPE_AGREED = 2


class CpgName(ctypes.Structure):
    _fields_ = [("length", ctypes.c_uint32), ("value", ctypes.c_char * 128)]


class CpgAddress(ctypes.Structure):
    _fields_ = [("nodeid", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("reason", ctypes.c_uint32)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


DELIVER_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName), ctypes.c_uint32,
                              ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
CONFCHG_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName),
                              ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                              ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                              ctypes.POINTER(CpgAddress), ctypes.c_size_t)


class CpgCallbacks(ctypes.Structure):
    _fields_ = [("deliver", DELIVER_FN), ("confchg", CONFCHG_FN)]


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main(group: bytes, count: int, size: int, members: int = 1) -> int:
    lib = ctypes.CDLL("libcpg.so.4")
    received: list[tuple[int, int, bytes]] = []
    current: list[int] = [0]

    def deliver(handle, name, nodeid, pid, msg, length) -> None:
        data = ctypes.string_at(msg, length)
        received.append((nodeid, pid, data))
        emit(cb="deliver", nodeid=nodeid, pid=pid, len=length, head=data[:16].decode(errors="replace"))

    def confchg(handle, name, members, n_members, left, n_left, joined, n_joined) -> None:
        current[0] = n_members
        emit(cb="confchg", members=[[members[i].nodeid, members[i].pid] for i in range(n_members)],
             left=[[left[i].nodeid, left[i].pid, left[i].reason] for i in range(n_left)],
             joined=[[joined[i].nodeid, joined[i].pid, joined[i].reason] for i in range(n_joined)])

    callbacks = CpgCallbacks(DELIVER_FN(deliver), CONFCHG_FN(confchg))
    handle = ctypes.c_uint64()
    for _ in range(50):
        rc = lib.cpg_initialize(ctypes.byref(handle), ctypes.byref(callbacks))
        if rc != CS_ERR_TRY_AGAIN:
            break
        time.sleep(0.1)
    emit(call="cpg_initialize", rc=rc)
    if rc != CS_OK:
        return 1
    nodeid = ctypes.c_uint32()
    emit(call="cpg_local_get", rc=lib.cpg_local_get(handle, ctypes.byref(nodeid)), nodeid=nodeid.value)
    fd = ctypes.c_int()
    lib.cpg_fd_get(handle, ctypes.byref(fd))
    name = CpgName(len(group), group)
    emit(call="cpg_join", rc=lib.cpg_join(handle, ctypes.byref(name)))

    def dispatch(timeout: float) -> None:
        if select.select([fd.value], [], [], timeout)[0]:
            lib.cpg_dispatch(handle, CS_DISPATCH_ALL)

    deadline = time.monotonic() + 30
    while current[0] < members and time.monotonic() < deadline:
        dispatch(0.1)
    mine = 0
    me = os.getpid()
    for k in range(count):
        data = f"msg {k:06d} ".encode().ljust(size, b"x")
        buf = ctypes.create_string_buffer(data, len(data))
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
        while (rc := lib.cpg_mcast_joined(handle, CPG_TYPE_AGREED, ctypes.byref(iov), 1)) == CS_ERR_TRY_AGAIN:
            dispatch(0.01)
        if rc != CS_OK:
            emit(call="cpg_mcast_joined", rc=rc, k=k)
            return 1
    emit(call="cpg_mcast_joined", rc=CS_OK, count=count)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = sum(1 for n, p, _ in received if n == nodeid.value and p == me)
        per_sender: dict[tuple[int, int], int] = {}
        for n, p, _ in received:
            per_sender[(n, p)] = per_sender.get((n, p), 0) + 1
        if mine >= count and sum(1 for v in per_sender.values() if v >= count) >= members:
            break
        dispatch(0.2)
    emit(call="own_messages", received=mine)
    emit(call="cpg_leave", rc=lib.cpg_leave(handle, ctypes.byref(name)))
    time.sleep(0.3)
    dispatch(0.2)
    emit(call="cpg_finalize", rc=lib.cpg_finalize(handle))
    return 0 if mine == count else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 64,
                  int(sys.argv[4]) if len(sys.argv) > 4 else 1))
