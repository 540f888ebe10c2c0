"""corosync.conf for totemd: read as corosync 3.1.7 reads it, checked, and turned into a
:class:`ClusterConfig`.

    cfg = load("/etc/corosync/corosync.conf")
    cfg.local.nodeid, cfg.srp.token, [n.addr for n in cfg.nodes]

Layers: :mod:`.parser` (the grammar: a tree of sections and items with their lines),
:mod:`.schema` (the keys corosync knows and the flat typed key store coroparse builds,
which is also what cmap shows), :mod:`.build` (totemconfig's checks and derived values,
totemd's udpu-only policy), :mod:`.nodes` (addresses, generated nodeids, finding the
local node) and :mod:`.host` (this host's name and addresses; tests inject them).
Every refusal is a :class:`ConfigError` naming file, line, key and what was expected;
warnings are collected in ``ClusterConfig.warnings``.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from . import host
from .build import build
from .errors import ConfigError
from .host import Resolver
from .model import (
    ClusterConfig,
    LoggerSubsys,
    LoggingConfig,
    NodeEntry,
    QuorumConfig,
    SystemConfig,
    UidGid,
)
from .parser import Item, Section, parse
from .schema import Store, add_uidgid_file, build_store

__all__ = [
    "ClusterConfig", "ConfigError", "LoggerSubsys", "LoggingConfig", "NodeEntry",
    "QuorumConfig", "SystemConfig", "UidGid", "Item", "Section", "Store", "load",
    "parse", "parse_text",
]


def parse_text(text: str, filename: str = "corosync.conf", *, hostname: str | None = None,
               addresses: Sequence[str] | Callable[[], Sequence[str]] | None = None,
               resolver: Resolver | None = None, local_node: str | int | None = None,
               uidgid_files: Sequence[tuple[str, str]] = ()) -> ClusterConfig:
    """The ClusterConfig of a corosync.conf text (``filename`` is for messages).

    ``hostname`` (default: uname's nodename), ``addresses`` (default: this host's
    interface addresses, read only if the host name matches no node) and ``resolver``
    (host name -> addresses; default getaddrinfo) drive local-node detection and
    host-name ring0_addr values. ``local_node`` (a nodeid, or a node's name or
    ring0_addr) names the local node instead of detecting it, as ``totemd --node``
    does. ``uidgid_files`` are (name, text) pairs read as corosync reads the files in
    ``uidgid.d/``.
    """
    root = parse(text, filename)
    store = build_store(root)
    for name, body in uidgid_files:
        add_uidgid_file(store, parse(body, name))
    return build(
        store,
        hostname=host.local_hostname() if hostname is None else hostname,
        addresses=host.local_addresses if addresses is None else addresses,
        resolver=host.resolve if resolver is None else resolver,
        local_node=local_node)


def load(path: str | os.PathLike, *, hostname: str | None = None,
         addresses: Sequence[str] | Callable[[], Sequence[str]] | None = None,
         resolver: Resolver | None = None,
         local_node: str | int | None = None) -> ClusterConfig:
    """Read and check the corosync.conf at ``path`` (and the ``uidgid.d/`` files beside
    it, as corosync does). OSError if it cannot be read; ConfigError if it is unusable.
    See :func:`parse_text` for the keyword arguments."""
    path = os.fspath(path)
    text = _read(path)
    uidgid_dir = os.path.join(os.path.dirname(path) or ".", "uidgid.d")
    files: list[tuple[str, str]] = []
    if os.path.isdir(uidgid_dir):
        for name in sorted(os.listdir(uidgid_dir)):
            full = os.path.join(uidgid_dir, name)
            if os.path.isfile(full):
                try:
                    files.append((full, _read(full)))
                except OSError:
                    continue  # corosync skips files it cannot open
    return parse_text(text, path, hostname=hostname, addresses=addresses, resolver=resolver,
                      local_node=local_node, uidgid_files=files)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")
