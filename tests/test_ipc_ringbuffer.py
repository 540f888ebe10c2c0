"""The libqb shm ring buffer: sizes, chunk format, wrap-around, full ring, semaphores.

The last tests map the same files with the real libqb (``libqb.so.100`` through
ctypes, no daemon) and move chunks both ways, which checks the sizes and the chunk
format against the library itself.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import tempfile
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totem.ipc.handshake import (
    CONNECTION_RESPONSE_SIZE,
    ConnResponse,
    pack_connection_request,
    pack_connection_response,
    parse_connection_response_untrusted,
)
from totem.ipc.ringbuffer import (
    CHUNK_MARGIN,
    HEADER_SIZE,
    MAGIC_ALLOC,
    MAGIC_COMMITTED,
    MAGIC_CONSUMED,
    Ring,
    data_size,
    header_file_size,
)
from totem.lib.common import IPC_REQUEST_SIZE
from totem.wire.errors import WireError


@pytest.fixture
def shm():
    path = tempfile.mkdtemp(prefix="pytotem-rb-", dir="/dev/shm")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pair(shm: str, max_msg_size: int = 100) -> tuple[Ring, Ring]:
    """A server-created ring and the client's view of it."""
    name = os.path.join(shm, "qb-request-t")
    return Ring.create(name, max_msg_size), Ring.open(name, max_msg_size)


def words(path: str) -> tuple[int, ...]:
    raw = open(path, "rb").read()
    return struct.unpack(f"<{len(raw) // 4}I", raw)


# -- sizes -------------------------------------------------------------------------------

def test_sizes_are_libqbs_for_one_mebibyte():
    assert data_size(IPC_REQUEST_SIZE) == 1_052_672
    assert HEADER_SIZE == 8248
    assert header_file_size() == 8252
    assert data_size(IPC_REQUEST_SIZE) // 4 == 263_168
    assert data_size(0) == 4096
    assert data_size(4096 - 13) == 4096 and data_size(4096 - 12) == 8192


def test_created_files_header_fields_and_client_reference(shm):
    name = os.path.join(shm, "qb-response-cpg")
    server = Ring.create(name, IPC_REQUEST_SIZE)
    try:
        assert os.path.getsize(name + "-header") == 8252
        assert os.path.getsize(name + "-data") == 1_052_672
        assert oct(os.stat(name + "-data").st_mode & 0o777) == "0o600"
        hdr = open(name + "-header", "rb").read()
        write_pt, read_pt, word_size = struct.unpack_from("<3I", hdr, 0)
        assert (write_pt, read_pt, word_size) == (0, 0, 263_168)
        assert hdr[12:12 + 4096].rstrip(b"\0") == (name + "-header").encode()
        assert hdr[4108:4108 + 4096].rstrip(b"\0") == (name + "-data").encode()
        assert struct.unpack_from("<i", hdr, 8204)[0] == 1  # ref_count
        # glibc's sem_t: 64-bit value+waiters word, then "private" = 128 (FUTEX_SHARED).
        # An all-zero sem_t would be a process-*private* one: cross-process wake-ups lost.
        assert struct.unpack_from("<QI", hdr, 8208) == (0, 128)
        assert server.ref_count == 1 and server.pending() == 0
        client = Ring.open(name, IPC_REQUEST_SIZE, user_data_size=0)
        assert server.ref_count == 2
        client.add_ref(-1)
        client.close(unlink=False)
        assert server.ref_count == 1
        assert server.name == name
    finally:
        server.close(unlink=True)
    assert not os.path.exists(name + "-header") and not os.path.exists(name + "-data")


def test_open_refuses_a_ring_of_another_size(shm):
    name = os.path.join(shm, "qb-event-x")
    server = Ring.create(name, 100)
    try:
        with pytest.raises(WireError, match="formula"):
            Ring.open(name, IPC_REQUEST_SIZE)
    finally:
        server.close(unlink=True)


def test_flow_control_word_is_user_data_at_8240(shm):
    server, client = pair(shm)
    server.flow_control = 2
    assert client.flow_control == 2
    assert struct.unpack_from("<i", open(server.header_file.path, "rb").read(), 8240)[0] == 2
    server.flow_control = 0
    assert client.flow_control == 0


# -- chunks ------------------------------------------------------------------------------

def test_chunk_layout_and_semaphore_counts(shm):
    server, client = pair(shm)
    assert client.write(b"hello")
    w = words(server.data_file.path)
    assert w[0] == 5 and w[1] == MAGIC_COMMITTED
    assert open(server.data_file.path, "rb").read()[8:13] == b"hello"
    assert server.pending() == 1 and client.write(b"") and server.pending() == 2
    assert server.try_read() == b"hello"
    w = words(server.data_file.path)
    assert w[0] == 0 and w[1] == MAGIC_CONSUMED
    assert server.pending() == 1 and server.try_read() == b"" and server.pending() == 0
    assert server.try_read() is None
    # write pointer: 2 header words + ceil(5/4) = 4 words, then 2 more for the empty chunk
    assert struct.unpack_from("<2I", open(server.header_file.path, "rb").read())[0:2] == (6, 6)


def test_wrap_around_at_the_end_of_the_data_area(shm):
    server, client = pair(shm)  # 4096-byte data area: 1024 words
    assert server.word_size == 1024 and server.capacity == 4096 - CHUNK_MARGIN
    assert client.write(b"a" * 4000) and server.try_read() == b"a" * 4000  # pointers at 1002
    payload = bytes(range(200))
    assert client.write(payload)  # words 1004.. run past 1023 into the start
    raw = open(server.data_file.path, "rb").read()
    assert raw[1004 * 4:] == payload[:80] and raw[:120] == payload[80:]
    assert struct.unpack_from("<I", open(server.header_file.path, "rb").read())[0] == 30
    assert server.try_read() == payload


def test_wrap_around_of_the_magic_word(shm):
    server, client = pair(shm)
    assert client.write(b"x" * 4084) and server.try_read() == b"x" * 4084  # pointers at 1023
    assert client.write(b"wrapped!")
    w = words(server.data_file.path)
    assert w[1023] == 8 and w[0] == MAGIC_COMMITTED
    assert server.try_read() == b"wrapped!"


def test_full_ring_refuses_until_the_reader_frees_space(shm):
    server, client = pair(shm)
    assert client.write(b"1" * 2000) and client.write(b"2" * 2000)
    assert client.space_free() < 100 + CHUNK_MARGIN
    assert not client.write(b"3" * 100)
    assert server.pending() == 2
    assert server.try_read() == b"1" * 2000
    assert client.write(b"3" * 100)
    assert [server.try_read(), server.try_read(), server.try_read()] == [
        b"2" * 2000, b"3" * 100, None]


def test_largest_chunk_fills_the_empty_ring(shm):
    server, client = pair(shm)
    assert not client.write(b"z" * (server.capacity + 1))
    assert client.write(b"z" * server.capacity)
    assert client.space_free() == 0 and not client.write(b"")
    assert server.try_read() == b"z" * server.capacity


def test_equal_pointers_with_a_waiting_chunk_mean_full(shm):
    server, client = pair(shm)
    client.sem.post()  # a count with the pointers still equal: libqb reads that as full
    assert client.space_free() == 0
    assert server.sem.try_acquire()
    assert client.space_free() == 4096


def test_uncommitted_and_oversized_chunks_are_refused(shm):
    server, client = pair(shm)
    data = os.path.join(shm, "qb-request-t-data")
    with open(data, "r+b") as f:  # a half-written chunk, as a killed client leaves it
        f.write(struct.pack("<2I", 0, MAGIC_ALLOC))
    client.sem.post()
    with pytest.raises(WireError, match="not committed"):
        server.try_read()
    with open(data, "r+b") as f:
        f.write(struct.pack("<2I", 10_000, MAGIC_COMMITTED))
    client.sem.post()
    with pytest.raises(WireError, match="claims 10000 bytes"):
        server.try_read()


def test_read_pointer_out_of_range_is_refused(shm):
    server, client = pair(shm)
    with open(server.header_file.path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 5000))
    with pytest.raises(WireError, match="out of range"):
        client.write(b"x")


def test_truncated_files_are_noticed(shm):
    server, client = pair(shm)
    assert server.files_intact()
    os.truncate(server.header_file.path, HEADER_SIZE)  # what libqb's client does: fine
    assert server.files_intact()
    os.truncate(server.data_file.path, 1024)
    assert not server.files_intact()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(min_value=0, max_value=1500), st.none()), max_size=80))
def test_fifo_against_a_model(ops):
    shm = tempfile.mkdtemp(prefix="pytotem-rb-", dir="/dev/shm")
    try:
        server, client = pair(shm)
        model: deque[bytes] = deque()
        for i, op in enumerate(ops):
            if op is None:
                got = server.try_read()
                assert got == (model.popleft() if model else None)
            else:
                data = bytes([i % 256]) * op
                free = client.space_free()
                ok = client.write(data)
                assert ok == (op + CHUNK_MARGIN <= free)
                if ok:
                    model.append(data)
            assert server.pending() == len(model)
        while model:
            assert server.try_read() == model.popleft()
    finally:
        shutil.rmtree(shm, ignore_errors=True)


# -- handshake layouts ---------------------------------------------------------------------

def test_connection_request_bytes_are_libqbs():
    assert pack_connection_request(IPC_REQUEST_SIZE) == bytes.fromhex(
        "ffffffff00000000" "1800000000000000" "0000100000000000")


def test_connection_response_round_trip():
    resp = ConnResponse(0, 1, IPC_REQUEST_SIZE, 7, "/dev/shm/qb-1-2-3-abcdef/qb-request-cpg",
                        "/dev/shm/qb-1-2-3-abcdef/qb-response-cpg", "/dev/shm/qb-1-2-3-abcdef/qb-event-cpg")
    raw = pack_connection_response(resp)
    assert len(raw) == CONNECTION_RESPONSE_SIZE == 12328
    assert raw[40:40 + 4] == b"/dev" and raw[4136:4140] == b"/dev" and raw[8232:8236] == b"/dev"
    assert parse_connection_response_untrusted(raw) == resp
    refused = parse_connection_response_untrusted(pack_connection_response(ConnResponse(-13)))
    assert refused.error == -13 and refused.request == ""


# -- against the real libqb ------------------------------------------------------------------

QB_RB_FLAG_CREATE = 0x01
QB_RB_FLAG_SHARED_PROCESS = 0x08


@pytest.fixture
def libqb():
    try:
        lib = ctypes.CDLL("libqb.so.100")
    except OSError:
        pytest.skip("libqb.so.100 is not installed (apt-get install libqb100)")
    lib.qb_rb_open.restype = ctypes.c_void_p
    lib.qb_rb_open.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_size_t]
    lib.qb_rb_close.argtypes = [ctypes.c_void_p]
    lib.qb_rb_chunk_write.restype = ctypes.c_ssize_t
    lib.qb_rb_chunk_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.qb_rb_chunk_read.restype = ctypes.c_ssize_t
    lib.qb_rb_chunk_read.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32]
    lib.qb_rb_refcount_get.argtypes = [ctypes.c_void_p]
    return lib


def qb_read(lib, rb, size: int = 1 << 21) -> bytes | None:
    buf = ctypes.create_string_buffer(size)
    n = lib.qb_rb_chunk_read(rb, buf, size, 0)
    return None if n < 0 else buf.raw[:n]


@pytest.mark.parametrize("max_msg_size", [100, 5000, IPC_REQUEST_SIZE])
def test_libqb_client_opens_our_rings_at_the_same_size(shm, libqb, max_msg_size):
    """Our server-side rings, libqb's client side: one ring per direction, as in IPC."""
    to_client, to_server = os.path.join(shm, "qb-event-cpg"), os.path.join(shm, "qb-request-cpg")
    ours_out = Ring.create(to_client, max_msg_size)
    ours_in = Ring.create(to_server, max_msg_size)
    rb_in = libqb.qb_rb_open(to_client.encode(), max_msg_size, QB_RB_FLAG_SHARED_PROCESS, 0)
    rb_out = libqb.qb_rb_open(to_server.encode(), max_msg_size, QB_RB_FLAG_SHARED_PROCESS, 4)
    assert rb_in and rb_out, "qb_rb_open failed"
    try:
        for name in (to_client, to_server):  # libqb did not have to re-truncate them
            assert os.path.getsize(name + "-data") == data_size(max_msg_size)
        assert libqb.qb_rb_refcount_get(rb_in) == 2 and ours_out.ref_count == 2
        for lap in range(3):  # enough chunks to wrap around the smaller rings
            for size in (0, 1, 7, 24, max_msg_size, 3, max_msg_size // 2, 5):
                payload = os.urandom(size)
                assert ours_out.write(payload)
                assert qb_read(libqb, rb_in) == payload
                assert libqb.qb_rb_chunk_write(rb_out, payload, size) == size
                assert ours_in.try_read() == payload
        assert qb_read(libqb, rb_in) is None and ours_in.try_read() is None
    finally:
        libqb.qb_rb_close(rb_in)
        libqb.qb_rb_close(rb_out)
        ours_out.close(unlink=True)
        ours_in.close(unlink=True)


def test_we_open_a_ring_libqb_created(shm, libqb):
    name = os.path.join(shm, "qb-request-cmap")
    rb = libqb.qb_rb_open(name.encode(), 100, QB_RB_FLAG_CREATE | QB_RB_FLAG_SHARED_PROCESS, 4)
    assert rb
    try:
        ours = Ring.open(name, 100)
        for i in range(50):  # many laps around the 1024-word ring
            payload = bytes([i]) * (i * 37 % 1500)
            assert ours.write(payload)
            assert qb_read(libqb, rb) == payload
        ours.add_ref(-1)
        ours.close(unlink=False)
    finally:
        libqb.qb_rb_close(rb)
    assert not os.path.exists(name + "-data")
