"""What can go wrong on a libqb IPC connection, as exceptions and as ``cs_error_t``.

libqb reports failures as negative errno values; corosync's client libraries turn them
into ``cs_error_t`` codes with ``qb_to_cs_error`` (spec client-ipc.md §2.1).
:func:`cs_error_from_errno` is that table, so a refused handshake surfaces with the
same code a C client would see.
"""

from __future__ import annotations

import errno as _errno
import os

from ..lib.common import CsError

_CS_OF_ERRNO = {
    _errno.EAGAIN: CsError.TRY_AGAIN,
    _errno.ETIMEDOUT: CsError.TRY_AGAIN,
    _errno.ENOBUFS: CsError.TRY_AGAIN,
    _errno.ENOMSG: CsError.TRY_AGAIN,
    _errno.EBADF: CsError.BAD_HANDLE,
    _errno.ENOMEM: CsError.NO_MEMORY,
    _errno.EINVAL: CsError.INVALID_PARAM,
    _errno.EBUSY: CsError.BUSY,
    _errno.EACCES: CsError.ACCESS,
    _errno.EEXIST: CsError.EXIST,
    _errno.ENOENT: CsError.NOT_EXIST,
    _errno.ENODEV: CsError.NOT_EXIST,
    _errno.ENOSYS: CsError.NOT_SUPPORTED,
    _errno.ENOTSUP: CsError.NOT_SUPPORTED,
    _errno.EMSGSIZE: CsError.TOO_BIG,
    _errno.E2BIG: CsError.TOO_BIG,
    _errno.EBADMSG: CsError.MESSAGE_ERROR,
}


def cs_error_from_errno(err: int) -> CsError:
    """The ``cs_error_t`` corosync's libraries report for a (positive) errno."""
    return _CS_OF_ERRNO.get(abs(err), CsError.LIBRARY)


class IpcError(Exception):
    """Base of every IPC failure; ``cs_error`` is what a C client would get."""

    cs_error: CsError = CsError.LIBRARY


class DaemonUnavailable(IpcError):
    """Nothing listens on the service's setup socket, or it hung up during the handshake."""


class IpcRefused(IpcError):
    """The daemon answered the handshake with a negative errno (e.g. -EACCES, -EAGAIN)."""

    def __init__(self, service: str, err: int) -> None:
        self.service = service
        self.errno = abs(err)
        self.cs_error = cs_error_from_errno(self.errno)
        name = _errno.errorcode.get(self.errno, str(self.errno))
        super().__init__(f"the daemon refused the '{service}' IPC connection: "
                         f"{name} ({os.strerror(self.errno)}), {self.cs_error.name}")


class TryAgain(IpcError):
    """The daemon asks the client to wait (flow control, or its request ring is full)."""

    cs_error = CsError.TRY_AGAIN


class ServiceError(IpcError):
    """The daemon answered a request with an error (``cs_error``: a :class:`CsError`)."""

    def __init__(self, what: str, error: int) -> None:
        try:
            self.cs_error = CsError(error)
            name = self.cs_error.name
        except ValueError:
            self.cs_error = CsError.LIBRARY
            name = str(error)
        super().__init__(f"{what}: {name}")


class ConnectionClosed(IpcError):
    """The daemon closed the connection, or the client was closed."""
