"""The keys a node holds, the one it seals with, and key rotation without losing the ring.

Pure code: configuration, ring membership and the members' announcements go in; the
key to seal with, announcements to multicast and log lines come out.

Rotation (docs/crypto.md has the operator's procedure):

* Every key has a public id (:func:`~totem.crypto.keyfile.key_id`). The configured keys
  are ranked: ``keyfile_next`` first, then the primary key (``keyfile``/``key``).
  A key dropped from the configuration by a reload is *retiring*: still held, ranked
  last.
* Every node multicasts, in agreed order on group :data:`GROUP_KEYS`, an announcement
  of the ids it holds and the id it seals with: after each regular configuration
  change, each reload and each change of its sending key.
* A node seals with the best-ranked configured key that every member of the current
  ring has announced holding; while no such key is known (a new member has not
  announced yet) it keeps its current key. It starts with the primary key.
* Fallback: a datagram authenticated with a worse-ranked key, from a node that has not
  announced holding our sending key (a node outside the ring, e.g. restarted with the
  old key only), makes us seal with that key, so that the node can join; once it has
  joined and announced, the rule above picks the key again.
* A retiring key is dropped once it is not our sending key and every member has
  announced sealing with another key. Its datagrams are then rejected (``wrong_key``).

Receivers try every held key (the envelope has no key id on the wire, so the format
stays corosync 2.x's), the source's last key first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

from construct import Array, Bytes, Const, ConstructError, Int8ub, Struct, this
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hmac

from .envelope import HASHES, Drop, Envelope, EnvelopeError, check_settings
from .keyfile import key_id

GROUP_KEYS = b"pytotem-keys"
"""The totempg group of the key announcements (only totemd nodes are in encrypted rings)."""

KeyAnnouncementLayout = Struct(
    "magic" / Const(b"PTK1"),
    "send" / Bytes(8),
    "count" / Int8ub,
    "held" / Array(this.count, Bytes(8)),
)
"""Body of an announcement: the id the sender seals with and the ids it holds."""


@dataclass(frozen=True)
class Announcement:
    send: str
    held: frozenset[str]

    def pack(self) -> bytes:
        held = sorted(self.held)
        return KeyAnnouncementLayout.build(dict(send=bytes.fromhex(self.send), count=len(held),
                                                held=[bytes.fromhex(h) for h in held]))

    @classmethod
    def parse(cls, body: bytes) -> "Announcement":
        """ValueError if ``body`` is not an announcement."""
        try:
            a = KeyAnnouncementLayout.parse(body)
        except ConstructError as exc:
            raise ValueError(f"not a key announcement: {exc}") from None
        return cls(a.send.hex(), frozenset(h.hex() for h in a.held))


class KeyRing:
    """The keys of one node (all with the same cipher and hash)."""

    def __init__(self, nodeid: int, cipher: str, hash_: str, primary: bytes,
                 next_key: bytes | None = None, *,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        check_settings(cipher, hash_)
        self.nodeid = nodeid
        self.cipher = cipher
        self.hash = hash_
        self._random = random
        self.envelopes: dict[str, Envelope] = {}
        """Held keys by id."""
        self.primary = ""
        self.next: str | None = None
        self.members: tuple[int, ...] = ()
        """The current ring (from the last regular configuration); empty before one."""
        self.peers: dict[int, Announcement] = {}
        """The latest announcement of each other member of the current ring."""
        self.logs: list[tuple[str, str]] = []
        """(level, text) for the node's log."""
        self._announce = False
        self._configure(primary, next_key)
        self.send_id = self.primary

    # -- configuration -------------------------------------------------------------------

    def _configure(self, primary: bytes, next_key: bytes | None) -> None:
        for key in (primary, next_key):
            if key is not None and key_id(key) not in self.envelopes:
                self.envelopes[key_id(key)] = Envelope(self.cipher, self.hash, key,
                                                       random=self._random)
        self.primary = key_id(primary)
        self.next = None if next_key is None or key_id(next_key) == self.primary \
            else key_id(next_key)
        self._announce = True

    def reload(self, primary: bytes, next_key: bytes | None = None) -> None:
        """New configured keys. A key no longer configured stays held (retiring) until no
        member seals with it."""
        before = set(self.configured)
        self._configure(primary, next_key)
        added = set(self.configured) - before
        for kid in sorted(added):
            self.logs.append(("notice", f"Crypto key {kid} added by reload"))
        for kid in sorted(set(self.envelopes) - set(self.configured)):
            self.logs.append(("notice", f"Crypto key {kid} is retiring: dropped once no "
                              "member seals with it"))
        self._update()

    @property
    def configured(self) -> list[str]:
        """Configured key ids, best rank first."""
        return [k for k in (self.next, self.primary) if k is not None]

    def rank(self, kid: str) -> int:
        conf = self.configured
        return conf.index(kid) if kid in conf else len(conf)

    def holds(self, kid: str) -> bool:
        return kid in self.envelopes

    # -- the ring ------------------------------------------------------------------------

    def configuration(self, members: Iterable[int], joined: Iterable[int] = ()) -> None:
        """A regular configuration was installed: forget announcements of nodes that are
        gone or came back, and announce again."""
        self.members = tuple(members)
        joined = set(joined)
        for n in list(self.peers):
            if n not in self.members or n in joined:
                del self.peers[n]
        self._announce = True
        self._update()

    def announcement(self) -> bytes | None:
        """The announcement to multicast on :data:`GROUP_KEYS`, when one is due (call
        :meth:`announced` once it is queued)."""
        if not self._announce or not self.members:
            return None
        return Announcement(self.send_id, frozenset(self.envelopes)).pack()

    def announced(self) -> None:
        self._announce = False

    def receive_announcement(self, sender: int, body: bytes) -> None:
        """An announcement delivered in agreed order (ValueError if malformed)."""
        ann = Announcement.parse(body)
        if sender == self.nodeid:
            return
        self.peers[sender] = ann
        self._update()

    def _peers_known(self) -> bool:
        return bool(self.members) and all(
            m == self.nodeid or m in self.peers for m in self.members)

    def usable(self, kid: str) -> bool:
        """Every member of the current ring has announced holding ``kid`` (and so do we)."""
        return self.holds(kid) and self._peers_known() and all(
            kid in self.peers[m].held for m in self.members if m != self.nodeid)

    def _update(self) -> None:
        old = self.send_id
        for kid in self.configured:
            if self.usable(kid):
                self.send_id = kid
                break
        if self.send_id != old:
            self.logs.append(("notice", f"Crypto: every member holds key {self.send_id}; "
                              f"sealing with it instead of {old}"))
            self._announce = True
        if self._peers_known():
            for kid in list(self.envelopes):
                if kid in self.configured or kid == self.send_id:
                    continue
                if all(self.peers[m].send != kid for m in self.members if m != self.nodeid):
                    del self.envelopes[kid]
                    self.logs.append(("notice", f"Crypto key {kid} dropped: no member seals "
                                      "with it any more"))
                    self._announce = True

    def heard(self, nodeid: int | None, kid: str) -> None:
        """An authenticated, fresh datagram from ``nodeid`` was sealed with ``kid``."""
        if kid == self.send_id or nodeid is None or nodeid == self.nodeid:
            return
        if self.rank(kid) <= self.rank(self.send_id):
            return
        ann = self.peers.get(nodeid)
        if ann is not None and self.send_id in ann.held:
            return  # a member that holds our key and has not switched yet
        old, self.send_id = self.send_id, kid
        self.logs.append(("notice", f"Crypto: node {nodeid} seals with key {kid} and has not "
                          f"announced key {old}; sealing with {kid} so that it can join"))
        self._announce = True

    # -- datagrams -------------------------------------------------------------------------

    def seal(self, plain: bytes) -> bytes:
        return self.envelopes[self.send_id].seal(plain)

    def open(self, data: bytes, first: str | None = None) -> tuple[bytes, str]:
        """(message, key id) of an authenticated datagram; EnvelopeError otherwise
        (``wrong_key`` when no held key authenticates it)."""
        env = self.envelopes[self.send_id]
        env.check_untrusted(data)
        order = [self.send_id] + [k for k in self.envelopes if k != self.send_id]
        if first is not None and first in self.envelopes and first != self.send_id:
            order.remove(first)
            order.insert(0, first)
        for kid in order:
            env = self.envelopes[kid]
            if env.authenticate(data):
                return env.decrypt_authenticated(data), kid
        raise EnvelopeError(Drop.WRONG_KEY, "the HMAC matches none of the keys held")

    def other_hash(self, data: bytes) -> str | None:
        """The crypto_hash (other than ours) under which one of our keys authenticates
        ``data``, if any: tells a misconfigured peer from a wrong key. Slow path only."""
        for name, spec in HASHES.items():
            if spec is None or name == self.hash or len(data) <= 4 + spec[1]:
                continue
            n = len(data) - spec[1]
            for env in self.envelopes.values():
                mac = hmac.HMAC(env.private_key, spec[0]())
                mac.update(data[:n])
                try:
                    mac.verify(data[n:])
                except InvalidSignature:
                    continue
                return name
        return None

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict:
        keys = []
        for kid in dict.fromkeys(self.configured + list(self.envelopes)):
            role = ("next" if kid == self.next else "primary" if kid == self.primary
                    else "retiring")
            held = sorted([self.nodeid] * self.holds(kid) +
                          [n for n, a in self.peers.items() if kid in a.held])
            sent = sorted([self.nodeid] * (kid == self.send_id) +
                          [n for n, a in self.peers.items() if a.send == kid])
            keys.append({"id": kid, "role": role, "held_by": held, "sealing": sent})
        return {"cipher": self.cipher, "hash": self.hash, "send_key": self.send_id,
                "keys": keys, "members_announced": sorted(self.peers),
                "rotation": self.rotation()}

    def rotation(self) -> str:
        """Where a key rotation stands, for the operator ("none" when there is none)."""
        if not self.members:
            return "waiting for the first ring"
        missing = [m for m in self.members if m != self.nodeid and m not in self.peers]
        if missing:
            return f"waiting for the key announcements of members {missing}"
        others = sorted(m for m, a in self.peers.items() if a.send != self.send_id)
        if self.next is not None and self.send_id != self.next:
            lacking = sorted(m for m, a in self.peers.items() if self.next not in a.held)
            return f"adding key {self.next}: members {lacking} do not hold it yet"
        if others:
            return f"switching to key {self.send_id}: members {others} seal with another key"
        if self.next is not None:
            return (f"done: every member seals with key {self.next}; make it the primary key "
                    "on every node and reload")
        retiring = sorted(k for k in self.envelopes if k not in self.configured)
        if retiring:
            return f"dropping key {', '.join(retiring)}"
        return "none"
