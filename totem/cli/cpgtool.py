"""``totemctl cpg``: the groups and their members, as corosync-cpgtool lists them.

Works against totemd and corosync alike (it is a libcpg-protocol client).
"""

from __future__ import annotations

import argparse
import json
import sys

import trio


def escape_bytes(name: bytes) -> str:
    """A group name as corosync-cpgtool prints it: printable bytes as they are,
    others as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else ("\\\\" if b == 0x5C else f"\\x{b:02X}")
                   for b in name)


async def _groups(socket_dir: str | None) -> tuple[int, list[tuple[bytes, int, int]]]:
    import cpg

    async with cpg.connect(socket_dir=socket_dir) as client:
        return await client.local_nodeid(), await client.groups()


def add_parser(sub) -> None:
    p = sub.add_parser("cpg", help="CPG groups and their members (like corosync-cpgtool)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument("--socket-dir", help="libqb socket directory (filesystem sockets only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ipc.errors import IpcError

    try:
        local, rows = trio.run(_groups, args.socket_dir)
    except IpcError as exc:
        print(f"totemctl cpg: {exc}", file=sys.stderr)
        return 1
    if args.json:
        groups: dict[str, list[dict]] = {}
        for name, nodeid, pid in rows:
            groups.setdefault(escape_bytes(name), []).append({"nodeid": nodeid, "pid": pid})
        print(json.dumps({"local_nodeid": local, "groups": groups}, indent=2))
        return 0
    print(f"Group Name\t{'PID':>10}\t{'Node ID':>10}")
    last = None
    for name, nodeid, pid in rows:
        if name != last:
            print(escape_bytes(name))
            last = name
        print(f"\t\t{pid:>10}\t{nodeid:>10}{' (local)' if nodeid == local else ''}")
    return 0
