"""libqb's shared-memory ring buffer (``qb_rb``), both ends (spec client-ipc.md §1.6).

A ring is two files: ``<name>-header`` holds ``struct qb_ringbuffer_shared_s`` (read
and write pointers, paths, reference count, a glibc ``sem_t`` and optional user data
such as the flow-control word), ``<name>-data`` an array of 32-bit words holding
chunks ``[length][magic][payload padded to words]``. libqb maps the data file twice
back to back so a chunk may run past the end; here copies are split at the end of
the file instead, which gives the same bytes.

One side writes chunks and the other reads them. Each side keeps its own copy of
the pointer it advances and only *reads* the other side's pointer from shared
memory, checking it is in range, so a broken peer cannot make us index outside the
mapping. Sizes follow libqb's formulas exactly: the client recomputes them from the
negotiated ``max_msg_size`` and ``ftruncate``s the files to its own numbers.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

from construct import Bytes, Int32sl, Int32ul, Padding, Struct

from ..wire.errors import WireError
from .handshake import PATH_MAX
from .semaphore import SEM_SIZE, SharedSemaphore

PAGE_SIZE = mmap.PAGESIZE
CHUNK_HEADER_WORDS = 2
CHUNK_MARGIN = 4 * (CHUNK_HEADER_WORDS + 1)
"""Room a chunk needs beyond its payload: two header words and one word of rounding."""
MAGIC_COMMITTED = 0xA1A1A1A1
MAGIC_ALLOC = 0xA110CED0
MAGIC_CONSUMED = 0xD0D0D0D0
USER_DATA_SIZE = 4
"""libqb's IPC rings carry one int32 of user data: the request ring's flow-control word."""

RingHeader = Struct(
    "write_pt" / Int32ul,
    "read_pt" / Int32ul,
    "word_size" / Int32ul,
    "hdr_path" / Bytes(PATH_MAX),
    "data_path" / Bytes(PATH_MAX),
    "ref_count" / Int32sl,
    "posix_sem" / Bytes(SEM_SIZE),
    "user_data" / Bytes(1),
    Padding(7),
)
"""``struct qb_ringbuffer_shared_s`` on x86_64 glibc (8-byte aligned: 8,248 bytes)."""

HEADER_SIZE = RingHeader.sizeof()


def _offsets(layout: Struct) -> dict[str, int]:
    offsets, at = {}, 0
    for sub in layout.subcons:
        if sub.name:
            offsets[sub.name] = at
        at += sub.sizeof()
    return offsets


_OFF = _offsets(RingHeader)
assert HEADER_SIZE == 8248 and _OFF["posix_sem"] == 8208 and _OFF["user_data"] == 8240
_W_WRITE_PT = _OFF["write_pt"] // 4
_W_READ_PT = _OFF["read_pt"] // 4
_W_WORD_SIZE = _OFF["word_size"] // 4
_W_REF_COUNT = _OFF["ref_count"] // 4
_W_USER_DATA = _OFF["user_data"] // 4


def data_size(max_msg_size: int, page_size: int = PAGE_SIZE) -> int:
    """Bytes of a ring's data file: (max_msg_size + margin + 1) rounded up to pages."""
    need = max_msg_size + CHUNK_MARGIN + 1
    return -(-need // page_size) * page_size


def header_file_size(user_data_size: int = USER_DATA_SIZE) -> int:
    """Bytes of a ring's header file: the struct plus the user data."""
    return HEADER_SIZE + user_data_size


def _signed(word: int) -> int:
    return word - (1 << 32) if word & 0x80000000 else word


def _c_string(raw: bytes) -> str:
    return os.fsdecode(raw.split(b"\0", 1)[0])


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    ino: int


class Ring:
    """One mapped ring: :meth:`create` (server) or :meth:`open` (client).

    The chunk format and the order of the stores follow libqb: header words, payload,
    length, write pointer, COMMITTED magic, then ``sem_post``; the reader checks the
    magic, copies, marks the chunk CONSUMED and advances the read pointer.
    """

    def __init__(self, header: _File, data: _File, hmap: mmap.mmap, dmap: mmap.mmap,
                 user_data_size: int) -> None:
        self.header_file = header
        self.data_file = data
        self._hmap = hmap
        self._dmap = dmap
        self._h = memoryview(hmap).cast("I")
        self._w = memoryview(dmap).cast("I")
        self.size = data.size
        self.word_size = data.size // 4
        self.user_data_size = user_data_size
        self.sem = SharedSemaphore(hmap, _OFF["posix_sem"])
        self._write_pt = self._h[_W_WRITE_PT]
        self._read_pt = self._h[_W_READ_PT]
        if self._write_pt >= self.word_size or self._read_pt >= self.word_size:
            self.close(unlink=False)
            raise WireError(f"ring {header.path} pointers out of range", _OFF["write_pt"])
        self.closed = False

    # -- creation and opening ----------------------------------------------------------

    @property
    def name(self) -> str:
        """The ring's name as the connection response carries it (no suffix)."""
        return self.header_file.path[: -len("-header")]

    @classmethod
    def create(cls, name: str, max_msg_size: int, *, uid: int | None = None,
               gid: int | None = None, mode: int = 0o600,
               user_data_size: int = USER_DATA_SIZE) -> "Ring":
        """Create ``<name>-header`` and ``<name>-data`` (``O_EXCL``), sized as libqb's
        server does, owned by ``uid``/``gid`` so that a non-root client can open them."""
        hsize = header_file_size(user_data_size)
        dsize = data_size(max_msg_size)
        made: list[str] = []
        maps: list[mmap.mmap] = []
        try:
            hfile, hmap = _create_file(name + "-header", hsize, uid, gid, mode)
            made.append(hfile.path)
            maps.append(hmap)
            dfile, dmap = _create_file(name + "-data", dsize, uid, gid, mode)
            made.append(dfile.path)
            maps.append(dmap)
            h = memoryview(hmap).cast("I")
            try:
                h[_W_WORD_SIZE] = dsize // 4
                h[_W_REF_COUNT] = 1
            finally:
                h.release()
            for field, path in (("hdr_path", hfile.path), ("data_path", dfile.path)):
                raw = os.fsencode(path)
                hmap[_OFF[field]:_OFF[field] + len(raw)] = raw
            ring = cls(hfile, dfile, hmap, dmap, user_data_size)
            ring.sem.init(0)
            return ring
        except BaseException:
            for m in maps:
                m.close()
            for path in made:
                _unlink(path)
            raise

    @classmethod
    def open(cls, name: str, max_msg_size: int, *,
             user_data_size: int = USER_DATA_SIZE) -> "Ring":
        """Map a ring the server created, check it has libqb's sizes, and add our
        reference (the server checks nothing, libqb clients insist on 2)."""
        hsize = header_file_size(user_data_size)
        dsize = data_size(max_msg_size)
        hfile, hmap = _open_file(name + "-header", hsize)
        try:
            h = memoryview(hmap).cast("I")
            try:
                word_size = h[_W_WORD_SIZE]
            finally:
                h.release()
            if word_size * 4 != dsize:
                raise WireError(f"ring {name} has {word_size} words, libqb's formula gives "
                                f"{dsize // 4} for max_msg_size {max_msg_size}", _OFF["word_size"])
            data_path = _c_string(hmap[_OFF["data_path"]:_OFF["data_path"] + PATH_MAX])
            dfile, dmap = _open_file(data_path, dsize)
        except BaseException:
            hmap.close()
            raise
        ring = cls(hfile, dfile, hmap, dmap, user_data_size)
        ring.add_ref(1)
        return ring

    # -- shared header fields ----------------------------------------------------------

    @property
    def ref_count(self) -> int:
        return _signed(self._h[_W_REF_COUNT])

    def add_ref(self, delta: int) -> None:
        """Change the reference count. Not atomic (Python has no shared-memory atomics);
        libqb changes it only when a side opens or closes, never concurrently with us
        in a way that matters (the count is only compared with 2 before a send)."""
        self._h[_W_REF_COUNT] = (self.ref_count + delta) & 0xFFFFFFFF

    @property
    def flow_control(self) -> int:
        """The request ring's flow-control word: 0 send, 1 block all, 2 block cpg mcast."""
        if self.user_data_size < 4:
            return 0
        return _signed(self._h[_W_USER_DATA])

    @flow_control.setter
    def flow_control(self, level: int) -> None:
        if self.user_data_size < 4:
            raise ValueError("this ring has no flow-control word")
        self._h[_W_USER_DATA] = level & 0xFFFFFFFF

    @property
    def capacity(self) -> int:
        """The largest payload the empty ring can take."""
        return self.size - CHUNK_MARGIN

    def pending(self) -> int:
        """Committed chunks not yet taken by the reader (the semaphore's value)."""
        return self.sem.value()

    # -- chunks --------------------------------------------------------------------------

    def _step(self, pt: int, length: int) -> int:
        pt += CHUNK_HEADER_WORDS + (length + 3) // 4
        if pt > self.word_size - 1:
            pt %= self.word_size
        return pt

    def space_free(self) -> int:
        """Bytes free for the writer, computed as libqb does (equal pointers mean empty
        unless the semaphore says a chunk is waiting)."""
        write, read = self._write_pt, self._h[_W_READ_PT]
        if read >= self.word_size:
            raise WireError(f"ring {self.name}: read pointer {read} out of range "
                            f"(word size {self.word_size})", _OFF["read_pt"])
        if write > read:
            free = read - write + self.word_size - 1
        elif write < read:
            free = read - write - 1
        else:
            free = 0 if self.sem.value() > 0 else self.word_size
        return free * 4

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Commit one chunk and post the semaphore; False (nothing written) when full."""
        n = len(data)
        if n + CHUNK_MARGIN > self.space_free():
            return False
        ws, w, pt = self.word_size, self._w, self._write_pt
        magic = (pt + 1) % ws
        w[pt] = 0
        w[magic] = MAGIC_ALLOC
        self._copy_in((pt + CHUNK_HEADER_WORDS) % ws, data)
        w[pt] = n
        self._write_pt = self._step(pt, n)
        self._h[_W_WRITE_PT] = self._write_pt
        w[magic] = MAGIC_COMMITTED
        self.sem.post()
        return True

    def read(self) -> bytes:
        """Take the chunk at the read pointer; the caller already took its semaphore count."""
        ws, w, pt = self.word_size, self._w, self._read_pt
        magic = (pt + 1) % ws
        if w[magic] != MAGIC_COMMITTED:
            raise WireError(f"ring {self.name}: chunk at word {pt} is not committed "
                            f"(magic {w[magic]:#010x})", magic * 4)
        n = w[pt]
        if n > self.capacity:
            raise WireError(f"ring {self.name}: chunk at word {pt} claims {n} bytes, "
                            f"the ring holds at most {self.capacity}", pt * 4)
        data = self._copy_out((pt + CHUNK_HEADER_WORDS) % ws, n)
        w[pt] = 0
        w[magic] = MAGIC_CONSUMED
        self._read_pt = self._step(pt, n)
        self._h[_W_READ_PT] = self._read_pt
        return data

    def try_read(self) -> bytes | None:
        """One chunk if the semaphore has a count, else None (never blocks)."""
        if not self.sem.try_acquire():
            return None
        return self.read()

    def _copy_in(self, word: int, data: bytes | bytearray | memoryview) -> None:
        at, n, m = word * 4, len(data), self._dmap
        if at + n <= self.size:
            m[at:at + n] = data
        else:
            first = self.size - at
            view = memoryview(data)
            m[at:] = view[:first]
            m[:n - first] = view[first:]

    def _copy_out(self, word: int, n: int) -> bytes:
        at, m = word * 4, self._dmap
        if at + n <= self.size:
            return m[at:at + n]
        first = self.size - at
        return m[at:] + m[:n - first]

    # -- files -------------------------------------------------------------------------

    def files_intact(self) -> bool:
        """Both files still exist and cover what we touch (a peer that truncates a
        mapped file would make the next access raise SIGBUS, which Python cannot
        survive). libqb's client truncates the response and event headers to the bare
        struct, so headers only need :data:`HEADER_SIZE` bytes."""
        for f, need in ((self.header_file, HEADER_SIZE), (self.data_file, self.data_file.size)):
            try:
                st = os.stat(f.path)
            except OSError:
                return False
            if st.st_ino != f.ino or st.st_size < need:
                return False
        return True

    def close(self, *, unlink: bool) -> None:
        """Unmap (and, for the creator or after a dead server, unlink) the files."""
        if getattr(self, "closed", False):
            return
        self.closed = True
        self.sem.release()
        self._h.release()
        self._w.release()
        self._hmap.close()
        self._dmap.close()
        if unlink:
            _unlink(self.header_file.path)
            _unlink(self.data_file.path)


def _create_file(path: str, size: int, uid: int | None, gid: int | None,
                 mode: int) -> tuple[_File, mmap.mmap]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, size)  # ENOSPC now rather than SIGBUS later
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.fchmod(fd, mode)
        mm = mmap.mmap(fd, size)
        return _File(path, size, os.fstat(fd).st_ino), mm
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(fd)


def _open_file(path: str, size: int) -> tuple[_File, mmap.mmap]:
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_size < size:
            raise WireError(f"{path} has {st.st_size} bytes, expected {size}", 0)
        return _File(path, size, st.st_ino), mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
