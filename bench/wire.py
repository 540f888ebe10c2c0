"""Nanoseconds per parse and per build of totemsrp messages: fast path vs construct.

Run from the repository root:  python bench/wire.py

The fast path (``parse_untrusted`` / ``msg.pack()``) uses ``struct`` formats derived
from the construct layouts; the comparison columns run construct's compiled
parser and builder on the same layouts, to show why the derived path exists.
Each figure is the best of 5 timeit repetitions.
"""

from __future__ import annotations

import platform
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from totem.wire import (  # noqa: E402
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    OrfToken,
    RingId,
    RtrItem,
    layouts,
    parse_untrusted,
)

REPEAT = 5


def cases():
    ring = RingId(1, 0x1F)
    yield "orf_token", "orf_token, 0 rtr", OrfToken(40, 1766, 38, 3, ring, target_nodeid=0x01000000)
    yield "orf_token", "orf_token, 10 rtr", OrfToken(
        50, 1766, 38, 3, ring, rtr_list=[RtrItem(ring, 39 + i) for i in range(10)])
    yield "mcast", "mcast, 1 KiB payload", Mcast(1, 39, ring, bytes(range(256)) * 4, this_seqno=51,
                                                 nodeid=1)
    nodes = list(range(1, 17))
    yield "memb_join", "memb_join, 16 nodes", MembJoin(1, tuple(nodes), (), 31, nodeid=1)
    yield "memb_commit_token", "memb_commit_token, 16", MembCommitToken(
        3, RingId(1, 0x23), 16, nodes, [MembEntry(ring, 44, 44, 1) for _ in nodes], nodeid=1)


def best_ns(stmt) -> float:
    timer = timeit.Timer(stmt)
    number, _ = timer.autorange()
    number = max(number, 1000)
    return min(timer.repeat(REPEAT, number)) / number * 1e9


def main() -> None:
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.machine()}")
    print(f"CPU: {cpu_model()}")
    print(f"best of {REPEAT} timeit repetitions, ns per call\n")
    head = (f"{'message':<24} {'bytes':>5}  {'fast parse':>10} {'fast build':>10}  "
            f"{'construct parse':>15} {'construct build':>15}  {'parse x':>7} {'build x':>7}")
    print(head)
    print("-" * len(head))
    lay = layouts("<")
    for layout_name, label, msg in cases():
        data = msg.pack()
        assert parse_untrusted(data) == msg
        compiled = getattr(lay, layout_name).compile()
        container = compiled.parse(data)
        assert compiled.build(container) == data, label

        fast_parse = best_ns(lambda: parse_untrusted(data))
        fast_build = best_ns(msg.pack)
        con_parse = best_ns(lambda: compiled.parse(data))
        con_build = best_ns(lambda: compiled.build(container))
        print(f"{label:<24} {len(data):>5}  {fast_parse:>10.0f} {fast_build:>10.0f}  "
              f"{con_parse:>15.0f} {con_build:>15.0f}  {con_parse / fast_parse:>6.1f}x "
              f"{con_build / fast_build:>6.1f}x")


if __name__ == "__main__":
    main()
