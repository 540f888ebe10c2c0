"""Key files as corosync-keygen writes them: random bytes, readable by the owner only."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_KEYFILE = "/etc/corosync/authkey"
DEFAULT_KEY_BYTES = 256
"""corosync-keygen's default: 2048 bits."""


def generate_key(path: str | Path, size: int = DEFAULT_KEY_BYTES) -> Path:
    """Write ``size`` fresh random bytes to ``path`` with mode 0400; refuses to
    overwrite an existing file (FileExistsError)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        os.fchmod(fd, 0o400)
        data = os.urandom(size)
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    return path
