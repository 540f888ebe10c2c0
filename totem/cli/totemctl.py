"""totemctl: the operator's tool (decode captures, run the simulator; more subcommands join later)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..capture import CaptureError, read_datagrams
from ..dissect import dissect, summary
from ..sim.faults import FAULT_KINDS, parse_kinds
from ..sim.runner import parse_range, sweep


def _decode(args: argparse.Namespace) -> int:
    port = args.port
    count = errors = 0
    try:
        for d in read_datagrams(args.file):
            if port not in (d.sport, d.dport):
                continue
            if d.dport != port:
                # replies from the totem port to ephemeral ports do not occur in udpu;
                # count only traffic towards the totem port
                continue
            count += 1
            if d.truncated:
                info = {"type": None, "length": len(d.payload),
                        "error": "datagram is IP-fragmented or truncated in the capture"}
            else:
                info = dissect(d.payload)
            if info.get("error") or any("error" in m for m in info.get("messages", [])):
                errors += 1
            if args.json:
                rec = {"frame": d.frame, "time": round(d.time, 6), "src": f"{d.src}:{d.sport}",
                       "dst": f"{d.dst}:{d.dport}", **info}
                print(json.dumps(rec, separators=(",", ":")))
            else:
                print(f"{d.frame:5d} {d.time:9.4f}  {d.src:>15} -> {d.dst:<15} {summary(info)}")
    except CaptureError as exc:
        print(f"totemctl decode: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"totemctl decode: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    if not args.json:
        print(f"-- {count} datagrams on port {port}, {errors} with decode errors", file=sys.stderr)
    return 0


def _sim(args: argparse.Namespace) -> int:
    try:
        kinds = parse_kinds(args.faults)
        nodes_range = parse_range(args.nodes_range) if args.nodes_range is not None else None
    except ValueError as exc:
        print(f"totemctl sim: {exc}", file=sys.stderr)
        return 2
    if args.seeds < 1 or (args.nodes is not None and args.nodes < 1):
        print("totemctl sim: --seeds and --nodes must be at least 1", file=sys.stderr)
        return 2
    nodes = args.nodes if args.nodes is not None else 3
    seeds = range(args.seed, args.seed + args.seeds)
    try:
        return sweep(seeds, nodes, nodes_range, kinds, sys.stdout, verbose=args.verbose)
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0


def _control_path(args: argparse.Namespace, command: str) -> str | None:
    """The daemon's control socket: ``--socket``, or the state_dir of ``-c``'s config."""
    if args.socket is not None:
        return args.socket
    from ..config import ConfigError, load

    try:
        cfg = load(args.config, local_node=args.node)
    except (ConfigError, OSError) as exc:
        print(f"totemctl {command}: {exc}", file=sys.stderr)
        return None
    return f"{cfg.state_dir}/totemd.sock"


def _status(args: argparse.Namespace) -> int:
    import trio

    from ..node import query

    path = _control_path(args, "status")
    if path is None:
        return 2
    try:
        st = trio.run(query, path)
    except (OSError, trio.TooSlowError, ValueError) as exc:
        print(f"totemctl status: cannot reach totemd at {path}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    ring = st["ring_id"]
    print(f"Local node ID {st['nodeid']}, cluster '{st['cluster_name']}', state {st['state']}")
    print(f"Ring ID {ring['rep']:x}.{ring['seq']:x}, members: {' '.join(map(str, st['members']))}")
    srp = st["stats"]["srp"]
    keys = ("orf_token_rx", "orf_token_tx", "mcast_tx", "mcast_rx", "mcast_retx", "memb_join_tx",
            "memb_join_rx", "operational_entered", "gather_entered", "operational_token_lost",
            "consensus_timeouts", "rx_msg_dropped")
    print("stats.srp: " + ", ".join(f"{k} {srp.get(k, 0)}" for k in keys))
    t = st["stats"]["transport"]
    bad = sum(st["stats"]["malformed"].values())
    print(f"transport: rx {t['rx']} tx {t['tx']} rejected_unlisted {t['rejected_unlisted']} malformed {bad}")
    for line in _crypto_lines(st.get("crypto") or {}):
        print(line)
    return 0


def _crypto_lines(c: dict) -> list[str]:
    """``totemctl status`` lines about crypto: keys, rotation, drops per reason."""
    if c.get("cipher", "none") == "none" and c.get("hash", "none") == "none":
        return ["crypto: none (plain corosync 3.x udpu)"]
    lines = [f"crypto: {c['cipher']}/{c['hash']}, sealing with key {c['send_key']}, "
             f"rotation {c['rotation']}"]
    for k in c.get("keys", []):
        lines.append(f"  key {k['id']} ({k['role']}): held by {' '.join(map(str, k['held_by'])) or '-'}; "
                     f"sealing {' '.join(map(str, k['sealing'])) or '-'}")
    dropped = c.get("dropped", {})
    lines.append("  dropped: " + ", ".join(f"{r} {n}" for r, n in dropped.items()))
    return lines


def _reload(args: argparse.Namespace) -> int:
    import trio

    from ..node import query

    path = _control_path(args, "reload")
    if path is None:
        return 2
    try:
        reply = trio.run(query, path, "reload")
    except (OSError, trio.TooSlowError, ValueError) as exc:
        print(f"totemctl reload: cannot reach totemd at {path}: {exc}", file=sys.stderr)
        return 1
    if "error" in reply:
        print(f"totemctl reload: {reply['error']}", file=sys.stderr)
        return 1
    print(f"reloaded: crypto {reply['crypto']}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from ..crypto.keyfile import generate_key, key_id, read_key

    try:
        generate_key(args.k, args.size)
        kid = key_id(read_key(args.k))
    except FileExistsError:
        print(f"totemctl keygen: {args.k} exists; remove it first or name another file "
              "with -k", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"totemctl keygen: cannot write {args.k}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return 1
    print(f"Wrote a {args.size * 8}-bit key to {args.k} (mode 0400), key id {kid}.")
    print("Copy it to every node (keep it mode 0400, owned by the user running totemd).")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(port=args.port, token=args.token)


def _import_heartbeat(args: argparse.Namespace) -> int:
    from .import_heartbeat import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="totemctl", description="pytotem operator tool")
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode the totem datagrams of a pcap/pcapng capture")
    dec.add_argument("file", help="pcap or pcapng file")
    dec.add_argument("--json", action="store_true", help="one JSON object per datagram")
    dec.add_argument("--port", type=int, default=5405, help="totem port (default 5405)")
    dec.set_defaults(func=_decode)
    sim = sub.add_parser("sim", help="run seeded simulations with random faults and check the invariants",
                         description="Run seeds S..S+K-1 on the deterministic simulator, check every "
                                     "invariant, print each violating run (seed, violations, fault "
                                     "schedule, trace tail, replay command) and a summary. Exit status "
                                     "1 if any run broke an invariant.")
    sizes = sim.add_mutually_exclusive_group()
    sizes.add_argument("--nodes", type=int, default=None, help="nodes per run (default 3)")
    sizes.add_argument("--nodes-range", metavar="A-B",
                       help="node count per seed from A to B: A + seed %% (B-A+1)")
    sim.add_argument("--seeds", type=int, default=100, help="number of runs (default 100)")
    sim.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    sim.add_argument("--faults", default="all",
                     help="'all' (default), 'none' or a comma list of: " + ",".join(FAULT_KINDS))
    sim.add_argument("--verbose", "-v", action="store_true", help="one line per run")
    sim.set_defaults(func=_sim)
    st = sub.add_parser("status", help="ring, members and counters of a running totemd")
    st.add_argument("-c", "--config", default="/etc/corosync/corosync.conf",
                    help="corosync.conf of the daemon (its state_dir holds the control socket)")
    st.add_argument("--node", help="which nodelist entry, when several daemons share a host")
    st.add_argument("--socket", help="the daemon's control socket (instead of -c)")
    st.add_argument("--json", action="store_true", help="everything, as JSON")
    st.set_defaults(func=_status)
    rl = sub.add_parser("reload", help="make a running totemd read its configuration again "
                        "(the crypto keys: docs/crypto.md); like SIGHUP")
    rl.add_argument("-c", "--config", default="/etc/corosync/corosync.conf",
                    help="corosync.conf of the daemon (its state_dir holds the control socket)")
    rl.add_argument("--node", help="which nodelist entry, when several daemons share a host")
    rl.add_argument("--socket", help="the daemon's control socket (instead of -c)")
    rl.set_defaults(func=_reload)
    kg = sub.add_parser("keygen", help="write a new cluster key file, as corosync-keygen does",
                        description="Write random bytes to a new key file with mode 0400 (refuses "
                                    "to overwrite one) and print its key id. totemd uses the first "
                                    "128 bytes, as corosync 2.x does.")
    kg.add_argument("-k", metavar="FILE", default="/etc/corosync/authkey",
                    help="key file to write (default /etc/corosync/authkey)")
    kg.add_argument("-s", "--size", type=int, default=256,
                    help="bytes of key (default 256, as corosync-keygen; at least 128)")
    kg.set_defaults(func=_keygen)
    from . import cmaptool, cpgtool, quorumtool
    cpgtool.add_parser(sub)
    quorumtool.add_parser(sub)
    cmaptool.add_parser(sub)
    demo = sub.add_parser("demo", help="three totemd daemons on 127.0.0.1-3: a ring, a crash, a rejoin")
    demo.add_argument("--port", type=int, default=5405, help="totem port (default 5405)")
    demo.add_argument("--token", type=int, default=None, help="token timeout in ms (corosync's default if absent)")
    demo.set_defaults(func=_demo)
    from .import_heartbeat import add_arguments as import_heartbeat_arguments

    hb = sub.add_parser("import-heartbeat", help="turn Heartbeat's ha.cf and authkeys into a "
                        "corosync.conf for totemd (docs/heartbeat.md)",
                        description="Read ha.cf (and authkeys) as Heartbeat 3 does, write a "
                                    "corosync.conf with the reasoning as comments and a fresh "
                                    "key file, and report what became of every directive.")
    import_heartbeat_arguments(hb)
    hb.set_defaults(func=_import_heartbeat)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
