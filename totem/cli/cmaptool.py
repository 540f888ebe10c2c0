"""``totemctl cmap``: read and change the cmap database, as corosync-cmapctl does.

Works against totemd and corosync alike (:mod:`cmap.client`). Keys print as cmapctl
prints them, ``key (type) = value``; ``--json`` gives one document instead.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

from ..cmapdb import Value, ValueType
from .cpgtool import escape_bytes


def add_parser(sub) -> None:
    p = sub.add_parser("cmap", help="read and change the cmap database (like corosync-cmapctl)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("-g", dest="get", metavar="KEY", help="print one key")
    what.add_argument("-s", dest="set", nargs=3, metavar=("KEY", "TYPE", "VALUE"),
                      help="set a key (TYPE: i8 u8 i16 u16 i32 u32 i64 u64 flt dbl str, or bin with VALUE in hex)")
    what.add_argument("-d", dest="delete", metavar="KEY", help="delete one key")
    what.add_argument("-D", dest="delete_prefix", metavar="PREFIX", help="delete every key with the prefix")
    p.add_argument("-m", dest="map", choices=("default", "stats"), default="default",
                   help="the map to use (stats: the statistics map)")
    p.add_argument("-b", dest="binary", action="store_true", help="print binary values too")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument("--socket-dir", help="libqb socket directory (filesystem sockets only)")
    p.add_argument("prefix", nargs="*", help="print the keys that start with these prefixes (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ipc.errors import IpcError

    try:
        return trio.run(_run, args)
    except (IpcError, ValueError) as exc:  # ValueError: a value that does not fit its type
        print(f"totemctl cmap: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    import cmap

    async with cmap.connect(socket_dir=args.socket_dir, stats=args.map == "stats") as db:
        if args.set:
            key, vtype, text = args.set
            await db.set(key, Value.parse(vtype, text))
            return 0
        if args.delete:
            await db.delete(args.delete)
            return 0
        if args.delete_prefix:
            for key, _, _ in await db.keys(args.delete_prefix):
                await db.delete(key)
            return 0
        if args.get:
            items = [(args.get, await db.get(args.get))]
        else:
            items = []
            for prefix in args.prefix or [""]:
                items += await db.items(prefix)
    if args.json:
        print(json.dumps({key: {"type": value.type.short_name, "value": _json_value(value)}
                          for key, value in items}, indent=2))
    else:
        for key, value in items:
            print(format_key(key, value, binary=args.binary))
    return 0


def format_key(key: str, value: Value, *, binary: bool = False) -> str:
    """One line as corosync-cmapctl prints it."""
    if value.type == ValueType.BINARY:
        return f"{key} (bin)" + (f" = {escape_bytes(value.data) if value.data else '*empty*'}" if binary else "")
    v = value.python()
    text = f"{v:f}" if value.type in (ValueType.FLOAT, ValueType.DOUBLE) else str(v)
    return f"{key} ({value.type.short_name}) = {text}"


def _json_value(value: Value) -> int | float | str:
    v = value.python()
    return v.hex() if isinstance(v, bytes) else v
