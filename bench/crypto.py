"""The cost of crypto (corosync 2.x's envelope) against none, below CPG.

Run from the repository root:  python bench/crypto.py [--quick]

Three tables:

1. ``envelope``: microseconds to seal and to open one datagram, per crypto setting and
   datagram size (the largest is a full mcast with the frame shrunk for that setting).
2. ``stack``: ordered messages per CPU second through N pure stacks in the simulator
   (bench/srp.py's workload), plain 3.x wire against every datagram sealed and opened
   (``totem.sim.secure``, no replays). The CPU time covers all N nodes, so the ratio is
   the per-node cost of crypto at that load.
3. ``loopback``: three totemd nodes (the trio shell) in this process on 127.0.x.y, one
   sender queueing fixed-size messages as fast as the ring takes them for a few
   seconds; messages delivered on all three nodes per wall second and per CPU second.

The CPG row (messages through the IPC) is for bench/compare.py once CPG is served.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from srp import FixedSizeSimulation  # noqa: E402
from totem.crypto.envelope import Envelope, mtu_overhead  # noqa: E402
from totem.sim import SimConfig, check  # noqa: E402
from totem.sim.secure import SecureSimConfig, SecureSimulation  # noqa: E402
from totem.srp.config import SrpConfig  # noqa: E402
from totem.wire import MCAST_HEADER_SIZE  # noqa: E402

SETTINGS = [("none", "sha256"), ("aes128", "sha1"), ("aes256", "sha256"), ("aes256", "sha512")]
KEY = os.urandom(128)


def envelope_table(quick: bool) -> None:
    print("\n## envelope: microseconds per datagram (best of 5)")
    sizes = [64, 1024]
    print(f"{'setting':>15} {'bytes':>6} {'seal us':>8} {'open us':>8} {'MB/s seal+open':>15}")
    for cipher, hash_ in SETTINGS:
        env = Envelope(cipher, hash_, KEY)
        largest = MCAST_HEADER_SIZE + SrpConfig(crypto_overhead=mtu_overhead(cipher, hash_)).frame_max
        for size in sizes + [largest]:
            plain = os.urandom(size)
            sealed = env.seal(plain)
            n = 2000 if quick else 20000
            seal = min(timeit.repeat(lambda: env.seal(plain), number=n, repeat=5)) / n * 1e6
            opn = min(timeit.repeat(lambda: env.open(sealed), number=n, repeat=5)) / n * 1e6
            print(f"{cipher + '/' + hash_:>15} {size:6d} {seal:8.2f} {opn:8.2f} "
                  f"{size / (seal + opn):15.1f}")


class FixedSizeSecure(FixedSizeSimulation, SecureSimulation):
    """bench/srp.py's fixed-size workload with every datagram sealed."""


def stack_row(nodes: int, size: int, secure: bool, repeat: int) -> tuple[float, int, bool]:
    common = dict(nodes=nodes, seed=7, faults=(), fault_window=1.0 if nodes == 3 else 0.5,
                  rate=10000.0, large_every=10**12)
    cpu, result = float("inf"), None
    for _ in range(repeat):
        if secure:
            sim = FixedSizeSecure(SecureSimConfig(**common, cipher="aes256", hash="sha256",
                                                  replay=0.0), size)
        else:
            sim = FixedSizeSimulation(SimConfig(**common), size)
        t0 = time.process_time()
        result = sim.run()
        cpu = min(cpu, time.process_time() - t0)
    unique = {e[1] for rec in result.records.values() for e in rec.history if e[0] == "msg"}
    return cpu, len(unique), not check(result)


def stack_table(quick: bool) -> None:
    print("\n## stack: ordered messages per CPU second in the simulator, aes256/sha256 vs none")
    print(f"{'nodes':>5} {'size':>5} {'none msgs/CPU-s':>16} {'aes256 msgs/CPU-s':>18} {'ratio':>6}  inv")
    for nodes in (3, 8):
        for size in (64, 1024):
            plain_cpu, plain_n, ok1 = stack_row(nodes, size, False, 1 if quick else 3)
            sec_cpu, sec_n, ok2 = stack_row(nodes, size, True, 1 if quick else 3)
            a, b = plain_n / plain_cpu, sec_n / sec_cpu
            print(f"{nodes:5d} {size:5d} {a:16.0f} {b:18.0f} {b / a:6.2f}  "
                  f"{'ok' if ok1 and ok2 else 'VIOLATIONS'}", flush=True)


def loopback_row(size: int, crypto: bool, seconds: float, base: int) -> tuple[float, float]:
    import trio

    from totem.crypto.settings import CryptoSettings
    from totem.node import Node, NodeSettings
    from totem.stack import MessageReceived

    members = {i: f"127.0.{base}.{i}" for i in (1, 2, 3)}
    settings = CryptoSettings("aes256", "sha256", KEY) if crypto else None
    delivered = {i: 0 for i in members}

    async def main() -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            nodes = [Node(NodeSettings(nodeid=i, members=members, port=15499, srp=SrpConfig.derive(3),
                                       state_dir=f"{tmp}/n{i}", crypto=settings, sync=False))
                     for i in members]
            for n in nodes:
                n.on_event.append(lambda ev, i=n.settings.nodeid: delivered.__setitem__(i, delivered[i] + 1)
                                  if isinstance(ev, MessageReceived) and ev.groups == (b"b",) else None)
            async with trio.open_nursery() as nursery:
                for n in nodes:
                    await nursery.start(n.run)
                while not all(n.stack.srp.members == (1, 2, 3) and n.stack.srp.state.name == "OPERATIONAL"
                              for n in nodes):
                    await trio.sleep(0.01)
                body = bytes(size)
                t0, c0 = time.monotonic(), time.process_time()
                start = dict(delivered)
                while time.monotonic() - t0 < seconds:
                    if not await nodes[0].send([b"b"], body):
                        await trio.sleep(0.0005)
                    else:
                        await trio.sleep(0)
                wall, cpu = time.monotonic() - t0, time.process_time() - c0
                done = min(delivered[i] - start[i] for i in members)
                nursery.cancel_scope.cancel()
        return done / wall, done / cpu
    return trio.run(main)


def loopback_table(quick: bool) -> None:
    seconds = 1.5 if quick else 4.0
    print(f"\n## loopback: 3 totemd nodes in one process, one sender, {seconds:g} s per row")
    print(f"{'size':>5} {'none msgs/s':>12} {'aes256 msgs/s':>14} {'ratio':>6} "
          f"{'none msgs/CPU-s':>16} {'aes256 msgs/CPU-s':>18} {'ratio':>6}")
    for k, size in enumerate((64, 1024, 16384)):
        pw, pc = loopback_row(size, False, seconds, 90 + 2 * k)
        sw, sc = loopback_row(size, True, seconds, 91 + 2 * k)
        print(f"{size:5d} {pw:12.0f} {sw:14.0f} {sw / pw:6.2f} {pc:16.0f} {sc:18.0f} {sc / pc:6.2f}",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = p.parse_args()
    print(f"# pytotem crypto cost: Python {platform.python_version()} on {cpu_model()}")
    envelope_table(args.quick)
    stack_table(args.quick)
    loopback_table(args.quick)


if __name__ == "__main__":
    main()
