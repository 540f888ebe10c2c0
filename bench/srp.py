"""Ordered messages per CPU second through the pure stack (SRP + totempg) in the simulator.

Run from the repository root:  python bench/srp.py

Every node of a simulated cluster submits fixed-size messages at a steady high rate
for a few virtual seconds; the ring orders them and every node delivers them. The
CPU time (``time.process_time``) covers the whole simulation: all N stacks, the
virtual network, the event queue and the simulator's per-delivery payload check,
so it is the cost of ordering a message *on every node at once*, on one core.

Columns: ``sent`` are the messages the stacks accepted (a full send queue refuses
more), ``unique`` counts each message once (ids delivered somewhere), ``deliveries``
counts it once per node that delivered it; ``msgs/CPU-s`` is unique / CPU seconds
and ``dlv/CPU-s`` deliveries / CPU seconds; ``sim s`` is the virtual duration.
``inv`` lists the invariants the run broke (checked outside the timed part).

The offered load is more than a lossy ring orders in virtual time: every lost token
costs a token_retransmit timeout, so with 5% loss the send queues are still full when
the run ends (``sent`` > ``unique``; "self delivery" fails), and a large ring may be
in the middle of a membership change ("liveness"). Those rows still measure the CPU
cost per ordered message, retransmissions and membership work included.
"""

from __future__ import annotations

import platform
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from totem.sim import LinkModel, SimConfig, Simulation, check  # noqa: E402
from totem.sim.cluster import _APP_HEADER, GROUP  # noqa: E402

SEED = 7
RATE = 10000.0
"""Messages per virtual second offered by each node: enough that every token rotation
carries many messages, so that per-message work dominates the fixed cost of rotating
the token. (A lower rate measures mostly idle token rotations.)"""
SEND_WINDOW = {3: 1.0, 8: 0.5}
"""SimConfig.fault_window per cluster size: the nodes send from 0.3 s to 0.5 s + this
(virtual), then the run goes on for the simulator's settle time with no new messages."""
REPEAT = 3
"""Each row runs this many times (the runs are identical: same seed); the least CPU time counts."""
ROWS = [(nodes, size, loss) for nodes in (3, 8) for size in (64, 1024) for loss in (0.0, 0.05)]


class FixedSizeSimulation(Simulation):
    """Every application message has exactly ``size`` bytes (header included); no large ones."""

    def __init__(self, config: SimConfig, size: int) -> None:
        super().__init__(config)
        if size < _APP_HEADER.size:
            raise ValueError(f"messages must have at least {_APP_HEADER.size} bytes")
        self.rest = bytes(range(256)) * (size // 256 + 1)
        self.rest = self.rest[: size - _APP_HEADER.size]
        self.rest_crc = zlib.crc32(self.rest)
        self.refused = 0

    def _app_send(self, n) -> None:  # same bookkeeping as Simulation._app_send, fixed payload
        if not n.up or n.paused_until is not None:
            return
        msg_id = (n.nodeid, n.inc, n.counter)
        body = _APP_HEADER.pack(*msg_id, len(self.rest), self.rest_crc) + self.rest
        if n.stack.send([GROUP], body):
            n.counter += 1
            self.sent[msg_id] = (len(self.rest), self.rest_crc)
            n.record.sent.append(msg_id)
            self._after(n)
        else:
            self.refused += 1


def bench(nodes: int, size: int, loss: float) -> dict:
    cfg = SimConfig(nodes=nodes, seed=SEED, faults=(), fault_window=SEND_WINDOW[nodes], rate=RATE,
                    large_every=10**12, link=LinkModel(loss=loss))
    cpu = float("inf")
    for _ in range(REPEAT):
        sim = FixedSizeSimulation(cfg, size)
        t0 = time.process_time()
        result = sim.run()
        cpu = min(cpu, time.process_time() - t0)
    unique: set = set()
    deliveries = 0
    for rec in result.records.values():
        for e in rec.history:
            if e[0] == "msg":
                unique.add(e[1])
                deliveries += 1
    violations = check(result)
    return {"nodes": nodes, "size": size, "loss": loss, "sent": len(result.sent), "unique": len(unique),
            "deliveries": deliveries, "cpu": cpu, "sim": result.virtual_seconds, "refused": sim.refused,
            "ok": not violations, "violations": violations}


def main() -> None:
    print(f"# pytotem SRP+totempg in the simulator, seed {SEED}, {RATE:g} msgs/s offered per node, "
          f"best of {REPEAT}")
    print(f"# Python {platform.python_version()} on {cpu_model()}")
    header = (f"{'nodes':>5} {'size':>5} {'loss':>5} {'sent':>6} {'unique':>6} {'deliveries':>10} "
              f"{'CPU s':>6} {'msgs/CPU-s':>10} {'dlv/CPU-s':>10} {'sim s':>6}  inv")
    print(header)
    print("-" * len(header))
    problems = []
    for nodes, size, loss in ROWS:
        r = bench(nodes, size, loss)
        broken = sorted({v.kind for v in r["violations"]})
        print(f"{r['nodes']:5d} {r['size']:5d} {r['loss']:5.0%} {r['sent']:6d} {r['unique']:6d} "
              f"{r['deliveries']:10d} {r['cpu']:6.2f} {r['unique'] / r['cpu']:10.0f} "
              f"{r['deliveries'] / r['cpu']:10.0f} {r['sim']:6.2f}  {', '.join(broken) or 'ok'}", flush=True)
        if not r["ok"]:
            problems.append((nodes, size, loss, r["violations"]))
    for nodes, size, loss, violations in problems:
        print(f"\n{nodes} nodes, {size} B, {loss:.0%} loss:")
        for v in violations[:4]:
            text = str(v)
            print(f"  {text[:150]}{'...' if len(text) > 150 else ''}")
        if len(violations) > 4:
            print(f"  ... {len(violations) - 4} more")


if __name__ == "__main__":
    main()
