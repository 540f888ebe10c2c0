"""The simulator with every datagram sealed: the crypto layer (envelope, key ring,
replay filter) between each node and the virtual network, and an attacker who replays
recorded datagrams.

The replay filter drops authenticated messages of rings that are over; these runs check
that it never drops what the protocol needs: every invariant must hold as without it.
Salts come from the seeded RNG, so a seed still gives the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..crypto.channel import SecureChannel
from ..crypto.keyring import GROUP_KEYS
from ..crypto.settings import CryptoSettings, frame_config
from ..stack import MessageReceived
from .cluster import SimConfig, SimResult, Simulation, _Node

KEY = bytes(range(128))
RECORD_MAX = 4096


@dataclass
class SecureSimConfig(SimConfig):
    cipher: str = "aes256"
    hash: str = "sha256"
    replay: float = 0.02
    """Per delivered datagram, the chance that the attacker also delivers a recorded one
    (an earlier datagram of any node, at least ``replay_age`` old) to the same node."""
    replay_age: float = 1.0
    """Virtual seconds a datagram is held before it may be replayed. Fresher replays are
    another attack (see docs/crypto.md: a token in flight copied to a third node)."""


class SecureSimulation(Simulation):
    def __init__(self, config: SecureSimConfig) -> None:
        super().__init__(config)
        self.crypto = CryptoSettings(config.cipher, config.hash, KEY)
        self.srp_config = frame_config(self.srp_config, self.crypto, "10.0.0.1")
        self.attack_rng = random.Random(self.rng.getrandbits(64) ^ 0x5EC)
        self.salt_rng = random.Random(self.rng.getrandbits(64))
        self.channels: dict[int, SecureChannel] = {}
        self.recorded: list[tuple[float, bytes]] = []
        self.replayed = 0

    def _new_channel(self, nodeid: int) -> SecureChannel:
        return SecureChannel(nodeid, self.crypto, {n: str(n) for n in self.nodeids},
                             random=self.salt_rng.randbytes)

    def _start(self, n: _Node) -> None:
        self.channels[n.nodeid] = self._new_channel(n.nodeid)
        super()._start(n)

    def _wire_out(self, n: _Node, data: bytes) -> bytes:
        sealed = self.channels[n.nodeid].seal(data)
        if len(self.recorded) < RECORD_MAX:
            self.recorded.append((self.now, sealed))
        elif self.attack_rng.random() < 0.1:
            self.recorded[self.attack_rng.randrange(RECORD_MAX)] = (self.now, sealed)
        return sealed

    def _node_event(self, n: _Node, ev: object) -> bool:
        self.channels[n.nodeid].handle_event(ev)
        return isinstance(ev, MessageReceived) and GROUP_KEYS in ev.groups

    def _after(self, n: _Node) -> None:
        super()._after(n)
        ch = self.channels.get(n.nodeid)
        if n.stack is None or ch is None:
            return
        out = ch.announcement()
        if out is not None and n.stack.send(*out):
            ch.announced()
            super()._after(n)

    def _deliver(self, n: _Node, src: int, data: bytes) -> None:
        self._open(n, src, data)
        cfg = self.cfg
        assert isinstance(cfg, SecureSimConfig)
        if self.recorded and self.attack_rng.random() < cfg.replay:
            at, old = self.attack_rng.choice(self.recorded)
            if self.now - at >= cfg.replay_age:
                self.replayed += 1
                self._open(n, self.attack_rng.randrange(1, len(self.nodeids) + 1), old)

    def _open(self, n: _Node, src: int, data: bytes) -> None:
        stack = n.stack
        if stack is None:
            return
        opened = self.channels[n.nodeid].open(data, str(src), self.now, stack.srp.ring_id)
        self.channels[n.nodeid].take_logs()
        if opened is not None:
            stack.receive_message(opened.msg, self.now, opened.data)
        self._after(n)

    def dropped(self) -> dict[str, int]:
        """Drops per reason over the current incarnations of all nodes."""
        total: dict[str, int] = {}
        for ch in self.channels.values():
            for r, v in ch.dropped.items():
                total[r] = total.get(r, 0) + v
        return total

    def run(self) -> SimResult:
        result = super().run()
        result.stats["replayed"] = self.replayed
        for r, v in self.dropped().items():
            result.stats[f"dropped_{r}"] = v
        return result
