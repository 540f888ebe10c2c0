"""glibc process-shared POSIX semaphores inside a shared mapping, through ctypes.

A libqb ring's header embeds a 32-byte ``sem_t`` that counts committed, unread chunks
(spec client-ipc.md §1.6). The other side may be a C program, so the semaphore must be
glibc's own: we call libc's ``sem_*`` on the address of the mapped bytes. ctypes
releases the GIL around these calls, so a blocking wait in a worker thread does not
stall the trio thread.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import time

SEM_SIZE = 32
"""``sizeof(sem_t)`` on x86_64/aarch64 glibc."""

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_sem_p = ctypes.c_void_p


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


for _name, _args in (("sem_init", [_sem_p, ctypes.c_int, ctypes.c_uint]),
                     ("sem_post", [_sem_p]),
                     ("sem_trywait", [_sem_p]),
                     ("sem_getvalue", [_sem_p, ctypes.POINTER(ctypes.c_int)]),
                     ("sem_timedwait", [_sem_p, ctypes.POINTER(_Timespec)])):
    getattr(_libc, _name).argtypes = _args
    getattr(_libc, _name).restype = ctypes.c_int

_clockwait = getattr(_libc, "sem_clockwait", None)
"""glibc >= 2.30: waits against CLOCK_MONOTONIC, immune to wall-clock steps."""
if _clockwait is not None:
    _clockwait.argtypes = [_sem_p, ctypes.c_int, ctypes.POINTER(_Timespec)]
    _clockwait.restype = ctypes.c_int


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


class SharedSemaphore:
    """The ``sem_t`` at ``offset`` of a shared mapping.

    It holds a ctypes export of the mapping: call :meth:`release` before closing the
    mapping (and never while another thread may still be waiting on it).
    """

    def __init__(self, buf: mmap.mmap, offset: int) -> None:
        self._anchor: ctypes.c_char | None = ctypes.c_char.from_buffer(buf, offset)
        self.address = ctypes.addressof(self._anchor)

    def init(self, value: int = 0) -> None:
        """``sem_init(sem, pshared=1, value)``: only the creator of the ring does this."""
        if _libc.sem_init(self.address, 1, value) != 0:
            _raise("sem_init")

    def post(self) -> None:
        if _libc.sem_post(self.address) != 0:
            _raise("sem_post")

    def try_acquire(self) -> bool:
        """Take one count without blocking; False when the value is 0."""
        while _libc.sem_trywait(self.address) != 0:
            err = ctypes.get_errno()
            if err == errno.EAGAIN:
                return False
            if err != errno.EINTR:
                _raise("sem_trywait")
        return True

    def acquire(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for one count (call from a worker thread)."""
        ts = _Timespec()
        if _clockwait is not None:
            deadline = time.clock_gettime(time.CLOCK_MONOTONIC) + timeout
        else:
            deadline = time.time() + timeout
        ts.tv_sec = int(deadline)
        ts.tv_nsec = int((deadline - ts.tv_sec) * 1e9)
        while True:
            if _clockwait is not None:
                rc = _clockwait(self.address, time.CLOCK_MONOTONIC, ctypes.byref(ts))
            else:
                rc = _libc.sem_timedwait(self.address, ctypes.byref(ts))
            if rc == 0:
                return True
            err = ctypes.get_errno()
            if err == errno.ETIMEDOUT:
                return False
            if err != errno.EINTR:
                _raise("sem_clockwait")

    def value(self) -> int:
        v = ctypes.c_int()
        if _libc.sem_getvalue(self.address, ctypes.byref(v)) != 0:
            _raise("sem_getvalue")
        return v.value

    def release(self) -> None:
        """Drop the export of the mapping so that it can be closed."""
        self._anchor = None
        self.address = 0
