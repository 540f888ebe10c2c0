"""libqb IPC, server and client side: how corosync's client libraries reach totemd.

See spec client-ipc.md §1. :mod:`.server` serves the setup sockets and the per-connection
shm rings (or datagram sockets); :mod:`.client` is the same protocol from the library
side, for our own tools; :mod:`.handshake`, :mod:`.ringbuffer`, :mod:`.semaphore`,
:mod:`.names`, :mod:`.shmdir`, :mod:`.shm` and :mod:`.dgram` are the pieces both share.
"""

from .client import IpcClient
from .credentials import Credentials
from .errors import ConnectionClosed, DaemonUnavailable, IpcError, IpcRefused, TryAgain
from .server import ConnectionInfo, IpcHandler, IpcServer

__all__ = [
    "ConnectionClosed",
    "ConnectionInfo",
    "Credentials",
    "DaemonUnavailable",
    "IpcClient",
    "IpcError",
    "IpcHandler",
    "IpcRefused",
    "IpcServer",
    "TryAgain",
]
