"""Where a service's setup socket lives, decided exactly as libqb 2.0.6 decides it.

By default the name is in the Linux abstract namespace: ``sun_path`` is a NUL byte,
the service name, then NUL padding to the full 108 bytes, and the address length is
the whole ``struct sockaddr_un`` (libqb connects with the padded name, so a server
bound to the unpadded name would never be found). Abstract names belong to the
network namespace.

When ``/etc/libqb/force-filesystem-sockets`` exists, libqb uses a filesystem socket
``<SOCKETDIR>/<name>`` instead. SOCKETDIR is fixed when libqb is compiled; Debian's
libqb100 2.0.6 was built with ``/tmp`` (seen with strace: ``corosync-cmapctl``
connects to ``/tmp/cmap`` when the file exists), not the upstream default
``$localstatedir/run``.

Names that start with ``/`` (the socket transport's per-connection datagram sockets)
are always abstract, whatever the file says.
"""

from __future__ import annotations

import os

FORCE_FILESYSTEM_SOCKETS = "/etc/libqb/force-filesystem-sockets"
LIBQB_SOCKETDIR = "/tmp"
"""The SOCKETDIR compiled into Debian 12's libqb.so.100 (2.0.6-2)."""
UNIX_PATH_MAX = 108


def use_filesystem_sockets() -> bool:
    """libqb's rule: the force file exists (libqb ``stat``s it, so any file type counts)."""
    return os.path.lexists(FORCE_FILESYSTEM_SOCKETS)


def abstract_address(name: str) -> bytes:
    """``\\0name`` padded with NULs to 108 bytes, as libqb binds and connects."""
    raw = b"\0" + os.fsencode(name)
    if len(raw) > UNIX_PATH_MAX:
        raise ValueError(f"abstract socket name {name!r} is longer than {UNIX_PATH_MAX - 1} bytes")
    return raw.ljust(UNIX_PATH_MAX, b"\0")


def setup_address(service: str, socket_dir: str | None = None) -> bytes | str:
    """The address of ``service``'s setup socket.

    ``socket_dir`` given: always the filesystem socket ``<socket_dir>/<service>``.
    None: libqb's own rule (abstract, or ``/tmp/<service>`` when forced).
    """
    if socket_dir is None:
        if not use_filesystem_sockets():
            return abstract_address(service)
        socket_dir = LIBQB_SOCKETDIR
    path = os.path.join(socket_dir, service)
    if len(os.fsencode(path)) >= UNIX_PATH_MAX:
        raise ValueError(f"socket path {path!r} is longer than {UNIX_PATH_MAX - 1} bytes")
    return path


def describe(address: bytes | str) -> str:
    """How an address is shown in messages: ``@name`` for abstract (as ``ss`` does)."""
    if isinstance(address, bytes):
        return "@" + os.fsdecode(address[1:].rstrip(b"\0"))
    return address
