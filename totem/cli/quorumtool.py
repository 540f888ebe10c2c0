"""``totemctl quorum``: quorum, votes and members, as corosync-quorumtool shows them.

Works against totemd and corosync alike (a libquorum/libvotequorum/libcmap-protocol
client, :mod:`quorum.client`). ``-s`` prints what ``corosync-quorumtool -s`` prints, line
for line, and exits as it does: 0 quorate, 2 not quorate, 1 on error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import trio

EXIT_NOT_QUORATE = 2


def add_parser(sub) -> None:
    p = sub.add_parser("quorum", help="quorum state, votes and members (like corosync-quorumtool)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("-s", dest="show", action="store_const", const="status", default="status",
                      help="quorum status (the default)")
    what.add_argument("-l", dest="show", action="store_const", const="nodes", help="the members only")
    what.add_argument("-e", dest="expected", type=int, metavar="EXPECTED",
                      help="change the cluster's expected votes")
    what.add_argument("-v", dest="votes", type=int, metavar="VOTES", help="change a node's votes")
    p.add_argument("-n", dest="nodeid", type=int, default=0, metavar="NODEID",
                   help="the node whose votes -v changes (default: this one)")
    p.add_argument("-H", dest="hex", action="store_true", help="node ids in hexadecimal")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument("--socket-dir", help="libqb socket directory (filesystem sockets only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import quorum.client as qc
    from ..ipc.errors import IpcError

    try:
        if args.expected is not None:
            trio.run(lambda: qc.set_expected(args.expected, socket_dir=args.socket_dir))
            return 0
        if args.votes is not None:
            trio.run(lambda: qc.set_votes(args.votes, args.nodeid, socket_dir=args.socket_dir))
            return 0
        st = trio.run(lambda: qc.status(socket_dir=args.socket_dir))
    except (IpcError, trio.TooSlowError) as exc:
        print(f"totemctl quorum: {exc or 'no notification from the daemon'}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(st.as_dict(), indent=2))
    elif args.show == "nodes":
        sys.stdout.write(format_nodes(st, hex_ids=args.hex))
        return 0
    else:
        sys.stdout.write(format_status(st, time.ctime(), hex_ids=args.hex))
    return 0 if st.quorate else EXIT_NOT_QUORATE


def _id(nodeid: int, hex_ids: bool) -> str:
    return f"0x{nodeid:08x} " if hex_ids else f"{nodeid:>10} "


def format_status(st, date: str, *, hex_ids: bool = False) -> str:
    """corosync-quorumtool -s's text for ``st`` (a :class:`quorum.client.QuorumStatus`)."""
    ring = f"{st.ring_id.rep:x}.{st.ring_id.seq:x}" if st.provider == "corosync_votequorum" \
        else f"{st.ring_id.seq:x}"
    lines = ["Quorum information", "------------------",
             f"Date:             {date}",
             f"Quorum provider:  {st.provider or 'Not configured'}",
             f"Nodes:            {len(st.nodes)}",
             f"Node ID:          {f'0x{st.local_nodeid:08x}' if hex_ids else st.local_nodeid}",
             f"Ring ID:          {ring}",
             f"Quorate:          {'Yes' if st.quorate else 'No'}"]
    if st.provider != "corosync_votequorum":
        return "\n".join(lines) + "\n"
    quorate = "Quorate" in st.flags
    shown = [f for f in st.flags if f in ("2Node", "Quorate", "WaitForAll", "LastManStanding",
                                            "AutoTieBreaker", "AllowDownscale", "Qdevice")]
    lines += ["", "Votequorum information", "----------------------",
              f"Expected votes:   {st.expected_votes}",
              f"Highest expected: {st.highest_expected}",
              f"Total votes:      {st.total_votes}",
              f"Quorum:           {st.quorum} {' ' if quorate else 'Activity blocked'}",
              "Flags:            " + "".join(f + " " for f in shown)]
    return "\n".join(lines) + "\n" + format_nodes(st, hex_ids=hex_ids)


def format_nodes(st, *, hex_ids: bool = False) -> str:
    """The "Membership information" part (corosync-quorumtool -l)."""
    voting = st.provider == "corosync_votequorum"
    qdevice = voting and any("Qdevice" in n.flags for n in st.nodes)
    head = f"{'Nodeid':>10} " + (f"{'Votes':>10} " if voting else "") + (f"{'Qdevice':>10} " if qdevice else "")
    out = ["", "Membership information", "----------------------", head + "Name"]
    for n in st.nodes:
        row = _id(n.nodeid, hex_ids)
        if voting:
            row += f"{n.votes if n.votes is not None else 0:>10} "
            if qdevice:
                state = (",".join(("A" if "QdeviceAlive" in n.flags else "NA",
                                   "V" if "QdeviceCastVote" in n.flags else "NV",
                                   "MW" if "QdeviceMasterWins" in n.flags else "NMW"))
                         if "Qdevice" in n.flags else "NR")
                row += f"{state:>10} "
        out.append(row + n.name + (" (local)" if n.local else ""))
    if qdevice:
        casting = any(n.local and "QdeviceCastVote" in n.flags for n in st.nodes)
        row = _id(0, hex_ids) + f"{st.qdevice_votes if casting else 0:>10} " + f"           {st.qdevice}"
        out.append(row if casting else row + f" (votes {st.qdevice_votes})")
    return "\n".join(out) + "\n"
