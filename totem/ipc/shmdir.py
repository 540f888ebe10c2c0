"""Per-connection directories in /dev/shm, and sweeping those of dead servers.

libqb gives each connection a directory ``qb-<server pid>-<client pid>-<setup fd>-XXXXXX``
(``mkdtemp``, then mode 0770 and ownership of the client) that holds its rings or
control file. /dev/shm is shared by every network namespace of the host, so the pid
pair plus random suffix keeps names unique host-wide. A server killed with SIGKILL
leaves its directories behind; a restarted server removes those whose server pid no
longer exists (spec client-ipc.md §1.9).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import string

from .setupsock import pid_alive

_SUFFIX_CHARS = string.ascii_letters + string.digits
_CONNECTION_DIR = re.compile(r"^qb-(\d+)-(\d+)-(\d+)-[A-Za-z0-9_]+$")


def make_connection_dir(shm_dir: str, server_pid: int, client_pid: int, fd: int,
                        uid: int, gid: int) -> str:
    """Create a fresh connection directory owned by the client; its absolute path."""
    prefix = os.path.join(shm_dir, f"qb-{server_pid}-{client_pid}-{fd}-")
    for _ in range(100):
        path = prefix + "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(6))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        try:
            os.chmod(path, 0o770)
            try:
                os.chown(path, uid, gid)
            except PermissionError:  # not root: the client must be us anyway
                pass
        except BaseException:
            os.rmdir(path)
            raise
        return path
    raise FileExistsError(errno.EEXIST, "no free connection directory name", prefix)


def remove_connection_dir(path: str) -> None:
    """Remove a connection directory and whatever is still in it."""
    shutil.rmtree(path, ignore_errors=True)




def sweep_stale(shm_dir: str) -> list[str]:
    """Remove connection directories whose server pid no longer exists; their paths.

    Only directories named exactly as libqb names them are touched. A pid is judged in
    our own pid namespace: a server in another pid namespace sharing this /dev/shm
    could look dead here (not a setup corosync or totemd is run in).
    """
    removed = []
    try:
        entries = list(os.scandir(shm_dir))
    except OSError:
        return removed
    for entry in entries:
        m = _CONNECTION_DIR.match(entry.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            if not stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                continue
        except OSError:
            continue
        if not pid_alive(int(m.group(1))):
            remove_connection_dir(entry.path)
            removed.append(entry.path)
    return removed
