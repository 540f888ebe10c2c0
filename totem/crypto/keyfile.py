"""Key files as corosync-keygen writes them: random bytes, readable by the owner only."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .envelope import PRIVATE_KEY_MAX

DEFAULT_KEYFILE = "/etc/corosync/authkey"
DEFAULT_KEY_BYTES = 256
"""corosync-keygen's default: 2048 bits."""
KEYFILE_MIN_BYTES = PRIVATE_KEY_MAX
"""corosync 2.x refuses a key file shorter than the 128 bytes it uses."""
INLINE_KEY_MIN_BYTES = 16
"""pytotem refuses a ``totem.key`` shorter than this (corosync 2.x took any length)."""


class KeyFileError(Exception):
    """A key file that cannot be used; the message says what to do."""


def generate_key(path: str | Path, size: int = DEFAULT_KEY_BYTES) -> Path:
    """Write ``size`` fresh random bytes to ``path`` with mode 0400; refuses to
    overwrite an existing file (FileExistsError)."""
    if size < KEYFILE_MIN_BYTES:
        raise ValueError(f"a key file needs at least {KEYFILE_MIN_BYTES} bytes")
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


def read_key(path: str | Path) -> bytes:
    """The private key of a key file: its first 128 bytes, as corosync 2.x uses it.

    KeyFileError if the file is missing, unreadable, not a regular file, shorter than
    128 bytes, or accessible by group or others (a cluster key is a secret)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist (create it with "
                           f"'totemctl keygen -k {path}' and copy it to every node)") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(f"key file {path} is accessible by group or others (mode "
                               f"{mode:04o}); run 'chmod 400 {path}'")
        data = b""
        while len(data) < KEYFILE_MIN_BYTES:
            chunk = os.read(fd, KEYFILE_MIN_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) < KEYFILE_MIN_BYTES:
        raise KeyFileError(f"key file {path} holds {len(data)} bytes; at least "
                           f"{KEYFILE_MIN_BYTES} are needed (corosync 2.x uses exactly the first "
                           f"{KEYFILE_MIN_BYTES}); create a new one with 'totemctl keygen'")
    return data


def inline_key(text: str) -> bytes:
    """``totem.key`` as corosync 2.x takes it: the value's bytes, at most 128 used.
    KeyFileError if shorter than :data:`INLINE_KEY_MIN_BYTES`."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) < INLINE_KEY_MIN_BYTES:
        raise KeyFileError(f"totem.key has {len(data)} bytes; at least {INLINE_KEY_MIN_BYTES} "
                           "are needed (better: a key file from 'totemctl keygen')")
    return data[:PRIVATE_KEY_MAX]


def key_id(key: bytes) -> str:
    """A short public name of a private key (16 hex digits of a SHA-256), for status
    output and the rotation announcements; the same on every node holding the key."""
    return hashlib.sha256(b"pytotem key id\0" + bytes(key[:PRIVATE_KEY_MAX])).hexdigest()[:16]
