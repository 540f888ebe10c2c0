"""``totemctl import-heartbeat``: read Heartbeat's ha.cf and authkeys, write a corosync.conf
for totemd and a fresh key file, and report what became of every directive."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Sequence

DEFAULT_HACF = "/etc/ha.d/ha.cf"
DEFAULT_AUTHKEYS = "/etc/ha.d/authkeys"
DEFAULT_HARESOURCES = "/etc/ha.d/haresources"
PROG = "totemctl import-heartbeat"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (on the parser totemctl made for it)."""
    p.add_argument("--ha-cf", default=DEFAULT_HACF, metavar="FILE",
                   help=f"Heartbeat's ha.cf (default {DEFAULT_HACF})")
    p.add_argument("--authkeys", default=DEFAULT_AUTHKEYS, metavar="FILE",
                   help=f"Heartbeat's authkeys (default {DEFAULT_AUTHKEYS}); gives crypto_cipher "
                        "aes256, crypto_hash sha256 and a fresh key file")
    p.add_argument("--no-authkeys", action="store_true",
                   help="import without authkeys: no crypto (traffic neither authenticated nor "
                        "encrypted)")
    p.add_argument("--haresources", metavar="FILE",
                   help=f"Heartbeat's haresources, listed in the next steps (default "
                        f"{DEFAULT_HARESOURCES} if it exists); not translated")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write corosync.conf there (and the report to standard output); "
                        "default: the config to standard output, the report to standard error")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument("--keyfile", metavar="FILE",
                   help="the key file to name in the config and create if absent (default: "
                        "authkey beside --output; without --output /etc/corosync/authkey, "
                        "which is then not created)")
    p.add_argument("--address", action="append", default=[], metavar="NAME=ADDR",
                   help="a node's address, when ha.cf's ucast lines and the node's name do not "
                        "tell it (repeatable)")
    p.add_argument("--cluster-name", metavar="NAME",
                   help="totem.cluster_name (default: ha.cf's cluster, else linux-ha)")
    p.add_argument("--no-resolve", action="store_true",
                   help="do not look node names up (by default they are resolved as this host "
                        "resolves them, /etc/hosts first)")


def resolve(name: str) -> list[str]:
    """This host's addresses for ``name`` (getaddrinfo), empty when it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return []
    return [str(i[4][0]) for i in infos]


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def _read(path: str) -> tuple[str, int]:
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        return f.read().decode("utf-8", "surrogateescape"), mode


def run(args: argparse.Namespace) -> int:
    """Read, translate, write; exit status 0, or 2 with every problem on standard error."""
    from ..crypto.keyfile import DEFAULT_KEYFILE, generate_key
    from ..heartbeat import HeartbeatError, import_heartbeat, next_steps, render_report

    try:
        hacf, _ = _read(args.ha_cf)
    except OSError as exc:
        return _fail(f"cannot read {args.ha_cf}: {exc.strerror}")
    authkeys = mode = None
    if not args.no_authkeys:
        try:
            authkeys, mode = _read(args.authkeys)
        except OSError as exc:
            return _fail(f"cannot read {args.authkeys}: {exc.strerror} (give --authkeys FILE, or "
                         "--no-authkeys to import without crypto)")
    haresources = None
    hr_path = args.haresources or DEFAULT_HARESOURCES
    if args.haresources is not None or os.path.exists(hr_path):
        try:
            haresources, _ = _read(hr_path)
        except OSError as exc:
            return _fail(f"cannot read {hr_path}: {exc.strerror}")
    addresses: dict[str, str] = {}
    for item in args.address:
        name, sep, addr = item.partition("=")
        if not sep or not name or not addr:
            return _fail(f"--address {item}: expected NAME=ADDR")
        addresses[name] = addr
    output = os.path.abspath(args.output) if args.output else None
    if output and os.path.exists(output) and not args.force:
        return _fail(f"{output} exists; give --force to overwrite it")
    if args.keyfile:
        keyfile = os.path.abspath(args.keyfile)
    elif output:
        keyfile = os.path.join(os.path.dirname(output), "authkey")
    else:
        keyfile = DEFAULT_KEYFILE
    try:
        result = import_heartbeat(
            hacf, args.ha_cf, authkeys, args.authkeys, authkeys_mode=mode,
            haresources_text=haresources, haresources_file=hr_path, addresses=addresses,
            resolver=None if args.no_resolve else resolve, keyfile=keyfile,
            cluster_name=args.cluster_name)
    except HeartbeatError as exc:
        for p in exc.problems:
            print(f"{PROG}: {p}", file=sys.stderr)
        return 2
    key_written: bool | None = False
    if result.crypto is not None:
        if os.path.exists(keyfile):
            key_written = None
        elif output or args.keyfile:
            try:
                generate_key(keyfile)
            except OSError as exc:
                return _fail(f"cannot create the key file {keyfile}: {exc.strerror}")
            key_written = True
    if output:
        try:
            with open(output, "w") as f:
                f.write(result.config)
        except OSError as exc:
            return _fail(f"cannot write {output}: {exc.strerror}")
    preamble = [f"Wrote {output}."] if output else []
    if result.crypto is not None:
        what = {True: "created (fresh random key)", None: "already exists: kept, not overwritten",
                False: "not created (no --output): see the next steps"}[key_written]
        preamble.append(f"Key file {keyfile}: {what}.")
    report = render_report(result, next_steps(result, output, key_written), preamble)
    if output:
        sys.stdout.write(report)
    else:
        sys.stdout.write(result.config)
        sys.stderr.write(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - via totemctl
    p = argparse.ArgumentParser(prog=PROG)
    add_arguments(p)
    return run(p.parse_args(argv))
