"""totemd: the pytotem daemon, started and configured like corosync.

    totemd [-f] [-c FILE] [-t] [-v] [--node NODE]

``-f`` stays in the foreground (without it totemd detaches like corosync), ``-c``
names the corosync.conf (default /etc/corosync/corosync.conf), ``-t`` checks the
configuration and exits, ``-v`` prints the version. ``--node`` (a pytotem extension)
says which nodelist entry this daemon is, by nodeid or name, for several daemons on
one host; without it the local node is found as corosync finds it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence

import trio

from .. import __version__
from ..log import LogSettings, setup, subsystem
from ..node import Node, NodeSettings

DEFAULT_CONFIG = "/etc/corosync/corosync.conf"
EXIT_CONFIG = 8
"""corosync's exit status for a configuration it cannot use."""
LOG_MAIN = subsystem("MAIN")


CRYPTO_NOTE = (
    "Note: crypto on udpu is a pytotem extension (corosync 2.x's envelope). Real corosync 3 "
    "refuses crypto_cipher/crypto_hash with transport udpu ('only valid for the Knet "
    "transport') and sends plaintext, so every node of this nodelist must run totemd: a "
    "ring with corosync 3 nodes cannot be encrypted.")

IPC_TYPES = {"native": "shm", "shm": "shm", "socket": "socket"}
"""``system.qb_ipc_type`` -> the IPC transport (native is shm on Linux, as in libqb)."""


def load_settings(path: str, node: str | None):
    """(NodeSettings, LogSettings, warnings) from a corosync.conf; ConfigError if unusable."""
    from ..config import load
    from ..crypto.settings import load_crypto

    kwargs = {}
    if node is not None:
        kwargs["local_node"] = node
    cfg = load(path, **kwargs)
    members = {n.nodeid: n.addr for n in cfg.nodes}
    settings = NodeSettings(
        nodeid=cfg.local.nodeid,
        members=members,
        port=cfg.mcastport,
        srp=cfg.srp,
        state_dir=cfg.state_dir,
        block_unlisted_ips=cfg.block_unlisted_ips,
        cluster_name=cfg.cluster_name or "",
        votes=cfg.local.votes,
        expected_votes=cfg.quorum.expected_votes or sum(n.votes for n in cfg.nodes),
        ipc=IPC_TYPES.get(cfg.system.qb_ipc_type, "shm"),
        uidgid=(cfg.allowed_uids, cfg.allowed_gids),
        config=cfg,
        crypto=load_crypto(cfg),
    )
    lg = cfg.logging
    log = LogSettings(to_stderr=lg.to_stderr, to_logfile=lg.to_logfile, logfile=lg.logfile,
                      to_syslog=lg.to_syslog, syslog_facility=lg.syslog_facility,
                      debug=lg.debug, timestamp=lg.timestamp)
    return settings, log, cfg.warnings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="totemd", description="pytotem cluster daemon (corosync-compatible)")
    p.add_argument("-f", action="store_true", help="stay in the foreground")
    p.add_argument("-c", metavar="FILE", default=os.environ.get("COROSYNC_MAIN_CONFIG_FILE", DEFAULT_CONFIG),
                   help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("-t", action="store_true", help="check the configuration and exit")
    p.add_argument("-v", action="store_true", help="print the version and exit")
    p.add_argument("--node", metavar="NODE", help="this daemon's nodelist entry (nodeid or name)")
    p.add_argument("--ipc", choices=("shm", "socket", "none"),
                   help="client IPC transport (default: system.qb_ipc_type, i.e. shm); 'none' serves "
                        "no clients, for several daemons sharing one network namespace")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.v:
        print(f"pytotem totemd, version '{__version__}' (corosync 3.1.7 wire compatible)")
        return 0
    from ..config import ConfigError

    try:
        settings, log_settings, warnings = load_settings(args.c, args.node)
    except ConfigError as exc:
        print(f"parse error in config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"Can't read file {args.c}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    if args.ipc is not None:
        settings.ipc = None if args.ipc == "none" else args.ipc
    if args.t:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"Configuration {args.c} is valid: node {settings.nodeid} of "
              f"{len(settings.members)} ({settings.local_addr}:{settings.port})")
        if settings.crypto is not None:
            print(f"Crypto: {settings.crypto.describe()}")
            print(CRYPTO_NOTE)
        return 0
    if not args.f:
        _daemonize()
    setup(log_settings)
    for w in warnings:
        LOG_MAIN.warning(w)
    LOG_MAIN.log(25, f"pytotem totemd {__version__} starting up (corosync 3.1.7 compatible)")
    if settings.crypto is not None:
        LOG_MAIN.log(25, f"Crypto: {settings.crypto.describe()} (corosync 2.x envelope; "
                     "corosync 3 nodes cannot join this ring)")
    node = Node(settings)
    node.reloader = lambda: load_settings(args.c, args.node)[0].crypto
    node.config_loader = lambda: load_settings(args.c, args.node)[0].config
    node.on_event.append(_ready_notifier())
    try:
        node.open()
    except (OSError, RuntimeError) as exc:
        LOG_MAIN.error(f"Cannot start: {exc}")
        print(f"totemd: cannot start: {exc}", file=sys.stderr)
        return 1
    trio.run(_serve, node)
    return node.exit_status


def _ready_notifier():
    """An event hook telling systemd READY=1 at the first completed sync."""
    from ..sdnotify import notify
    from ..sync import SyncCompleted

    done = False

    def hook(ev) -> None:
        nonlocal done
        if not done and isinstance(ev, SyncCompleted):
            done = True
            notify("READY=1")
    return hook


async def _serve(node: Node) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals, node)
        await node.run()
        nursery.cancel_scope.cancel()


async def _signals(node: Node) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for sig in signals:
            if sig == signal.SIGHUP:
                node.reload()  # the crypto keys (docs/crypto.md)
                continue
            node.stop()
            return


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
