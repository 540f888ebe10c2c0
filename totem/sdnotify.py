"""systemd's readiness protocol (``Type=notify``), as corosync's unit expects it.

corosync tells systemd it is ready once its first service synchronisation has
completed; totemd does the same, so units ordered ``After=`` it (Pacemaker) start
when clients can connect.
"""

from __future__ import annotations

import os
import socket


def notify(state: str = "READY=1") -> bool:
    """Send ``state`` to ``$NOTIFY_SOCKET``; False when not run by systemd or on error."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), path)
    except OSError:
        return False
    return True
