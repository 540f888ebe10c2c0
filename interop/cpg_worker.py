"""A CPG client process for the interop tests (run inside a node's namespaces).

It joins one group with pytotem's Python client (so against corosync it is also the
test of that client), sends ``--count`` messages of mixed sizes and then an END
marker, and writes every event it sees as one JSON line to ``--out``: membership
changes and, for messages, the sender, its per-sender sequence number, the size and
whether the bytes are exactly what that sender must have sent. Like corosync's
cpgverify, the content is checkable by every receiver: message k of process
(nodeid, pid) is derived from (nodeid, pid, k), so even a 1-byte message is verified.

    python -m interop.cpg_worker --group G --count N --out FILE [--seed S] [--big-every K]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys

import trio

END = b"END"
SIZES = (1, 7, 64, 200, 1000, 1024, 1400, 3000, 8192, 16384, 65536, 150_000)
BIG = 1 << 20
"""1 MiB: larger than libcpg's fragment size, so it travels as PARTIAL_MCAST."""


def message(nodeid: int, pid: int, k: int, big_every: int) -> bytes:
    """Message k of process (nodeid, pid): its size and bytes follow from those three."""
    rng = random.Random(f"{nodeid}/{pid}/{k}")
    size = BIG if big_every and k % big_every == big_every - 1 else rng.choice(SIZES)
    seed = hashlib.sha256(f"{nodeid}/{pid}/{k}".encode()).digest()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


async def main(args: argparse.Namespace) -> None:
    import cpg

    out = open(args.out, "a", buffering=1)
    async with cpg.connect() as client:
        nodeid = await client.local_nodeid()
        out.write(json.dumps({"t": "me", "nodeid": nodeid, "pid": client.pid}) + "\n")
        group = await client.join(args.group.encode())
        counts: dict[tuple[int, int], int] = {}

        async def receive() -> None:
            async for ev in group:
                if isinstance(ev, cpg.Message):
                    key = (ev.nodeid, ev.pid)
                    k = counts.get(key, 0)
                    if ev.data == END:
                        out.write(json.dumps({"t": "end", "nodeid": ev.nodeid, "pid": ev.pid, "n": k}) + "\n")
                        continue
                    counts[key] = k + 1
                    ok = ev.data == message(ev.nodeid, ev.pid, k, args.big_every)
                    out.write(json.dumps({"t": "msg", "nodeid": ev.nodeid, "pid": ev.pid, "k": k,
                                          "len": len(ev.data), "ok": ok,
                                          "sha": hashlib.sha1(ev.data).hexdigest()[:12]}) + "\n")
                elif isinstance(ev, cpg.MembershipChange):
                    out.write(json.dumps({"t": "conf", "members": [list(m) for m in ev.members],
                                          "left": [list(a) for a in ev.left],
                                          "joined": [list(a) for a in ev.joined]}) + "\n")

        async def send() -> None:
            # wait until the group has as many members as asked for before sending
            with trio.move_on_after(args.wait_members_timeout):
                while len(await group.members()) < args.wait_members:
                    await trio.sleep(0.1)
            for k in range(args.count):
                await group.send(message(nodeid, client.pid, k, args.big_every))
                if args.pace:
                    await trio.sleep(args.pace)
            await group.send(END)
            out.write(json.dumps({"t": "sent", "n": args.count}) + "\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            nursery.start_soon(send)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--group", required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--out", required=True)
    p.add_argument("--big-every", type=int, default=0, help="every K-th message is 1 MiB (0: never)")
    p.add_argument("--pace", type=float, default=0.0, help="seconds between sends")
    p.add_argument("--wait-members", type=int, default=1)
    p.add_argument("--wait-members-timeout", type=float, default=30.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        trio.run(main, parse_args(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
