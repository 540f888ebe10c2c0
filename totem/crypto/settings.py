"""The crypto settings of one node: cipher, hash and the key material, read from what
the config names (key files are read here, not by the config parser)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from typing import Mapping

from ..config.errors import ConfigError
from ..config.model import ClusterConfig, CryptoConfig
from ..srp.config import SrpConfig
from .envelope import mtu_overhead
from .keyfile import DEFAULT_KEYFILE, KeyFileError, inline_key, key_id, read_key

AUTHKEY_ENV = "COROSYNC_TOTEM_AUTHKEY_FILE"
"""corosync 2.x's environment override of the default key file."""


@dataclass(frozen=True)
class CryptoSettings:
    """What a node needs to seal and open datagrams."""

    cipher: str
    hash: str
    primary: bytes
    """The cluster key (``keyfile``, ``key`` or the default key file)."""
    next: bytes | None = None
    """A key being rotated in (``keyfile_next``)."""
    primary_source: str = ""
    next_source: str = ""

    @property
    def primary_id(self) -> str:
        return key_id(self.primary)

    @property
    def next_id(self) -> str | None:
        return None if self.next is None else key_id(self.next)

    def describe(self) -> str:
        text = f"{self.cipher}/{self.hash}, key {self.primary_id} ({self.primary_source})"
        if self.next is not None:
            text += f", next key {self.next_id} ({self.next_source})"
        return text


def frame_config(srp: SrpConfig, crypto: CryptoSettings | None, local_addr: str) -> SrpConfig:
    """``srp`` with the crypto MTU overhead in place (corosync 2.x's arithmetic), for
    settings made in code rather than read by the config layer (which sets it)."""
    if crypto is None or srp.crypto_overhead:
        return srp
    return replace(srp, crypto_overhead=mtu_overhead(crypto.cipher, crypto.hash,
                                                     ipv6=":" in local_addr))


def load_crypto(cfg: ClusterConfig, *,
                environ: Mapping[str, str] = os.environ) -> CryptoSettings | None:
    """The node's crypto settings, or None without crypto. ConfigError (naming the
    config line) when a key cannot be used: a missing, short or group/other-accessible
    key file, a too short ``totem.key``, or a ``totem.key`` in a config file others can
    read."""
    c: CryptoConfig = cfg.crypto
    if not c.enabled:
        return None

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=cfg.file, line=c.line(key), key=key)

    if c.keyfile is not None:
        primary, source = _read(fail, "totem.keyfile", c.keyfile), f"keyfile {c.keyfile}"
    elif c.key is not None:
        _check_config_private(cfg.file, fail)
        try:
            primary, source = inline_key(c.key), "totem.key"
        except KeyFileError as exc:
            raise fail("totem.key", str(exc)) from None
    else:
        path = environ.get(AUTHKEY_ENV) or DEFAULT_KEYFILE
        primary, source = _read(fail, "totem.keyfile", path), f"default keyfile {path}"
    nxt, nxt_source = None, ""
    if c.keyfile_next is not None:
        nxt, nxt_source = _read(fail, "totem.keyfile_next", c.keyfile_next), \
            f"keyfile_next {c.keyfile_next}"
    return CryptoSettings(c.cipher, c.hash, primary, nxt, source, nxt_source)


def _read(fail, key: str, path: str) -> bytes:
    try:
        return read_key(path)
    except KeyFileError as exc:
        raise fail(key, str(exc)) from None


def _check_config_private(path: str, fail) -> None:
    """A key written into the config is only as secret as the config file."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return  # a config given as text (tests): nothing to check
    if mode & 0o077:
        raise fail("totem.key", f"the key is in {path}, which is accessible by group or "
                   f"others (mode {mode:04o}); run 'chmod 600 {path}' or use a keyfile")
