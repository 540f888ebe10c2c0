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


def message_size(nodeid: int, pid: int, k: int, big_every: int) -> int:
    if big_every and k % big_every == big_every - 1:
        return BIG
    return random.Random(f"{nodeid}/{pid}/{k}").choice(SIZES)


def message(nodeid: int, pid: int, k: int, big_every: int) -> bytes:
    """Message k of process (nodeid, pid): its size and bytes follow from those three."""
    size = message_size(nodeid, pid, k, big_every)
    seed = hashlib.sha256(f"{nodeid}/{pid}/{k}".encode()).digest()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


class Sequencer:
    """Numbers each sender's messages. A client that joined while a sender was already
    sending does not know where that sender is: it holds everything back until the
    first messages from that sender fit exactly one position of the sender's sequence,
    then writes what it held in order."""

    def __init__(self, count: int, big_every: int, write) -> None:
        self.count, self.big_every, self.write = count, big_every, write
        self.next: dict[tuple[int, int], int] = {}
        self.unsure: dict[tuple[int, int], tuple[set[int], list[bytes]]] = {}
        self.held: list[tuple] = []

    def _fits(self, key: tuple[int, int], k: int, data: bytes) -> bool:
        return (k < self.count and message_size(*key, k, self.big_every) == len(data)
                and message(*key, k, self.big_every) == data)

    def message(self, key: tuple[int, int], data: bytes) -> None:
        if key not in self.next and key not in self.unsure and data != END:
            cands = {k for k in range(self.count) if self._fits(key, k, data)}
            if cands == {0} or not cands:
                self.next[key] = 0
            else:
                self.unsure[key] = (cands, [data])
                self.held.append(("msg", key, data))
                return
        elif key in self.unsure:
            cands, seen = self.unsure[key]
            if data != END:
                seen.append(data)
                cands = {k for k in cands if self._fits(key, k + len(seen) - 1, data)}
                self.unsure[key] = (cands, seen)
            if len(cands) <= 1 or data == END:
                start = min(cands) if cands else 0
                del self.unsure[key]
                self.next[key] = start
            self.held.append(("msg", key, data))
            self._release()
            return
        self._emit(("msg", key, data))

    def other(self, line: dict) -> None:
        self._emit(("line", line))

    def _emit(self, item: tuple) -> None:
        if self.unsure:
            self.held.append(item)
        else:
            self._out(item)

    def _release(self) -> None:
        if self.unsure:
            return
        held, self.held = self.held, []
        for item in held:
            self._out(item)

    def _out(self, item: tuple) -> None:
        if item[0] == "line":
            self.write(item[1])
            return
        _, key, data = item
        if data == END:
            self.write({"t": "end", "nodeid": key[0], "pid": key[1], "n": self.next.get(key, 0)})
            return
        k = self.next.get(key, 0)
        self.next[key] = k + 1
        self.write({"t": "msg", "nodeid": key[0], "pid": key[1], "k": k, "len": len(data),
                    "ok": data == message(*key, k, self.big_every),
                    "sha": hashlib.sha1(data).hexdigest()[:12]})


async def main(args: argparse.Namespace) -> None:
    import cpg

    out = open(args.out, "a", buffering=1)
    async with cpg.connect() as client:
        nodeid = await client.local_nodeid()
        out.write(json.dumps({"t": "me", "nodeid": nodeid, "pid": client.pid}) + "\n")
        group = await client.join(args.group.encode())
        seq = Sequencer(args.count, args.big_every, lambda line: out.write(json.dumps(line) + "\n"))

        async def receive() -> None:
            async for ev in group:
                if isinstance(ev, cpg.Message):
                    seq.message((ev.nodeid, ev.pid), ev.data)
                elif isinstance(ev, cpg.MembershipChange):
                    seq.other({"t": "conf", "members": [list(m) for m in ev.members],
                               "left": [list(a) for a in ev.left],
                               "joined": [list(a) for a in ev.joined]})

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
